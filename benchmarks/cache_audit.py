"""Which recorded results could the embedding-cache bug have touched? (issue: data integrity, item 1)

Until commit 43e7737 ``EmbeddingCache.add`` stored one key but two vectors when an input repeated
within a call, so after a reload every key behind the first repeat pointed at a shifted row: a
*warm* cache handed items other items' text vectors. A cold run (empty cache) encoded correctly.

This script, per dataset of the downstream tables:

1. encodes the catalogue's texts as the first, cold run did (all positions in one call);
2. replays the first cold run through **the cache code as it was at commit 80b9d14** (read from git,
   not re-typed) and reloads it, as every later run with a warm cache did; counts the items whose
   vector then belonged to another text;
3. trains the configured tokenizers (deterministic, seeded) on both embeddings and compares their SID
   statistics with those recorded for the model versions in BENCHMARKS.md. A recorded figure equal to
   the correct-embedding run, and not to the warm-cache run, says that version was trained on correct
   embeddings; equal to the warm-cache run says it was not; neither says the history cannot be replayed.

    python benchmarks/cache_audit.py [--datasets beauty movielens] [--methods rqkmeans rqvae] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, git_rev, machine, now, save_json, update_block  # noqa: E402

BUGGY_COMMIT = "80b9d14"
CONFIGS = {"beauty": "configs/train_beauty_{m}.yaml", "movielens": "configs/train_movielens_{m}.yaml"}


def buggy_cache_module() -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BUGGY_COMMIT}:sidkit/features/cache.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("sidkit_cache_80b9d14")
    exec(compile(source, f"{BUGGY_COMMIT}:sidkit/features/cache.py", "exec"), module.__dict__)
    return module


def catalogue_texts(params: dict):
    from sidkit.data.loaders import load_dataset
    from sidkit.data.schema import item_texts
    from sidkit.data.validation import validate_catalogue

    _, _, cat = validate_catalogue(load_dataset(params["dataset"]), params.get("validation") or {})
    return cat, item_texts(cat.items, tuple(params["features"]["text"]["fields"]))


def warm_cache_vectors(texts: list[str], correct: np.ndarray, key_of) -> np.ndarray:
    """What a reload of the old cache returned after the first cold run wrote ``texts``."""
    old = buggy_cache_module()
    with tempfile.TemporaryDirectory() as tmp:
        keys = [key_of(t) for t in texts]
        # the old encode_cached: every missing position (repeats included) encoded and added in one call
        old.EmbeddingCache(tmp, "text").add(keys, correct)
        found, missing = old.EmbeddingCache(tmp, "text").lookup(keys)
    out = correct.copy()
    for pos, vec in found.items():
        out[pos] = vec
    assert not missing
    return out


def tokenizer_stats(emb, tok_cfg: dict, collisions: dict) -> dict:
    from sidkit.tokenizers.fit import assign_sids, fit_tokenizer

    t = time.perf_counter()
    tok, _ = fit_tokenizer(emb, tok_cfg)
    _, q = assign_sids(tok, emb, collisions.get("policy", "append_token"))
    q = q.model_dump() if hasattr(q, "model_dump") else dict(q.__dict__)
    return {"collision_rate": round(float(q["collision_rate"]), 4),
            "perplexity": [round(float(p)) for p in q["perplexity"]],
            "seconds": round(time.perf_counter() - t, 1)}


def audit(dataset: str, methods: list[str]) -> dict:
    import torch

    from sidkit.features import ItemEmbeddings
    from sidkit.features.cache import digest
    from sidkit.features.encoders import TextEncoder

    params = yaml.safe_load((ROOT / CONFIGS[dataset].format(m=methods[0])).read_text())["parameters"]
    cat, texts = catalogue_texts(params)
    # what the first, cold run computed: every position encoded in one call, repeats included (the
    # encoder's length-sorted batches then hold the same texts as they did, so the floats are the same)
    correct = TextEncoder().encode(texts)
    warm = warm_cache_vectors(texts, correct, digest)
    wrong = ~np.all(warm == correct, axis=1)
    distinct = len(set(texts))
    out = {"dataset": dataset, "n_items": len(texts), "distinct_texts": distinct,
           "repeated_text_items": len(texts) - distinct, "empty_texts": sum(1 for t in texts if not t),
           "items_reading_another_items_vector": int(wrong.sum()),
           "first_wrong_position": int(np.argmax(wrong)) if wrong.any() else None,
           "mean_cosine_warm_vs_correct": round(float(np.mean(np.sum(warm * correct, axis=1))), 4),
           "tokenizers": {}}
    ids = cat.items["item_id"].to_list()
    mask = np.array([bool(t) for t in texts])
    torch.set_num_threads(2)
    for method in methods:
        p = yaml.safe_load((ROOT / CONFIGS[dataset].format(m=method)).read_text())["parameters"]
        row = {}
        for name, vecs in (("correct", correct), ("warm_cache", warm)):
            emb = ItemEmbeddings(ids, {"text": vecs}, {"text": mask})
            row[name] = tokenizer_stats(emb, p["tokenizer"], p.get("collisions") or {})
            print(dataset, method, name, row[name], flush=True)
        out["tokenizers"][method] = row
    return out


def markdown(result: dict) -> str:
    lines = [
        "### Embedding-cache audit: what a warm cache handed out before the fix",
        "",
        f"{result['date']} · {result['machine']} · commit {result['commit']} · `python benchmarks/cache_audit.py "
        "--write` · the cache code of commit 80b9d14 replayed on each catalogue's texts (first cold run, then a "
        "reload); tokenizers trained on both embeddings with the table's configs (seeded, 2 threads).",
        "",
        "| dataset | items | repeated texts | empty texts | items given another item's vector | mean cosine to own vector |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["datasets"]:
        lines.append(f"| {r['dataset']} | {r['n_items']:,} | {r['repeated_text_items']} | {r['empty_texts']} | "
                     f"{r['items_reading_another_items_vector']:,} ({r['items_reading_another_items_vector'] / r['n_items']:.1%}) | "
                     f"{r['mean_cosine_warm_vs_correct']:.3f} |")
    lines += ["", "| dataset | tokenizer | embeddings | collision rate before resolution | perplexity per position | fit |",
              "|---|---|---|---:|---|---:|"]
    for r in result["datasets"]:
        for method, row in r["tokenizers"].items():
            for name, s in row.items():
                lines.append(f"| {r['dataset']} | {method} | {name.replace('_', ' ')} | {s['collision_rate']:.4f} | "
                             f"{' / '.join(map(str, s['perplexity']))} | {s['seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["beauty", "movielens"], choices=sorted(CONFIGS))
    ap.add_argument("--methods", nargs="+", default=["rqkmeans", "rqvae"])
    ap.add_argument("--write", action="store_true", help="save benchmarks/results/cache_audit.json and BENCHMARKS.md")
    args = ap.parse_args()
    result = {"date": now(), "machine": machine(), "commit": git_rev(),
              "datasets": [audit(d, args.methods) for d in args.datasets]}
    print(markdown(result))
    if args.write:
        save_json("cache_audit", result)
        update_block("cache-audit", markdown(result))


if __name__ == "__main__":
    main()
