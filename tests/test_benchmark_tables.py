"""The downstream table's bookkeeping: a re-run keeps the row it replaced and is compared with it on the same users."""

import numpy as np

import benchmarks.downstream_table as table


def _row(method, run, recall, inputs, ranks_file, precision):
    return {"method": method, "model_version": "1", "status": "succeeded", "eval_config_sha256": "p" * 64,
            "measured_at": run, "isa": "AMX", "precision": precision, "ranks_file": ranks_file,
            "retrieval": {"recall@10": recall, "train_seconds": 600.0, "inputs_sha256": inputs}}


def test_a_rerun_is_compared_with_the_row_it_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(table, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    old = rng.integers(0, 30, 2000)                  # rank 0 = missed, else 1-based rank
    new = old.copy()
    new[:200] = 1                                    # 200 more users hit at rank 1
    np.save(folder / "t_rqkmeans_a.npy", old)
    np.save(folder / "t_rqkmeans_b.npy", new)
    before = _row("rqkmeans", "2026-12-01", 0.30, "x" * 64, "t_rqkmeans_a.npy", "fp32")
    after = _row("rqkmeans", "2026-12-02", 0.38, "x" * 64, "t_rqkmeans_b.npy", "bf16")
    lines = table.reruns("t", [after], [before])
    assert len(lines) == 5 and "| identical |" in lines[-1] and "fp32" in lines[-1]
    d = table.paired("t", before, after)
    assert d["lift"] > 0.05 and d["p_value"] < 0.01
    # another protocol is never compared; other inputs are named as such
    assert table.reruns("t", [after], [{**before, "eval_config_sha256": "q" * 64}]) == []
    other = {**before, "retrieval": {**before["retrieval"], "inputs_sha256": "y" * 64}}
    assert "| DIFFERENT |" in table.reruns("t", [after], [other])[-1]
    assert table.paired("t", after, after) is None   # a row against itself: nothing to compare
