import pytest

from sidkit.data.schema import interactions_frame, order_interactions
from sidkit.data.splits import leave_one_out
from sidkit.errors import DataValidationError


def _inter(seqs):
    rows = [{"user_id": u, "item_id": i, "timestamp": t, "_file": "f", "_row": n}
            for n, (u, seq) in enumerate(seqs.items()) for t, i in enumerate(seq)]
    return order_interactions(interactions_frame(rows))


def test_leave_one_out_last_is_test_second_last_valid():
    s = leave_one_out(_inter({"u": ["a", "b", "c", "d", "e"], "v": ["x", "y", "z"]}), max_history=2)
    test = s.examples("test").to_dicts()
    assert test[0] == {"user_id": "u", "history": ["c", "d"], "target": "e"}  # capped at 2, includes valid item
    valid = s.examples("valid").to_dicts()
    assert valid[0] == {"user_id": "u", "history": ["b", "c"], "target": "d"}
    assert s.train_sequences() == {"u": ["a", "b", "c"], "v": ["x"]}
    assert s.summary() == {"max_history": 2, "n_train": 4, "n_valid": 2, "n_test": 2}


def test_leave_one_out_refuses_short_users():
    with pytest.raises(DataValidationError, match="fewer than 3"):
        leave_one_out(_inter({"u": ["a", "b"]}))
