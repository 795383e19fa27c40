"""Leave-one-out splits: per user, the last item is test, the second-to-last validation.

Everything before the validation item is training data. Histories fed to models are
capped at ``max_history`` most recent items (20 by default, as in TIGER/LETTER/MACRec).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sidkit.errors import DataValidationError

TRAIN, VALID, TEST = "train", "valid", "test"


@dataclass
class Splits:
    """Interactions with a ``split`` column (``train``/``valid``/``test``) and the history cap."""

    interactions: pl.DataFrame
    max_history: int = 20

    def part(self, name: str) -> pl.DataFrame:
        return self.interactions.filter(pl.col("split") == name)

    def train_sequences(self) -> dict[str, list[str]]:
        """Each user's training items in order (uncapped: models cap their own windows)."""
        df = self.part(TRAIN).sort(["user_id", "position"])
        grouped = df.group_by("user_id", maintain_order=True).agg(pl.col("item_id"))
        return dict(zip(grouped["user_id"].to_list(), grouped["item_id"].to_list()))

    def examples(self, name: str) -> pl.DataFrame:
        """One row per user: ``user_id``, ``history`` (list, capped), ``target`` for valid or test.

        The validation history is the training items; the test history also includes
        the validation item (standard leave-one-out).
        """
        if name not in (VALID, TEST):
            raise ValueError("examples() takes 'valid' or 'test'")
        target = self.part(name).select("user_id", pl.col("item_id").alias("target"), pl.col("position").alias("tpos"))
        hist = (self.interactions.join(target, on="user_id").filter(pl.col("position") < pl.col("tpos"))
                .sort(["user_id", "position"])
                .group_by("user_id", maintain_order=True)
                .agg(pl.col("item_id").tail(self.max_history).alias("history")))
        return target.join(hist, on="user_id").select("user_id", "history", "target").sort("user_id")

    def train_item_counts(self) -> dict[str, int]:
        c = self.part(TRAIN).group_by("item_id").len()
        return dict(zip(c["item_id"].to_list(), c["len"].to_list()))

    def summary(self) -> dict:
        counts = self.interactions.group_by("split").len()
        out = {str(k): int(v) for k, v in zip(counts["split"].to_list(), counts["len"].to_list())}
        return {"max_history": self.max_history, **{f"n_{k}": out.get(k, 0) for k in (TRAIN, VALID, TEST)}}


def leave_one_out(interactions: pl.DataFrame, max_history: int = 20) -> Splits:
    """Split by ``position``: last = test, second-to-last = valid, the rest = train.

    Raises if any user has fewer than 3 interactions (validation should have caught it).
    """
    if max_history < 1:
        raise ValueError("max_history must be >= 1")
    df = interactions.sort(["user_id", "position"])
    n = df.group_by("user_id").len().filter(pl.col("len") < 3)
    if n.height:
        raise DataValidationError(
            f"{n.height} users have fewer than 3 interactions (e.g. {n['user_id'][0]!r}); "
            "leave-one-out needs train, validation and test items")
    df = df.with_columns(
        (pl.col("position").rank("ordinal", descending=True).over("user_id")).alias("_rev"))
    df = df.with_columns(
        pl.when(pl.col("_rev") == 1).then(pl.lit(TEST))
        .when(pl.col("_rev") == 2).then(pl.lit(VALID))
        .otherwise(pl.lit(TRAIN)).alias("split")).drop("_rev")
    return Splits(df, max_history=max_history)
