"""Small slices of the real datasets in ../shared/data (skipped, with the reason, if absent)."""

import numpy as np
import polars as pl

from sidkit.data.loaders import load_amazon_sequences, load_movielens_atomic
from sidkit.data.schema import Catalogue
from sidkit.data.splits import leave_one_out
from sidkit.data.validation import validate_catalogue
from sidkit.features import embed_catalogue
from sidkit.tokenizers.fit import assign_sids, fit_tokenizer


def _slice(cat: Catalogue, n_users: int, max_items: int | None = None) -> Catalogue:
    users = cat.interactions["user_id"].unique(maintain_order=True).head(n_users)
    inter = cat.interactions.filter(pl.col("user_id").is_in(users.implode()))
    items = cat.items.filter(pl.col("item_id").is_in(inter["item_id"].unique().implode()))
    if max_items:
        items = items.head(max_items)
        inter = inter.filter(pl.col("item_id").is_in(items["item_id"].implode()))
        keep = inter.group_by("user_id").len().filter(pl.col("len") >= 3)["user_id"]
        inter = inter.filter(pl.col("user_id").is_in(keep.implode()))
        inter = inter.with_columns(pl.int_range(pl.len()).over("user_id").cast(pl.Int64).alias("position"))
    return Catalogue(cat.name, items, inter, cat.rejected, cat.source)


def test_beauty_full_load_and_slice_to_sids(shared_data):
    full = load_amazon_sequences(shared_data / "amazon-beauty")
    assert (full.n_users, full.n_items, full.n_interactions) == (22363, 12101, 198502)
    assert full.rejected.height == 0
    cat = _slice(full, 60)
    report, quarantine, validated = validate_catalogue(cat)
    assert report.passed, report.failure_message()
    splits = leave_one_out(validated.interactions)
    emb = embed_catalogue(validated, splits, {"image": {"enabled": False}, "behaviour": {"epochs": 2, "dim": 16}})
    assert set(emb.views) == {"text", "behaviour"}  # Beauty has no images: no image view
    tok, _ = fit_tokenizer(emb, {"method": "rqkmeans", "levels": 2, "codebook_size": 16})
    table, q = assign_sids(tok, emb, "append_token")
    assert q.collision_rate_final == 0 and table.frame.height == validated.n_items


def test_movielens_full_load_and_slice_with_posters(shared_data):
    full = load_movielens_atomic(shared_data / "movielens-100k")
    assert (full.n_users, full.n_items, full.n_interactions) == (943, 1682, 100000)
    assert full.n_images == 1615 and full.rejected.height == 0
    assert full.items["description"].is_not_null().sum() >= 1500
    cat = _slice(full, 30, max_items=40)
    report, _, validated = validate_catalogue(cat)
    assert report.passed, report.failure_message()
    splits = leave_one_out(validated.interactions)
    emb = embed_catalogue(validated, splits, {"behaviour": {"epochs": 1, "dim": 8}})
    assert set(emb.views) == {"text", "image", "behaviour"}
    assert emb.masks["image"].sum() == validated.items["image_path"].is_not_null().sum()
    tok, _ = fit_tokenizer(emb, {"method": "rqvae", "input_views": ["text", "image"], "levels": 2,
                                 "codebook_size": 8, "latent_dim": 8, "hidden_dims": [64], "epochs": 5,
                                 "batch_size": 32})
    table, q = assign_sids(tok, emb, "relocate")
    assert q.collision_rate_final == 0 and len(table.sid_columns) == 2
    assert np.isfinite(q.recon_loss)
