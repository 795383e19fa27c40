"""sidkit command line: a thin layer over the ZenML pipelines.

    python run.py train --config configs/train.yaml [--summary OUT.json] [--no-cache]
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
            step = run.steps.get("validate_data")
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


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Pipeline YAML (see configs/).")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
@click.option("--no-cache", is_flag=True, help="Re-run every step even if its inputs are unchanged.")
@click.option("--run-name", default=None, help="Name of the ZenML run (default: from the config).")
def train(config_path: str, summary_path: str | None, no_cache: bool, run_name: str | None) -> None:
    """Run the training pipeline: data -> validation -> embeddings -> tokenizer -> SIDs."""
    from pipelines.training import training_pipeline

    options: dict = {"config_path": config_path}
    if no_cache:
        options["enable_cache"] = False
    if run_name:
        options["run_name"] = run_name
    try:
        run = training_pipeline.with_options(**options)()
        summary = run.steps["publish_tokenizer"].outputs["training_summary"][0].load()
    except Exception as exc:  # noqa: BLE001 - any failure becomes a non-zero exit with a summary
        summary = _failure_summary("training_pipeline", exc)
        _write_summary(summary_path, summary)
        click.echo(f"training failed in step {summary.get('failed_step', '?')}: {summary['error']}", err=True)
        logging.getLogger("sidkit").debug("".join(traceback.format_exception(exc)))
        sys.exit(1)
    _write_summary(summary_path, summary)
    q = summary["sid_quality"]
    click.echo(f"run {summary['run_name']}: {summary['tokenizer']['method']} on {summary['dataset']['name']} -> "
               f"model version {summary['model_version']}; collision rate {q['collision_rate']:.4f} -> "
               f"{q['collision_rate_final']:.4f}; utilisation {[round(u, 3) for u in q['utilization']]}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
