"""sidkit command line: options and help only; what each command does is in pipelines/commands.py.

``python run.py --help`` lists the commands with examples, exit codes and environment variables.
"""

from __future__ import annotations

import logging

import click

from sidkit.settings import configure_environment, configure_threads

configure_environment()  # before zenml / mlflow / GX are imported

from pipelines.cli_support import check_device  # noqa: E402
from pipelines import commands  # noqa: E402 - imports no ZenML at module level; each command does


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (and tracebacks of expected failures).")
@click.option("--overlay", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Environment overlay (settings only), e.g. configs/overlays/kubernetes.yaml.")
def cli(verbose: bool, overlay: str | None) -> None:
    """Learn, evaluate, ship and monitor semantic IDs.

    \b
    Examples:
      python run.py train --config configs/train_beauty_rqkmeans.yaml --summary out/train.json
      python run.py evaluate --config configs/eval_beauty.yaml --model-version 3
      python run.py drift --config configs/drift_movielens.yaml --reference 1 --current 2 --fail-on-drift
      python run.py compare --config configs/compare_movielens.yaml --dry-run
      python run.py retrain --config configs/retrain_movielens.yaml --until 1998-02 --mode append
    \b
    Exit codes: 0 done; 1 the pipeline failed (the summary names the step); 2 bad config or
    arguments, nothing ran; 3 drift found (drift --fail-on-drift); 4 another retraining of the
    model holds its lock.
    \b
    Environment: SIDKIT_HOME (state folder: ZenML store, MLflow, reports; default .sidkit),
    SIDKIT_THREADS (compute threads), SIDKIT_DEVICE=cpu|auto|cuda[:N] (the trainers' device), SIDKIT_DRIFT_APPROVAL=
    approve|reject (answers the drift gate's human approval without an alerter), SIDKIT_PROGRESS=0 (no progress bars).
    """
    # no handler of our own: ZenML's console handler on the root logger prints every record once;
    # our logger gets its level explicitly and its records propagate there
    logging.getLogger("sidkit").setLevel(logging.DEBUG if verbose else logging.INFO)


CONFIG = click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
                      help="Pipeline YAML (see configs/).")
SUMMARY = click.option("--summary", "summary_path", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
NO_CACHE = click.option("--no-cache", is_flag=True, help="Re-run every step even if its inputs are unchanged.")
RUN_NAME = click.option("--run-name", default=None, help="Name of the ZenML run (default: from the config).")


def _sets(ctx: click.Context, _param, values: tuple[str, ...]) -> tuple[str, ...]:
    from pipelines import cli_support

    cli_support.SETS = tuple(values)
    return values


SET = click.option("--set", "sets", multiple=True, expose_value=False, callback=_sets, metavar="KEY=VALUE",
                   help="Override one config key (repeatable), e.g. --set tokenizer.epochs=5 (parameters. implied).")


@cli.command()
@CONFIG
@SET
@SUMMARY
@NO_CACHE
@RUN_NAME
def train(**options) -> None:
    """Run the training pipeline: data -> validation -> embeddings -> tokenizer -> SIDs."""
    commands.train(**options)


@cli.command()
@CONFIG
@click.option("--model-version", default=None, help="Tokenizer model version (number, name or stage; default latest).")
@SET
@SUMMARY
@NO_CACHE
@RUN_NAME
def evaluate(**options) -> None:
    """Evaluate a registered tokenizer: generative retrieval (Recall/NDCG@K) and ranking (AUC/GAUC)."""
    commands.evaluate(**options)


@cli.command()
@CONFIG
@click.option("--reference", "reference_version", default=None, help="Reference model version (default: production).")
@click.option("--current", "current_version", default=None, help="Current model version (default: latest).")
@click.option("--fail-on-drift", is_flag=True, help="Exit with code 3 when drift is detected.")
@SET
@SUMMARY
@RUN_NAME
def drift(**options) -> None:
    """SID drift between two model versions: Evidently report (reports folder + dashboard) and drift gate."""
    commands.drift(**options)


@cli.command()
@CONFIG
@click.option("--challenger", "challenger_version", default=None, help="Challenger version (default: latest).")
@click.option("--champion", "champion_version", default=None, help="Champion version (default: stage production).")
@click.option("--force", is_flag=True, help="Promote even if a drift gate rejected the challenger (recorded).")
@click.option("--dry-run", is_flag=True, help="Decide and report, change nothing.")
@SET
@SUMMARY
@RUN_NAME
def compare(**options) -> None:
    """Offline A/B: champion (production) vs challenger on the same users; promote if the rule passes."""
    commands.compare(**options)


@cli.command()
@CONFIG
@click.option("--until", default=None, help="Snapshot month YYYY-MM (sets dataset.snapshot.until).")
@click.option("--mode", type=click.Choice(["append", "full"]), default=None, help="Stable SIDs (append) or full retrain.")
@SET
@SUMMARY
@RUN_NAME
def retrain(**options) -> None:
    """The retraining loop: validate, challenger SIDs, drift report, A/B against the champion, promote or not."""
    commands.retrain(**options)


@cli.command()
@click.option("--pipeline", "pipeline_name", required=True,
              type=click.Choice(sorted(commands.SCHEDULABLE)))
@CONFIG
@click.option("--cron", required=True, help='Cron expression, five fields, e.g. "0 3 * * 1" (Mondays 03:00).')
@click.option("--timezone", "tz", default="UTC", show_default=True, help="IANA time zone the cron is read in.")
@click.option("--install", is_flag=True, help="Local orchestrator: install the crontab entry for this user.")
@SET
@SUMMARY
def schedule(**options) -> None:
    """Schedule a pipeline: a ZenML Schedule where the orchestrator supports it, else a crontab entry."""
    commands.schedule(**options)


def main() -> None:
    configure_threads()   # one heavy process, the cores it was given (SIDKIT_THREADS overrides)
    check_device()        # SIDKIT_DEVICE names a device this machine has (exit 2 before anything runs)
    cli()


if __name__ == "__main__":
    main()
