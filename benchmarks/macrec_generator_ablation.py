"""MACRec's generator side on real data: the full setting against each switch turned off.

Takes the latest MACRec model version of the dataset's tokenizer model (trained by
`python run.py train --config configs/train_<dataset>_macrec.yaml`), the retrieval block of the
eval config, and trains the generator once per variant on the same splits and seed:

* full: views auto (text/behaviour or text/image branches as two views), tasks next + cross_next +
  translate, implicit alignment 0.01, dual-view ensemble (bonus 1.0);
* no ensemble: the full model, ranked by view 0's beams only (same trained weights);
* no implicit alignment: implicit_alignment 0;
* next only: view_tasks [next] (no cross-view prediction, no translation);
* joint (TIGER on the MACRec SID): views joint, the whole SID as one view.

    python benchmarks/macrec_generator_ablation.py --dataset movielens [--variants full joint] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks.common import ROOT, git_rev, machine, now, save_json, update_block  # noqa: E402
from benchmarks.downstream_table import MODELS, latest_versions  # noqa: E402

VARIANTS = {
    "full": {},
    "no implicit alignment": {"implicit_alignment": 0.0},
    "next only": {"view_tasks": ["next"]},
    "joint (one view)": {"views": "joint"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", choices=sorted(MODELS), default="movielens")
    ap.add_argument("--eval-config", default=None, help="default: configs/eval_<dataset>.yaml")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    versions = latest_versions(MODELS[args.dataset])
    if "macrec" not in versions:
        sys.exit(f"no MACRec model version of {MODELS[args.dataset]}; run "
                 f"python run.py train --config configs/train_{args.dataset}_macrec.yaml")
    from zenml.client import Client

    from sidkit.evaluation.downstream import IndexedSplits, evaluate_retrieval, sid_views
    from sidkit.retrieval.generator import GeneratorConfig, generate_ranked
    from sidkit.retrieval.metrics import retrieval_metrics, target_ranks

    eval_config = args.eval_config or f"configs/eval_{args.dataset}.yaml"
    base = yaml.safe_load((ROOT / eval_config).read_text())["parameters"]["retrieval"]
    mv = Client().get_model_version(MODELS[args.dataset], versions["macrec"])
    table, splits = mv.get_artifact("sid_table").load(), mv.get_artifact("splits").load()
    data = IndexedSplits.build(table, splits)
    runs = []
    for name in args.variants:
        cfg = GeneratorConfig.model_validate({**base, **VARIANTS[name]})
        t = time.perf_counter()
        metrics, model, vocab, history = evaluate_retrieval(table, splits, cfg)
        runs.append({"variant": name, "overrides": VARIANTS[name], "retrieval": metrics,
                     "views": sid_views(table, cfg.views), "wall_seconds": time.perf_counter() - t})
        print(name, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}, flush=True)
        if name == "full":   # the same weights, ranked without the ensemble
            t = time.perf_counter()
            no_ens = cfg.model_copy(update={"ensemble_bonus": None})
            ranked = generate_ranked(model, vocab, table.sids(), data.test_hist, no_ens, sid_views(table, cfg.views))
            m = retrieval_metrics(np.asarray(target_ranks(ranked, data.test_tgt)))
            m.update(train_seconds=metrics["train_seconds"], epochs=metrics["epochs"],
                     eval_seconds=time.perf_counter() - t)
            runs.append({"variant": "no ensemble (view 0's beams)", "overrides": {"ensemble_bonus": None},
                         "retrieval": m, "wall_seconds": time.perf_counter() - t})
            print("no ensemble", {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}, flush=True)
    save_json(f"macrec_generator_{args.dataset}", {"date": now(), "machine": machine(), "commit": git_rev(),
                                                   "model_version": versions["macrec"], "eval_config": eval_config,
                                                   "runs": runs})
    lines = [f"### MACRec generator side on {args.dataset}: ablation of each switch\n",
             f"{now()} · {machine()} · commit {git_rev()} · `python benchmarks/macrec_generator_ablation.py "
             f"--dataset {args.dataset} --write` · MACRec model version {versions['macrec']}, retrieval block of "
             f"`{eval_config}`, one generator per row (the no-ensemble row re-ranks the full model).\n",
             "| variant | R@5 | R@10 | N@5 | N@10 | epochs | generator train |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        m = r["retrieval"]
        lines.append(f"| {r['variant']} | {m['recall@5']:.4f} | {m['recall@10']:.4f} | {m['ndcg@5']:.4f} | "
                     f"{m['ndcg@10']:.4f} | {m.get('epochs', '')} | {m.get('train_seconds', 0) / 60:.1f} min |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        update_block(f"macrec-generator-{args.dataset}", text)


if __name__ == "__main__":
    main()
