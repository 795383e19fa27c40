"""SID quality metrics against hand-computed values, and the health gate."""

import math

import numpy as np
import pytest

from sidkit.errors import SIDHealthError
from sidkit.evaluation.sid_quality import (
    HealthThresholds,
    check_health,
    collision_rate,
    colliding_item_share,
    expert_blocks,
    gini,
    sid_quality,
)

CODES = np.array([[0, 0], [0, 0], [1, 0], [1, 1]])


def test_collision_rate_and_colliding_share():
    assert collision_rate(CODES) == pytest.approx(1 / 4)        # 4 items, 3 unique tuples
    assert colliding_item_share(CODES) == pytest.approx(2 / 4)  # two items share (0, 0)
    assert collision_rate(np.array([[1], [1], [1]])) == pytest.approx(2 / 3)


def test_collision_rate_per_expert_block():
    # two experts x 2 levels: jointly unique, but the second expert's block repeats (1, 1) three times
    codes = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 0]])
    blocks = expert_blocks({"experts": ["text", "image"], "levels": 2}, codes.shape[1])
    q = sid_quality(codes, None, [2] * 4, experts=blocks)
    assert q.collision_rate == 0
    assert q.collision_rate_per_expert == {"text": 0.0, "image": pytest.approx(2 / 4)}
    assert expert_blocks({"experts": ["text"], "levels": 2}, 2) == {}          # one expert: nothing to split
    assert expert_blocks({"experts": ["a", "b"], "levels": 2}, 5) == {}        # layout does not match: no guess
    assert sid_quality(codes, None, [2] * 4).collision_rate_per_expert == {}


def test_gini_hand_values():
    assert gini(np.array([1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 4])) == pytest.approx(2 / 3)
    assert gini(np.array([0, 0, 0])) == 0.0


def test_per_level_utilisation_perplexity_entropy_dead_codes():
    q = sid_quality(CODES, None, [4, 2], recon_loss=0.5)
    assert q.utilization == [pytest.approx(2 / 4), pytest.approx(2 / 2)]
    # level 0: codes {0: 2, 1: 2} -> uniform over 2 -> perplexity 2; level 1: {0: 3, 1: 1}
    assert q.perplexity[0] == pytest.approx(2.0)
    h1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert q.perplexity[1] == pytest.approx(math.exp(h1))
    assert q.normalized_entropy[0] == pytest.approx(math.log(2) / math.log(4))
    assert q.dead_codes == [2, 0]
    assert q.max_items_per_sid == 2
    assert q.joint_utilization == pytest.approx(3 / 4)  # 3 unique tuples / min(4 items, 8 tuples)
    assert q.collision_rate_final == q.collision_rate  # no resolution given
    assert q.recon_loss == 0.5


def test_health_gate_catches_collapse_and_collisions():
    collapsed = np.zeros((100, 2), dtype=int)
    collapsed[:, 1] = np.arange(100) % 50
    q = sid_quality(collapsed, collapsed, [64, 64])
    with pytest.raises(SIDHealthError, match="level 0: codebook utilisation"):
        check_health(q, HealthThresholds(min_utilization=0.1, min_normalized_entropy=None, max_collision_rate_final=None))
    with pytest.raises(SIDHealthError, match="after resolution"):
        check_health(q, HealthThresholds(min_utilization=None, min_normalized_entropy=None, max_collision_rate_final=0.0))
    healthy = sid_quality(np.stack([np.arange(100) % 64, np.arange(100) // 64], 1), None, [64, 64])
    check_health(healthy, HealthThresholds(min_utilization=0.01, min_normalized_entropy=0.1))


def test_utilisation_threshold_is_capped_by_item_count():
    # 10 items cannot use more than 10 of 256 codes; the gate must not call that collapse
    codes = np.stack([np.arange(10), np.arange(10)], 1)
    q = sid_quality(codes, None, [256, 256])
    check_health(q, HealthThresholds(min_utilization=0.1, min_normalized_entropy=None))
    with pytest.raises(SIDHealthError):
        check_health(sid_quality(codes[:, :1] * 0, None, [256]), HealthThresholds(min_utilization=0.1))


def test_every_quality_figure_has_a_name_mlflow_accepts():
    """Expert names such as 'shared0(text+image)' became metric names MLflow refuses, failing the training run."""
    import re

    from sidkit.tracking import metrics_of

    codes = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]])
    blocks = expert_blocks({"experts": ["shared0(text+image)", "text0(text)"], "levels": 2}, 4)
    names = metrics_of({**sid_quality(codes, None, [2] * 4, experts=blocks).to_dict(), "recall@10": 0.1}, "final.")
    assert "final.collision_rate_per_expert.shared0_text_image_" in names and "final.recall_at_10" in names
    assert all(re.fullmatch(r"[A-Za-z0-9_\-. :/]+", n) for n in names)
