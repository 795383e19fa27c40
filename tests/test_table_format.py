"""dataset format `table`: any interactions + items tables, columns named in the config."""

import gzip
import json

import polars as pl
import pytest
import yaml

from sidkit.data.loaders import load_dataset
from sidkit.errors import DataFormatError

INTERACTIONS = [("u1", "A", 30, 5.0), ("u1", "B", 10, 4.0), ("u2", "A", 20, 3.0), ("u2", "C", 40, 1.0)]
ITEMS = [("A", "Red lipstick", "Acme", "a.jpg"), ("B", "Blue shampoo", "", ""), ("C", "Soap, mild", "Bubbles", "../x.jpg")]
COLUMNS = {"user_id": "customer", "item_id": "product", "timestamp": "ts", "rating": "stars",
           "text": ["name", "brand"], "image": "picture"}


def _write(folder, kind: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    inter = pl.DataFrame(INTERACTIONS, schema=["customer", "product", "ts", "stars"], orient="row") \
        .with_columns(pl.lit("web").alias("channel"))           # an extra column, ignored
    items = pl.DataFrame(ITEMS, schema=["sku", "name", "brand", "picture"], orient="row") \
        .with_columns(pl.lit("x").alias("unused"))
    if kind == "parquet":
        inter.write_parquet(folder / "events.parquet")
        items.write_parquet(folder / "products.parquet")
    elif kind == "jsonl":
        inter.write_ndjson(folder / "events.jsonl")
        items.write_ndjson(folder / "products.jsonl")
    else:
        sep = "," if kind == "csv" else "\t"
        inter.write_csv(folder / f"events.{kind}", separator=sep)
        items.write_csv(folder / f"products.{kind}", separator=sep)
    return {"format": "table", "name": "shop", "path": str(folder), "interactions": f"events.{kind}",
            "items": f"products.{kind}", "columns": {**COLUMNS, "item_key": "sku"}}


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet"])
def test_every_table_format_gives_the_same_catalogue(tmp_path, kind):
    cat = load_dataset(_write(tmp_path / kind, kind))
    reference = load_dataset(_write(tmp_path / "ref", "csv"))

    def content(c):   # the data, not where it was read from (image paths are absolute)
        items = c.items.select("item_id", "title", "description", pl.col("image_path").str.split("/").list.last())
        return items.sort("item_id").rows(), c.interactions.drop("_file", "_row", "_field").sort("user_id", "position").rows()

    assert content(cat) == content(reference)
    assert cat.rows_read == {"interactions": 4, "items": 3} and cat.rejected.height == 0
    items = {r["item_id"]: r for r in cat.items.iter_rows(named=True)}
    assert items["A"]["title"] == "Red lipstick" and items["A"]["description"] == "brand: Acme"
    assert items["B"]["description"] is None                       # an empty column adds nothing
    assert items["A"]["image_path"].endswith("a.jpg")
    assert items["C"]["image_path"] is None                        # ../x.jpg leaves the folder: no image
    u1 = cat.interactions.filter(pl.col("user_id") == "u1").sort("position")
    assert u1["item_id"].to_list() == ["B", "A"] and u1["rating"].to_list() == [4.0, 5.0]   # ordered by time


def test_bad_rows_are_rejected_by_file_row_and_column_and_every_row_is_counted(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "events.csv").write_bytes(
        b"customer,product,ts\n"
        b"u1,A,1\n"
        b",B,2\n"                      # row 3: no user
        b"u1,C,yesterday\n"            # row 4: timestamp not a number
        b"u2,A,3,extra\n"              # row 5: one field too many
        b"u2,\xff\xfe,4\n"             # row 6: not UTF-8
        b"u2,B,5\n")
    (folder / "items.csv").write_text('id,title,notes\nA,"Lipstick\nwith a line break",x\nB,Shampoo,y\n,Nameless,z\n'
                                      'C,"Soap,mild\n')   # row 5: an empty id; row 6: a quote never closed
    cfg = {"format": "table", "path": str(folder), "interactions": "events.csv", "items": "items.csv",
           "columns": {"user_id": "customer", "item_id": "product", "timestamp": "ts", "item_key": "id",
                       "text": ["title"]}}
    cat = load_dataset(cfg)
    rejected = {(r["table"], r["row"]): r for r in cat.rejected.iter_rows(named=True)}
    assert rejected[("interactions", 3)]["column"] == "customer"
    assert rejected[("interactions", 4)]["column"] == "ts" and "yesterday" in rejected[("interactions", 4)]["reason"]
    assert "expected 3 fields" in rejected[("interactions", 5)]["reason"]
    assert "UTF-8" in rejected[("interactions", 6)]["reason"].upper()
    assert rejected[("items", 5)]["column"] == "id"
    assert "CSV error" in rejected[("items", 6)]["reason"]
    for table, frame in (("interactions", cat.interactions), ("items", cat.items)):
        n_rejected = cat.rejected.filter(pl.col("table") == table).height
        assert frame.height + n_rejected == cat.rows_read[table], table      # kept + rejected = read
    assert sorted(cat.interactions["_row"].to_list()) == [2, 7]
    titles = dict(zip(cat.items["item_id"], cat.items["title"]))
    assert titles == {"A": "Lipstick\nwith a line break", "B": "Shampoo"}
    assert cat.items.filter(pl.col("item_id") == "B")["_row"].item() == 4    # the row a record starts on


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_a_misnamed_column_is_one_error_naming_file_and_column(tmp_path, kind):
    cfg = _write(tmp_path, kind)
    cfg["columns"] = {**cfg["columns"], "timestamp": "time"}
    with pytest.raises(DataFormatError, match="time") as err:
        load_dataset(cfg)
    assert err.value.file.endswith(f"events.{kind}") and err.value.column == "time"


def test_gzipped_json_lines_and_an_unknown_suffix(tmp_path):
    cfg = _write(tmp_path, "jsonl")
    with open(tmp_path / "events.jsonl", "rb") as src, gzip.open(tmp_path / "events.jsonl.gz", "wb") as dst:
        dst.write(src.read())
    assert load_dataset({**cfg, "interactions": "events.jsonl.gz"}).n_interactions == 4
    (tmp_path / "events.xlsx").write_text("x")
    with pytest.raises(DataFormatError, match="unknown table format"):
        load_dataset({**cfg, "interactions": "events.xlsx"})


def test_the_config_check_validates_the_columns_before_anything_runs(tmp_path):
    from sidkit.config import ConfigFileError, check_config_file

    cfg = _write(tmp_path, "csv")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"parameters": {"dataset": cfg}}))
    check_config_file(path)
    cfg["columns"]["txt"] = ["name"]
    path.write_text(yaml.safe_dump({"parameters": {"dataset": cfg}}))
    with pytest.raises(ConfigFileError, match="txt"):
        check_config_file(path)
    del cfg["items"]
    path.write_text(yaml.safe_dump({"parameters": {"dataset": cfg}}))
    with pytest.raises(ConfigFileError, match="'items'"):
        check_config_file(path)
    assert json.dumps(cfg)  # the config stays plain data


@pytest.mark.slow
def test_a_new_user_trains_on_a_csv_catalogue_and_their_own_embeddings_by_config_only(tmp_path):
    """What README shows: a CSV with other column names and extra columns, a precomputed view, one config."""
    import numpy as np
    from click.testing import CliRunner

    import run
    from sidkit.data.synthetic import SyntheticConfig, generate_catalogue

    cat = generate_catalogue(SyntheticConfig(n_items=120, n_users=100, n_clusters=4, seed=3, with_images=False))
    shop = tmp_path / "shop"
    shop.mkdir()
    cat.interactions.select(pl.col("user_id").alias("customer"), pl.col("item_id").alias("sku"),
                            pl.col("position").alias("seq"), pl.lit("web").alias("channel")) \
        .write_csv(shop / "orders.csv")
    cat.items.select(pl.col("item_id").alias("sku"), pl.col("title").alias("name"),
                     pl.col("description").alias("blurb"), pl.lit(1.5).alias("price")).write_csv(shop / "products.csv")
    ids = cat.items["item_id"].to_list()
    np.save(shop / "clip.npy", np.random.default_rng(0).normal(size=(len(ids), 16)).astype(np.float32))
    (shop / "clip_ids.txt").write_text("\n".join(ids))
    config = {
        "run_name": "shop-{date}-{time}", "model": {"name": "sidkit-tokenizer-shop"},
        "parameters": {
            "dataset": {"format": "table", "name": "shop", "path": str(shop), "interactions": "orders.csv",
                        "items": "products.csv",
                        "columns": {"user_id": "customer", "item_id": "sku", "timestamp": "seq",
                                    "text": ["name", "blurb"]}},
            "validation": {"on_invalid": "fail"},
            "features": {"text": {"fields": ["title", "description"]}, "image": {"enabled": False},
                         "behaviour": {"enabled": False},
                         "precomputed": {"clip": {"path": str(shop / "clip.npy"), "ids": str(shop / "clip_ids.txt")}}},
            "tokenizer": {"method": "rqkmeans", "input_views": ["text", "clip"], "levels": 2, "codebook_size": 8},
            "tracking": {"enabled": False}}}
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "s.json"
    result = CliRunner().invoke(run.cli, ["train", "--config", str(path), "--summary", str(out)])
    assert result.exit_code == 0, result.output
    s = json.loads(out.read_text())
    assert s["dataset"]["n_items"] == cat.n_items and s["dataset"]["n_users"] == cat.n_users
    assert s["tokenizer"]["input_views"] == ["text", "clip"]
    assert s["encoders"]["clip"]["model"] == "precomputed" and s["encoders"]["clip"]["n_missing"] == 0
