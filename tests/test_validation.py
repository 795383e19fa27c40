"""Validation (Great Expectations): failures name file, row and column; nothing is lost."""

import numpy as np
import polars as pl
import pytest

from sidkit.data.loaders import load_movielens_grouplens
from sidkit.data.schema import Catalogue
from sidkit.data.validation import raise_for_report, validate_catalogue
from sidkit.features.checks import check_alignment, validate_embeddings
from sidkit.errors import DataValidationError

GENRES = "|".join(["0"] * 19)


@pytest.fixture
def ml_with_unknown_item(tmp_path):
    lines = [f"{u}\t{i}\t4\t{880000000 + n}" for n, (u, i) in enumerate(
        [(1, 10), (1, 11), (1, 10), (2, 10), (2, 11), (2, 11)])]
    lines.insert(2, "1\t99\t4\t880000100")  # row 3: item 99 is not in u.item
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    (tmp_path / "u.item").write_text(f"10|A|01-Jan-1995||u|{GENRES}\n11|B|01-Jan-1995||u|{GENRES}\n")
    return tmp_path


def test_clean_catalogue_passes(small_synthetic):
    cat, _ = small_synthetic
    report, quarantine, validated = validate_catalogue(cat)
    assert report.passed and quarantine.height == 0 and report.rejected_rows == 0
    assert validated.n_interactions == cat.n_interactions
    assert "<table>" in report.to_html() and '"passed": true' in report.to_json()


def test_unknown_item_fails_naming_file_row_column(ml_with_unknown_item):
    cat = load_movielens_grouplens(ml_with_unknown_item)
    report, quarantine, _ = validate_catalogue(cat)
    assert not report.passed
    with pytest.raises(DataValidationError) as err:
        raise_for_report(report)
    assert "u.data, row 3, column 'item_id'" in str(err.value)
    assert "does not exist" in str(err.value)
    row = quarantine.filter(pl.col("check") == "item_exists").row(0, named=True)
    assert row["file"].endswith("u.data") and row["row"] == 3 and row["column"] == "item_id"
    assert '"item_id": "99"' in row["record"]


def test_quarantine_mode_continues_without_rejected_rows_and_keeps_them(ml_with_unknown_item):
    cat = load_movielens_grouplens(ml_with_unknown_item)
    report, quarantine, validated = validate_catalogue(cat, {"on_invalid": "quarantine"})
    assert report.passed and report.rejected_rows == 1
    assert validated.n_interactions == cat.n_interactions - 1
    assert quarantine.height == 1  # the rejected row is kept, with its reason
    assert any("quarantined" in w for w in report.warnings)


def test_quarantine_cascades_and_min_interactions(small_synthetic):
    cat, _ = small_synthetic
    # a user with 2 interactions is rejected (leave-one-out needs 3)
    extra = cat.interactions.head(2).with_columns(pl.lit("lonely").alias("user_id"), pl.lit(10_000, dtype=pl.Int64).alias("_row"),
                                                  pl.Series("position", [0, 1], dtype=pl.Int64))
    cat2 = Catalogue(cat.name, cat.items, pl.concat([cat.interactions, extra]))
    report, quarantine, _ = validate_catalogue(cat2)
    assert not report.passed
    assert set(quarantine.filter(pl.col("check") == "min_user_interactions")["row"].to_list()) == {10_000}
    report, quarantine, validated = validate_catalogue(cat2, {"on_invalid": "quarantine"})
    assert "lonely" not in validated.interactions["user_id"].to_list()


def test_duplicate_item_ids_are_rejected(small_synthetic):
    cat, _ = small_synthetic
    dup = pl.concat([cat.items, cat.items.head(1).with_columns(pl.lit(999, dtype=pl.Int64).alias("_row"))])
    report, quarantine, _ = validate_catalogue(Catalogue(cat.name, dup, cat.interactions))
    assert not report.passed
    assert set(quarantine.filter(pl.col("check") == "unique")["row"].to_list()) == {1, 999}


def test_parse_rejects_fail_validation(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t4\t1\n1\t10\tbad\t2\n1\t10\t4\t3\n1\t10\t4\t4\n")
    (tmp_path / "u.item").write_text(f"10|A|01-Jan-1995||u|{GENRES}\n")
    report, quarantine, _ = validate_catalogue(load_movielens_grouplens(tmp_path))
    assert not report.passed
    assert "u.data, row 2, column 'rating'" in report.failure_message()
    assert quarantine.filter(pl.col("check") == "parse").height == 1


def test_schema_violation_is_reported(small_synthetic):
    cat, _ = small_synthetic
    report, _, _ = validate_catalogue(Catalogue(cat.name, cat.items.drop("title"), cat.interactions))
    assert not report.passed
    assert any(c.check == "schema" and c.column == "title" for c in report.checks)


def test_embedding_checks_name_the_row():
    ids = ["a", "b", "c"]
    good = np.ones((3, 4), np.float32)
    bad = good.copy()
    bad[1, 2] = np.nan
    report, quarantine = validate_embeddings(ids, {"text": good, "image": bad},
                                             {"text": np.ones(3, bool), "image": np.ones(3, bool)}, {"text": 4})
    assert not report.passed
    assert any("row 2 (item 'b'), column 'image'" in e for c in report.checks for e in c.examples)
    assert quarantine["row"].to_list() == [2]
    # a masked (absent) view row may be zero
    zeros = np.zeros((3, 4), np.float32)
    ok, _ = validate_embeddings(ids, {"image": zeros}, {"image": np.zeros(3, bool)})
    assert ok.passed
    wrong_dim, _ = validate_embeddings(ids, {"text": good}, {}, {"text": 384})
    assert not wrong_dim.passed


def test_alignment_check():
    assert check_alignment(["a", "b"], ["a", "b"]).success
    res = check_alignment(["a", "b"], ["b", "a"])
    assert not res.success and "row 1" in res.examples[0]
