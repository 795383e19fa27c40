"""sidkit command line: a thin layer over the ZenML pipelines.

    python run.py train --config configs/train.yaml [--summary OUT.json] [--no-cache]
    python run.py evaluate --config configs/eval_synthetic_fast.yaml [--model-version V] [--summary OUT.json]
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

import click

from sidkit.settings import configure_environment

configure_environment()  # before zenml / mlflow / GX are imported


def _write_summary(path: str | None, summary: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=2, default=str))


def _latest_run(pipeline_name: str):
    from zenml.client import Client

    runs = Client().list_pipeline_runs(sort_by="desc:created", size=1, pipeline_name=pipeline_name)
    return runs.items[0] if runs.items else None


def _failure_summary(pipeline_name: str, exc: BaseException) -> dict:
    summary: dict = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "run_id": None}
    try:
        run = _latest_run(pipeline_name)
        if run is not None:
            summary["run_id"] = str(run.id)
            summary["run_name"] = run.name
            step = run.steps.get("validate_data") if pipeline_name == "training_pipeline" else None
            if step is not None and step.status.value == "completed":
                report = step.outputs["validation_report"][0].load()
                summary["validation"] = {"passed": report.passed, "rejected_rows": report.rejected_rows,
                                         "mode": report.mode}
            for name, s in run.steps.items():
                if s.status.value == "failed":
                    summary["failed_step"] = name
                    info = s.exception_info
                    if info is not None:
                        cls = (info.source or "").rsplit(".", 1)[-1] or "Error"
                        message = info.message or info.traceback.strip().splitlines()[-1]
                        summary["error"] = f"{cls}: {message}" if info.message else message
    except Exception:  # the summary must be written even if the store is unreachable
        logging.getLogger("sidkit").debug("could not inspect the failed run", exc_info=True)
    return summary


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """Learn, evaluate, ship and monitor semantic IDs."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run(pipeline, pipeline_name: str, config_path: str, summary_step: str, summary_artifact: str,
         summary_path: str | None, no_cache: bool, run_name: str | None, overrides: dict | None = None) -> dict:
    """Run a pipeline from a YAML config; on failure write the failure summary and exit 1."""
    import tempfile

    import yaml

    options: dict = {}
    if no_cache:
        options["enable_cache"] = False
    if run_name:
        options["run_name"] = run_name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if overrides:
                cfg = yaml.safe_load(Path(config_path).read_text()) or {}
                cfg.setdefault("parameters", {}).update(overrides)
                config_path = str(Path(tmp) / "config.yaml")
                Path(config_path).write_text(yaml.safe_dump(cfg))
            run = pipeline.with_options(config_path=config_path, **options)()
        return run.steps[summary_step].outputs[summary_artifact][0].load()
    except Exception as exc:  # noqa: BLE001 - any failure becomes a non-zero exit with a summary
        summary = _failure_summary(pipeline_name, exc)
        _write_summary(summary_path, summary)
        click.echo(f"{pipeline_name} failed in step {summary.get('failed_step', '?')}: {summary['error']}", err=True)
        logging.getLogger("sidkit").debug("".join(traceback.format_exception(exc)))
        sys.exit(1)


CONFIG = click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
                      help="Pipeline YAML (see configs/).")
SUMMARY = click.option("--summary", "summary_path", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
NO_CACHE = click.option("--no-cache", is_flag=True, help="Re-run every step even if its inputs are unchanged.")
RUN_NAME = click.option("--run-name", default=None, help="Name of the ZenML run (default: from the config).")


@cli.command()
@CONFIG
@SUMMARY
@NO_CACHE
@RUN_NAME
def train(config_path: str, summary_path: str | None, no_cache: bool, run_name: str | None) -> None:
    """Run the training pipeline: data -> validation -> embeddings -> tokenizer -> SIDs."""
    from pipelines.training import training_pipeline

    summary = _run(training_pipeline, "training_pipeline", config_path, "publish_tokenizer", "training_summary",
                   summary_path, no_cache, run_name)
    _write_summary(summary_path, summary)
    q = summary["sid_quality"]
    click.echo(f"run {summary['run_name']}: {summary['tokenizer']['method']} on {summary['dataset']['name']} -> "
               f"model version {summary['model_version']}; collision rate {q['collision_rate']:.4f} -> "
               f"{q['collision_rate_final']:.4f}; utilisation {[round(u, 3) for u in q['utilization']]}")


@cli.command()
@CONFIG
@click.option("--model-version", default=None, help="Tokenizer model version (number, name or stage; default latest).")
@SUMMARY
@NO_CACHE
@RUN_NAME
def evaluate(config_path: str, model_version: str | None, summary_path: str | None, no_cache: bool,
             run_name: str | None) -> None:
    """Evaluate a registered tokenizer: generative retrieval (Recall/NDCG@K) and ranking (AUC/GAUC)."""
    import yaml

    from pipelines.evaluation import evaluation_pipeline, resolve_model_version

    # pin the version now, so "latest" or a stage means the same version in every step
    params = (yaml.safe_load(Path(config_path).read_text()) or {}).get("parameters", {})
    try:
        mv = resolve_model_version(params["tokenizer_model"], model_version or params.get("tokenizer_version"))
    except KeyError as exc:
        _write_summary(summary_path, {"status": "failed", "error": f"KeyError: {exc}", "run_id": None})
        click.echo(f"cannot evaluate: {exc}", err=True)
        sys.exit(1)
    overrides = {"tokenizer_version": str(mv.name)}
    summary = _run(evaluation_pipeline, "evaluation_pipeline", config_path, "publish_evaluation",
                   "evaluation_summary", summary_path, no_cache, run_name, overrides)
    _write_summary(summary_path, summary)
    r, k = summary["retrieval"], summary["ranking"]
    click.echo(f"{summary['tokenizer_model']} version {summary['model_version']}: recall@10 {r['recall@10']:.4f}, "
               f"ndcg@10 {r['ndcg@10']:.4f} ({r['n_users']} users); AUC {k['auc']:.4f}, GAUC {k['gauc']:.4f}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
