"""Bad input, family by family: each is named by file, row and column, and no row is lost.

Every catalogue that loads is validated in quarantine mode and its counts must add up per table:
rows read = kept + quarantined (+ excluded by a snapshot). Inputs that make a whole file unreadable
raise one DataFormatError naming the file.
"""

import gzip
import json
import os

import numpy as np
import polars as pl
import pytest

from sidkit.data.loaders import load_amazon2014, load_amazon2018, load_amazon_sequences, load_movielens_atomic
from sidkit.data.loaders import load_movielens_grouplens
from sidkit.data.validation import raise_for_report, unaccounted_rows, validate_catalogue
from sidkit.errors import DataFormatError, DataValidationError

G = "|".join(["0"] * 19)


def accounted(cat, **rules):
    """Validate in quarantine mode and check that every row read is kept or quarantined."""
    report, quarantine, kept = validate_catalogue(cat, {"on_invalid": "quarantine", "min_user_interactions": 1,
                                                        "min_text_coverage": 0.0, **rules})
    assert unaccounted_rows(report) == [], report.accounting
    for table in ("items", "interactions"):
        a = report.accounting[table]
        assert a["kept"] == getattr(kept, table).height
    return report, quarantine, kept


def rejected(cat):
    return {(r["file"].rsplit("/", 1)[-1], r["row"]): r for r in cat.rejected.iter_rows(named=True)}


# ------------------------------------------------------------------ amazon_sequences

def _sequences(tmp_path, seq: bytes | str, items: bytes | str):
    for name, data in (("sequences.txt", seq), ("items.csv", items)):
        (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return tmp_path


ITEMS = "asin,title\na,Lip gloss\nb,Soap\nc,Shampoo\nd,Comb\n"


def test_unknown_item_in_a_sequence_quarantines_that_entry_only(tmp_path):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b c\nu2 a zz b c\nu3 b c d\n", ITEMS))
    assert cat.rows_read == {"interactions": 10, "items": 4}
    report, q, kept = accounted(cat)
    assert kept.interactions.height == 9 and kept.n_users == 3  # the user's other entries stay
    row = q.filter(pl.col("table") == "interactions").row(0, named=True)
    assert (row["row"], row["field"], row["column"]) == (2, 2, "item_id")
    assert report.accounting["interactions"] == {"read": 10, "kept": 9, "quarantined": 1, "excluded": 0}
    assert [p for p in kept.interactions.filter(pl.col("user_id") == "u2")["position"]] == [0, 2, 3]


def test_a_user_line_without_items_is_rejected(tmp_path):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b\nu2\n", ITEMS))
    assert rejected(cat)[("sequences.txt", 2)]["column"] == "items"
    accounted(cat)


def test_a_bad_byte_rejects_its_own_row_not_an_earlier_one(tmp_path):
    lines = [f"u{i} a b" for i in range(1, 200)]
    lines[149] = "u150 a \xff b"
    cat = load_amazon_sequences(_sequences(tmp_path, "\n".join(lines).encode("latin-1"), ITEMS))
    rej = rejected(cat)
    assert list(rej) == [("sequences.txt", 150)] and "UTF-8" in rej[("sequences.txt", 150)]["reason"].upper()
    report, _, kept = accounted(cat)
    assert kept.n_users == 198


def test_an_unterminated_quote_rejects_its_row_and_keeps_the_next(tmp_path):
    items = 'asin,title\na,Lip gloss\nb,Soap\nc,Shampoo\nd,"Comb, broken\ne,Brush\nf,"Quoted, fine"\n'
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b e f\n", items))
    rej = rejected(cat)
    assert list(rej) == [("items.csv", 5)] and "quote" in rej[("items.csv", 5)]["reason"]
    assert cat.items["item_id"].to_list() == ["a", "b", "c", "e", "f"]
    assert cat.items.filter(pl.col("item_id") == "f")["title"].to_list() == ["Quoted, fine"]
    accounted(cat)


@pytest.mark.parametrize("line,column,reason", [
    ("e,Brush,extra", None, "expected 2 fields"),
    ("e", "title", "expected 2 fields"),
    (",Nameless", "asin", "empty item id"),
])
def test_malformed_item_rows_are_named(tmp_path, line, column, reason):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b\n", ITEMS + line + "\n"))
    r = rejected(cat)[("items.csv", 6)]
    assert r["column"] == column and reason in r["reason"]
    accounted(cat)


def test_byte_order_mark_is_not_part_of_the_header(tmp_path):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b\n", b"\xef\xbb\xbf" + ITEMS.encode()))
    assert cat.n_items == 4 and cat.rejected.height == 0


@pytest.mark.parametrize("which", ["sequences.txt", "items.csv"])
def test_an_empty_file_is_named_as_empty(tmp_path, which):
    _sequences(tmp_path, "u1 a b\n", ITEMS)
    (tmp_path / which).write_bytes(b"")
    with pytest.raises(DataFormatError, match=rf"{which}: the file is empty"):
        load_amazon_sequences(tmp_path)


def test_duplicate_item_ids_are_quarantined_and_counted(tmp_path):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b c\n", ITEMS + "a,Lip gloss again\n"))
    report, q, kept = accounted(cat)
    assert report.accounting["items"]["read"] == 5


def test_zero_interactions_fail_validation(tmp_path):
    (tmp_path / "sequences.txt").write_text("\n\n")
    (tmp_path / "items.csv").write_text(ITEMS)
    report, _, _ = validate_catalogue(load_amazon_sequences(tmp_path), {"on_invalid": "quarantine"})
    assert not report.passed and any(c.check == "not_empty" and not c.success for c in report.checks)


def test_quarantine_of_every_interaction_fails_validation(tmp_path):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 x y\n", ITEMS))
    report, _, _ = validate_catalogue(cat, {"on_invalid": "quarantine", "min_user_interactions": 1})
    with pytest.raises(DataValidationError, match="zero interactions"):
        raise_for_report(report)


# ------------------------------------------------------------------ files and paths

@pytest.mark.parametrize("which,targets,message", [
    ("sequences.txt", {"loop1": "loop2", "loop2": "loop1", "sequences.txt": "loop1"}, "symbolic link loop"),
    ("items.csv", {"items.csv": "nowhere.csv"}, "broken symbolic link"),
])
def test_bad_links_are_named_as_such(tmp_path, which, targets, message):
    _sequences(tmp_path, "u1 a b\n", ITEMS)
    (tmp_path / which).unlink()
    for link, target in targets.items():
        os.symlink(tmp_path / target, tmp_path / link)
    with pytest.raises(DataFormatError, match=f"{which}: .*{message}"):
        load_amazon_sequences(tmp_path)


def test_an_item_id_cannot_reach_outside_the_image_folder(tmp_path):
    from PIL import Image

    (tmp_path / "posters").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "posters" / "a.jpg")
    items = ITEMS + "../secret,Sneaky\n"
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b\n", items), image_dir=tmp_path / "posters")
    paths = dict(zip(cat.items["item_id"], cat.items["image_path"]))
    assert paths["a"].endswith("posters/a.jpg") and paths["../secret"] is None


# ------------------------------------------------------------------ amazon 2014 / 2018

def _gz(path, lines: list[str]):
    with gzip.open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    return path


def _review(user, item, t=1, rating=5.0):
    return json.dumps({"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": t})


def _amazon(tmp_path, reviews: list[str], meta: list[str] | None = None):
    meta = meta or ["{'asin': 'B1', 'title': 'Soap'}", "{'asin': 'B2', 'title': 'Comb'}"]
    return _gz(tmp_path / "reviews.json.gz", reviews), _gz(tmp_path / "meta.json.gz", meta)


@pytest.mark.parametrize("bad,column,reason", [
    ('{"reviewerID": "u9", "asin": "B1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", None, "nested too deeply"),
    (json.dumps({"reviewerID": "u9", "asin": "B1", "overall": 5, "unixReviewTime": 2**70}), "unixReviewTime",
     "64-bit"),
    (json.dumps({"reviewerID": "u9", "asin": "B1", "overall": True, "unixReviewTime": 3}), "overall", "boolean"),
    ('{"reviewerID": "u9", "asin": "B1", "overall": NaN, "unixReviewTime": 3}', "overall", "finite"),
    (json.dumps({"reviewerID": "u9", "asin": "B1", "overall": 5, "unixReviewTime": 1.5}), "unixReviewTime",
     "whole number"),
    (json.dumps(["u9", "B1"]), None, "must be an object"),
    (json.dumps({"asin": "B1", "overall": 5}), "reviewerID", "missing"),
    ("u9 \udcff B1", None, "UTF-8"),
])
def test_bad_review_rows_are_rejected_with_row_and_column(tmp_path, bad, column, reason):
    reviews, meta = _amazon(tmp_path, [_review("u1", "B1"), _review("u1", "B2", 2), bad, _review("u2", "B1")])
    cat = load_amazon2014(reviews, meta)
    r = rejected(cat)[("reviews.json.gz", 3)]
    assert r["column"] == column and reason.lower() in r["reason"].lower()
    assert cat.n_interactions == 3
    accounted(cat)


def test_deeply_nested_python_literal_meta_is_rejected(tmp_path):
    reviews, meta = _amazon(tmp_path, [_review("u1", "B1"), _review("u1", "B2", 2)],
                            ["{'asin': 'B1', 'title': 'Soap'}", "{'asin': 'B2', 'x': " + "[" * 50_000 + "]" * 50_000 + "}"])
    cat = load_amazon2014(reviews, meta)
    assert rejected(cat)[("meta.json.gz", 2)]["table"] == "items"
    report, _, kept = accounted(cat)


def test_python_literals_are_rejected_by_the_strict_2018_format(tmp_path):
    reviews, meta = _amazon(tmp_path, [_review("u1", "B1")], ["{'asin': 'B1', 'title': 'Soap'}"])
    cat = load_amazon2018(reviews, meta)
    assert rejected(cat)[("meta.json.gz", 1)]["reason"].startswith("not a valid record")
    accounted(cat)


def test_a_corrupt_gzip_names_the_file(tmp_path):
    reviews, meta = _amazon(tmp_path, [_review("u1", "B1")])
    reviews.write_bytes(b"\x1f\x8b" + os.urandom(200))
    with pytest.raises(DataFormatError, match="reviews.json.gz.*gzip stream is corrupt"):
        load_amazon2014(reviews, meta)


def test_a_truncated_gzip_names_the_file_and_where_it_broke_off(tmp_path):
    reviews, meta = _amazon(tmp_path, [_review(f"u{i}", "B1", i) for i in range(5000)])
    data = reviews.read_bytes()
    reviews.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"reviews.json.gz, row \d+: the gzip stream is corrupt or truncated"):
        load_amazon2014(reviews, meta)


def test_a_plain_text_file_named_gz_is_named(tmp_path):
    reviews, meta = _amazon(tmp_path, [_review("u1", "B1")])
    reviews.write_text(_review("u1", "B1") + "\n")
    with pytest.raises(DataFormatError, match="not gzip-compressed"):
        load_amazon2014(reviews, meta)


def test_reviewed_items_missing_from_meta_keep_their_own_provenance(tmp_path):
    reviews, meta = _amazon(tmp_path, [_review("u1", "B1"), _review("u1", "B7", 2), _review("u1", "B8", 3)],
                            ["{'asin': 'B1', 'title': 'Soap'}"])
    cat = load_amazon2014(reviews, meta)
    rows = dict(zip(cat.items["item_id"], cat.items["_row"]))
    assert rows["B7"] == 2 and rows["B8"] == 3  # each its first review, so quarantining one never takes another
    accounted(cat)


# ------------------------------------------------------------------ MovieLens

def _grouplens(tmp_path, data: list[str], items: list[str]):
    (tmp_path / "u.data").write_text("\n".join(data) + "\n")
    (tmp_path / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    return tmp_path


ML_ITEMS = [f"10|A|01-Jan-1995||u|{G}", f"11|B|01-Jan-1995||u|{G}"]


@pytest.mark.parametrize("bad,column", [
    ("1\t10\t4\t1.5", "timestamp"),
    ("1\t10\tnan\t100", "rating"),
    ("1\t10\t4\t99999999999999999999999", "timestamp"),
    ("1\t10", "rating"),
    ("\t10\t4\t100", "user_id"),
])
def test_bad_rating_rows_are_named(tmp_path, bad, column):
    cat = load_movielens_grouplens(_grouplens(tmp_path, ["1\t10\t4\t100", "1\t11\t3\t101", bad], ML_ITEMS))
    assert rejected(cat)[("u.data", 3)]["column"] == column
    accounted(cat)


def test_bad_genre_flag_is_named(tmp_path):
    cat = load_movielens_grouplens(_grouplens(tmp_path, ["1\t10\t4\t100"],
                                              ML_ITEMS + ["12|C|01-Jan-1995||u|" + "|".join(["0"] * 18 + ["2"])]))
    assert rejected(cat)[("u.item", 3)]["column"] == "Western"
    accounted(cat)


def _atomic(tmp_path, inter_header="user_id:token\titem_id:token\trating:float\ttimestamp:float"):
    (tmp_path / "ml.inter").write_text(f"{inter_header}\n1\t5\t4\t100\n1\t6\t3\t50\n")
    (tmp_path / "ml.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                      "5\tHeat\t1995\tAction\n6\tBabe\t1995\tComedy\n")
    return tmp_path


def test_atomic_header_with_byte_order_mark_is_read(tmp_path):
    _atomic(tmp_path)
    (tmp_path / "ml.inter").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "ml.inter").read_bytes())
    assert load_movielens_atomic(tmp_path, prefix="ml").n_interactions == 2


def test_atomic_wrong_header_names_row_1(tmp_path):
    _atomic(tmp_path, "user\titem\trating\ttime")
    with pytest.raises(DataFormatError, match=r"ml.inter, row 1: expected header columns"):
        load_movielens_atomic(tmp_path, prefix="ml")


def test_atomic_invalid_details_json_names_line_and_char(tmp_path):
    _atomic(tmp_path)
    (tmp_path / "details.json").write_text('[{"movie_id": 5,\n "description": "x",,}]')
    with pytest.raises(DataFormatError, match=r"details.json, row 2, column 'char"):
        load_movielens_atomic(tmp_path, prefix="ml")


def test_a_poster_that_is_not_an_image_becomes_a_missing_image_view(tmp_path):
    from PIL import Image

    from sidkit.features import embed_catalogue

    _atomic(tmp_path)
    (tmp_path / "posters").mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "posters" / "5.jpg")
    (tmp_path / "posters" / "6.jpg").write_text("<html>not a poster</html>")
    cat = load_movielens_atomic(tmp_path, prefix="ml")
    emb = embed_catalogue(cat, None, {"behaviour": {"enabled": False}, "cache_dir": str(tmp_path / "cache")})
    ids = emb.item_ids
    assert emb.masks["image"].tolist() == [i == "5" for i in ids]
    assert not emb.views["image"][ids.index("6")].any()
    assert emb.encoders["image"]["n_unreadable"] == 1 and "6" in emb.encoders["image"]["unreadable"]


def test_rows_that_vanish_without_a_quarantine_entry_stop_the_gate(tmp_path):
    cat = load_amazon_sequences(_sequences(tmp_path, "u1 a b c\n", ITEMS))
    cat.rows_read["interactions"] += 2  # as if the loader had dropped two rows silently
    report, _, _ = validate_catalogue(cat, {"on_invalid": "quarantine", "min_user_interactions": 1})
    with pytest.raises(DataValidationError, match="unaccounted for.*interactions: read 5 != kept 3"):
        raise_for_report(report)


def test_snapshot_exclusions_are_counted(tmp_path):
    from sidkit.data.snapshots import take_snapshot

    day = 86400
    base = 880_000_000
    cat = load_movielens_grouplens(_grouplens(
        tmp_path, [f"1\t10\t4\t{base}", f"1\t11\t4\t{base + day}", f"2\t10\t4\t{base + 90 * day}"], ML_ITEMS))
    snap = take_snapshot(cat, "1997-11")
    report, _, _ = accounted(snap)
    assert report.accounting["interactions"]["excluded"] == 1
    assert np.sum([a["excluded"] for a in report.accounting.values()]) >= 1


# ------------------------------------------------------------------ slices of the real data

def test_beauty_slice_with_injected_faults_is_accounted_for(shared_data, tmp_path):
    src = shared_data / "amazon-beauty"
    seq = (src / "sequences.txt").read_bytes().splitlines()[:300]
    seq[40] = seq[40] + b" B_NOT_AN_ITEM"                   # an unknown item at the end of row 41
    seq[120] = seq[120].replace(b" ", b" \xfe", 1)          # a bad byte in row 121
    seq[200] = seq[200].split()[0]                          # a user without items on row 201
    items = (src / "items.csv").read_bytes().splitlines()
    items[10] = items[10].replace(b",", b',"', 1)           # an unterminated quote on row 11
    (tmp_path / "sequences.txt").write_bytes(b"\n".join(seq) + b"\n")
    (tmp_path / "items.csv").write_bytes(b"\n".join(items) + b"\n")
    cat = load_amazon_sequences(tmp_path)
    rej = rejected(cat)
    assert set(rej) == {("sequences.txt", 121), ("sequences.txt", 201), ("items.csv", 11)}
    report, q, kept = accounted(cat, min_user_interactions=3)
    unknown = q.filter(pl.col("check") == "item_exists").row(0, named=True)
    assert unknown["row"] == 41 and unknown["field"] == len(seq[40].split()) - 1 and unknown["column"] == "item_id"
    assert report.accounting["items"]["read"] == len(items) - 1


def test_movielens_slice_with_a_broken_poster_and_a_bom(shared_data, tmp_path):
    src = shared_data / "movielens-100k"
    inter = (src / "ml-100k.inter").read_bytes().splitlines()[:2001]
    (tmp_path / "ml-100k.inter").write_bytes(b"\xef\xbb\xbf" + b"\n".join(inter) + b"\n")
    (tmp_path / "ml-100k.item").write_bytes((src / "ml-100k.item").read_bytes())
    (tmp_path / "posters").mkdir()
    for p in sorted((src / "posters").iterdir())[:5]:
        (tmp_path / "posters" / p.name).write_bytes(p.read_bytes()[: 200 if p == sorted((src / "posters").iterdir())[0]
                                                                      else None])
    cat = load_movielens_atomic(tmp_path, details=None)
    assert cat.n_interactions == 2000 and cat.rejected.height == 0
    accounted(cat)
    from sidkit.features import embed_catalogue

    emb = embed_catalogue(cat, None, {"text": {"enabled": False}, "behaviour": {"enabled": False},
                                      "cache_dir": str(tmp_path / "cache")})
    truncated = sorted((src / "posters").iterdir())[0].stem
    assert emb.encoders["image"]["n_unreadable"] == 1 and truncated in emb.encoders["image"]["unreadable"]
    assert emb.masks["image"].sum() == 4
