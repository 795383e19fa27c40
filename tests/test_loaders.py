"""Loaders: each public format, and malformed input of each naming file, row and column."""

import gzip
import json

import polars as pl
import pytest

from sidkit.data.loaders import (
    load_amazon2014,
    load_amazon2018,
    load_amazon_sequences,
    load_dataset,
    load_movielens_atomic,
    load_movielens_grouplens,
)
from sidkit.errors import ConfigError, DataFormatError


def _gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _review(user, item, t, rating=5.0):
    return json.dumps({"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": t})


def test_amazon2014_reads_python_literal_meta_and_orders_by_time(tmp_path):
    reviews = _gz(tmp_path / "reviews_Beauty_5.json.gz", [
        _review("u1", "B2", 300), _review("u1", "B1", 100), _review("u1", "B3", 200), _review("u2", "B1", 50)])
    meta = _gz(tmp_path / "meta_Beauty.json.gz", [
        "{'asin': 'B1', 'title': 'Rose Lip Balm', 'categories': [['Beauty', 'Lips']], 'brand': 'Acme'}",
        "{'asin': 'B2', 'title': \"Men's Razor\", 'description': 'Sharp.'}",
        "{'asin': 'B3', 'title': 'Soap'}",
        "{'asin': 'B9', 'title': 'never reviewed'}",
    ])
    cat = load_amazon2014(reviews, meta)
    assert cat.n_items == 3 and cat.n_interactions == 4 and cat.rejected.height == 0
    u1 = cat.interactions.filter(pl.col("user_id") == "u1").sort("position")
    assert u1["item_id"].to_list() == ["B1", "B3", "B2"]
    b1 = cat.items.filter(pl.col("item_id") == "B1").row(0, named=True)
    assert b1["title"] == "Rose Lip Balm" and "Categories: Beauty, Lips" in b1["attributes"] and "Acme" in b1["attributes"]


def test_amazon2014_malformed_lines_are_rejected_with_file_row_column(tmp_path):
    reviews = _gz(tmp_path / "reviews.json.gz", [
        _review("u1", "B1", 1), "{not json", json.dumps({"reviewerID": "u1", "overall": 4}),
        json.dumps({"reviewerID": "u2", "asin": "B1", "overall": "five", "unixReviewTime": 3})])
    meta = _gz(tmp_path / "meta.json.gz", ["{'asin': 'B1', 'title': 'x'}", "{'asin': 'B2', 'title': "])
    cat = load_amazon2014(reviews, meta)
    rej = cat.rejected.sort(["file", "row"])
    by = {(r["file"].split("/")[-1], r["row"]): r for r in rej.iter_rows(named=True)}
    assert by[("reviews.json.gz", 2)]["reason"].startswith("not a valid record")
    assert by[("reviews.json.gz", 3)]["column"] == "asin"
    assert by[("reviews.json.gz", 4)]["column"] == "overall"
    assert by[("meta.json.gz", 2)]["table"] == "items"
    assert cat.n_interactions == 1  # nothing silently fixed: the rest are in `rejected`


def test_amazon2018_reads_strict_json_and_rejects_python_literals(tmp_path):
    reviews = _gz(tmp_path / "r.json.gz", [_review("u1", "A1", 1), _review("u1", "A2", 2)])
    meta = _gz(tmp_path / "m.json.gz", [
        json.dumps({"asin": "A1", "title": "Guitar", "category": ["Instruments", "Guitars"], "description": ["Six", "strings"]}),
        "{'asin': 'A2', 'title': 'Drum'}",
    ])
    cat = load_amazon2018(reviews, meta)
    a1 = cat.items.filter(pl.col("item_id") == "A1").row(0, named=True)
    assert a1["description"] == "Six, strings" and "Instruments, Guitars" in a1["attributes"]
    assert cat.rejected.filter(pl.col("row") == 2)["table"].to_list() == ["items"]
    # A2 was reviewed but its metadata line was malformed: it stays, with no text, for validation to judge
    assert cat.items.filter(pl.col("item_id") == "A2")["title"].to_list() == [None]


def test_amazon_sequences(tmp_path):
    (tmp_path / "sequences.txt").write_text("u1 a b c\nu2 c a\nu3\n")
    (tmp_path / "items.csv").write_text('asin,title\na,"Lip, gloss"\nb,Soap\nc,\nd,x,extra\n')
    cat = load_amazon_sequences(tmp_path)
    assert cat.interactions.filter(pl.col("user_id") == "u1").sort("position")["item_id"].to_list() == ["a", "b", "c"]
    assert cat.interactions["timestamp"].null_count() == cat.n_interactions
    assert cat.items.filter(pl.col("item_id") == "a")["title"].to_list() == ["Lip, gloss"]
    rej = {(r["file"].split("/")[-1], r["row"]): r for r in cat.rejected.iter_rows(named=True)}
    assert rej[("sequences.txt", 3)]["column"] == "items"
    assert ("items.csv", 5) in rej


def test_amazon_sequences_bad_header_names_file_and_row(tmp_path):
    (tmp_path / "sequences.txt").write_text("u1 a b c\n")
    (tmp_path / "items.csv").write_text("id,name\na,x\n")
    with pytest.raises(DataFormatError, match=r"items.csv, row 1"):
        load_amazon_sequences(tmp_path)


def _grouplens(tmp_path, data_lines, item_lines):
    (tmp_path / "u.data").write_text("\n".join(data_lines) + "\n")
    (tmp_path / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))


GENRES_COMEDY = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)


def test_movielens_grouplens(tmp_path):
    _grouplens(tmp_path, ["1\t10\t4\t881250949", "1\t20\t3\t881250940", "2\t10\t5\t881250000"],
               [f"10|Café au lait (1995)|01-Jan-1995||http://x|{GENRES_COMEDY}",
                f"20|Toy Story (1995)|01-Jan-1995||http://y|{GENRES_COMEDY}"])
    cat = load_movielens_grouplens(tmp_path)
    assert cat.n_items == 2 and cat.n_interactions == 3
    assert cat.items["title"][0] == "Café au lait (1995)"  # Latin-1 decoded
    assert "Comedy" in cat.items["attributes"][0]
    assert cat.interactions.filter(pl.col("user_id") == "1").sort("position")["item_id"].to_list() == ["20", "10"]


def test_movielens_grouplens_malformed_names_row_and_column(tmp_path):
    _grouplens(tmp_path, ["1\t10\t4\t881250949", "1\t10\tfour\t881250949", "1\t10"],
               [f"10|A|01-Jan-1995||http://x|{GENRES_COMEDY}", "11|B|01-Jan-1995||http://x|0|2"])
    cat = load_movielens_grouplens(tmp_path)
    rej = {(r["file"].split("/")[-1], r["row"]): r for r in cat.rejected.iter_rows(named=True)}
    assert rej[("u.data", 2)]["column"] == "rating"
    assert rej[("u.data", 3)]["column"] == "rating"  # missing fields: the first missing column
    assert ("u.item", 2) in rej


def test_movielens_atomic_with_details_and_posters(tmp_path):
    (tmp_path / "ml.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t5\t4\t100\n1\t6\t3\t50\n")
    (tmp_path / "ml.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                      "5\tHeat\t1995\tAction Crime\n6\tBabe\t1995\tChildren's Comedy\n")
    (tmp_path / "details.json").write_text(json.dumps([{"movie_id": 5, "description": "A heist.", "director": "['Michael Mann']"}]))
    (tmp_path / "posters").mkdir()
    from PIL import Image

    Image.new("RGB", (10, 10)).save(tmp_path / "posters" / "5.jpg")
    cat = load_movielens_atomic(tmp_path, prefix="ml")
    heat = cat.items.filter(pl.col("item_id") == "5").row(0, named=True)
    assert heat["description"] == "A heist." and "Michael Mann" in heat["attributes"]
    assert heat["image_path"].endswith("5.jpg")
    assert cat.items.filter(pl.col("item_id") == "6")["image_path"].to_list() == [None]  # no poster: no image


def test_movielens_atomic_bad_header(tmp_path):
    (tmp_path / "ml.inter").write_text("user\titem\n1\t2\n")
    (tmp_path / "ml.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
    with pytest.raises(DataFormatError, match=r"ml.inter, row 1"):
        load_movielens_atomic(tmp_path, prefix="ml")


def test_load_dataset_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset.format"):
        load_dataset({"format": "csv"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset({"format": "movielens_atomic", "path": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="unknown option"):
        load_dataset({"format": "amazon_sequences", "path": str(tmp_path), "colour": "red"})


def test_synthetic_is_seeded_and_has_long_tail(small_synthetic):
    from sidkit.data.synthetic import SyntheticConfig, generate

    cat, clusters = small_synthetic
    again, _ = generate(SyntheticConfig(n_items=120, n_users=90, n_clusters=4, with_images=False, seed=3))
    assert cat.content_hash() == again.content_hash()
    counts = cat.interactions.group_by("item_id").len()["len"].sort(descending=True).to_numpy()
    assert counts[0] >= 4 * counts[len(counts) // 2]  # power-law popularity: a head and a tail
    assert cat.interactions.group_by("user_id").len()["len"].min() >= 5


def test_synthetic_images_and_missing_mask(session_home):
    from sidkit.data.synthetic import SyntheticConfig, generate

    cat, _ = generate(SyntheticConfig(n_items=40, n_users=20, missing_image_rate=0.25, seed=1))
    paths = cat.items["image_path"].to_list()
    assert any(p is None for p in paths) and any(p is not None for p in paths)
    assert all(str(session_home) in p for p in paths if p)
