"""Collision policies: final SIDs unique, deterministic, nearest-first."""

import numpy as np
import pytest

from sidkit.evaluation.sid_quality import collision_rate
from sidkit.sids.collisions import append_token, relocate, resolve_collisions


def _dist(codes, k, rng):
    d = rng.random((len(codes), codes.shape[1], k)).astype(np.float32) + 0.1
    d[np.arange(len(codes))[:, None], np.arange(codes.shape[1])[None], codes] = 0.01  # own code nearest
    return d


def test_append_token_orders_group_by_distance():
    codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2]])
    d = np.ones((4, 2, 8))
    d[0, 1, 2], d[1, 1, 2], d[3, 1, 2] = 0.5, 0.1, 0.3
    out = append_token(codes, d)
    assert out[:, 2].tolist() == [2, 0, 0, 1]
    assert collision_rate(out) == 0


def test_relocate_moves_only_the_farther_items_to_nearest_free_code():
    codes = np.array([[0, 1], [0, 1], [2, 3]])
    d = np.full((3, 2, 4), 5.0)
    d[0, 1] = [3.0, 0.2, 1.0, 4.0]  # item 0: own code 1 at 0.2
    d[1, 1] = [0.5, 0.1, 2.0, 0.3]  # item 1 is closer to code 1 -> keeps it
    out = relocate(codes, d)
    assert out[1].tolist() == [0, 1]
    assert out[0].tolist() == [0, 2]  # next nearest free last-level code for item 0 (1.0 < 3.0)
    assert out[2].tolist() == [2, 3]


def test_relocate_falls_back_to_earlier_levels_when_last_level_is_full():
    # 3 items on (0, 0) with K = 2: the last level has only 2 codes, so one must change level 0
    codes = np.zeros((3, 2), dtype=int)
    d = np.ones((3, 2, 2))
    out = relocate(codes, d, [2, 2])
    assert collision_rate(out) == 0


@pytest.mark.parametrize("policy", ["append_token", "relocate"])
def test_policies_give_unique_deterministic_sids_under_heavy_collisions(policy):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(400, 3))  # 27 raw tuples for 400 items
    codes[:, 2] = rng.integers(0, 8, size=400)
    d = _dist(codes, 8, rng)
    out1 = resolve_collisions(codes, d, policy, [8, 8, 8])
    out2 = resolve_collisions(codes.copy(), d.copy(), policy, [8, 8, 8])
    assert collision_rate(out1) == 0
    np.testing.assert_array_equal(out1, out2)
    if policy == "relocate":
        assert out1.shape == codes.shape and (out1 < 8).all()
        untouched = np.unique(codes, axis=0, return_counts=True)
        singles = {tuple(t) for t, c in zip(*untouched) if c == 1}
        for raw, final in zip(codes, out1):
            if tuple(raw) in singles:
                assert tuple(final) == tuple(raw)  # items without a collision keep their SID


def test_relocate_refuses_when_code_space_is_too_small():
    with pytest.raises(ValueError, match="code space"):
        relocate(np.zeros((5, 1), int), np.ones((5, 1, 4)), [4])


def test_none_policy_keeps_codes():
    codes = np.array([[0, 0], [0, 0]])
    assert resolve_collisions(codes, None, "none").tolist() == codes.tolist()


def test_prior_occupancy_is_never_handed_out_again():
    # append_token: tokens under a prefix continue after the taken ones (published 0 and 3 -> next is 4)
    taken = np.array([[1, 2, 0], [1, 2, 3], [5, 5, 0]])
    codes = np.array([[1, 2], [7, 7], [1, 2]])
    d = np.ones((3, 2, 8))
    d[0, 1, 2], d[2, 1, 2] = 0.4, 0.2
    out = append_token(codes, d, taken)
    assert out.tolist() == [[1, 2, 5], [7, 7, 0], [1, 2, 4]]      # the closer item gets the first free token
    assert append_token(codes, d).tolist() == [[1, 2, 1], [7, 7, 0], [1, 2, 0]]   # nothing taken: as before
    # relocate: a taken tuple moves every item on it, a free one is kept by the closest; never onto a taken one
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, size=(30, 2))         # 30 items on at most 16 raw tuples of an 8 x 8 space
    prior = np.array([tuple(codes[0]), (3, 3), (0, 1)])
    out = resolve_collisions(codes, _dist(codes, 8, rng), "relocate", [8, 8], taken=prior)
    final = {tuple(r) for r in out.tolist()}
    assert len(final) == 30 and not final & {tuple(r) for r in prior.tolist()}
    with pytest.raises(ValueError, match="already taken"):
        relocate(np.zeros((3, 1), int), np.ones((3, 1, 4)), [4], taken=np.array([[0], [1]]))


def test_per_expert_blocks_resolve_each_block_and_need_relocate():
    from pydantic import ValidationError

    from sidkit.config import CollisionsConfig

    rng = np.random.default_rng(4)
    codes = np.concatenate([rng.integers(0, 3, (40, 2)), rng.integers(0, 3, (40, 2))], 1)
    out = resolve_collisions(codes, _dist(codes, 8, rng), "relocate", [8] * 4, blocks=[slice(0, 2), slice(2, 4)])
    assert collision_rate(out[:, :2]) == 0 and collision_rate(out[:, 2:]) == 0
    with pytest.raises(ValueError, match="relocate"):
        resolve_collisions(codes, None, "append_token", blocks=[slice(0, 2), slice(2, 4)])
    with pytest.raises(ValidationError, match="per_expert"):
        CollisionsConfig(policy="append_token", per_expert=True)
    assert CollisionsConfig(policy="relocate", per_expert=True).per_expert
