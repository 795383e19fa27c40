"""Running a pipeline from the command line: config checks, overlays, summaries, one-line failures.

The commands of run.py (pipelines.commands) call these; nothing here knows a particular pipeline.
Exit codes: 1 = the pipeline failed, 2 = bad config or arguments (nothing ran).
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

import click


def write_summary(path: str | None, summary: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=2, default=str))


def latest_run(pipeline_name: str):
    from zenml.client import Client

    runs = Client().list_pipeline_runs(sort_by="desc:created", size=1, pipeline_name=pipeline_name)
    return runs.items[0] if runs.items else None


def failure_summary(pipeline_name: str, exc: BaseException, started: datetime) -> dict:
    """The failure summary; it names a run only if this invocation created it (never an earlier run's)."""
    summary: dict = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "run_id": None}
    try:
        run = latest_run(pipeline_name)
        if run is not None and run.created.replace(tzinfo=timezone.utc) < started:
            run = None
        if run is not None:
            summary["run_id"] = str(run.id)
            summary["run_name"] = run.name
            step = run.steps.get("validate_data") if pipeline_name == "training_pipeline" else None
            if step is not None and step.status.value == "completed":
                report = step.outputs["validation_report"][0].load()
                from steps.data import validation_page_folder

                page = validation_page_folder(run.name) / "report.html"
                summary["validation"] = {"passed": report.passed, "rejected_rows": report.rejected_rows,
                                         "mode": report.mode, "accounting": report.accounting,
                                         "report_html": str(page.resolve()) if page.exists() else None}
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


def check_device() -> None:
    """``SIDKIT_DEVICE`` names a device this machine has (sidkit.devices), else exit 2 before anything runs."""
    from sidkit.devices import resolve_device
    from sidkit.errors import ConfigError

    try:
        resolve_device()
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None


def load_overlay(path: str) -> dict:
    """An overlay YAML (environment variables expanded); it may only carry settings."""
    import os

    import yaml

    overlay = yaml.safe_load(os.path.expandvars(Path(path).read_text())) or {}
    bad = [k for k in overlay if k not in ("settings", "steps")] + [
        f"steps.{name}.{k}" for name, step in (overlay.get("steps") or {}).items() for k in step if k != "settings"]
    if bad:
        raise click.UsageError(f"overlay {path} may only contain settings (environment differences), found {bad}")
    return overlay


SETS: tuple[str, ...] = ()   # this command's --set key=value overrides (run.py sets them)


def prepared_config(tmp: str, config_path: str, overrides: dict | None) -> str:
    """The resolved config (``extends`` and --set applied, sidkit.config) with the command's overrides
    in ``parameters`` and the --overlay settings merged in, written for ZenML to read."""
    import yaml

    from sidkit.config import deep_merge, resolve_config

    cfg, _ = resolve_config(config_path, SETS)
    cfg.setdefault("parameters", {}).update(overrides or {})
    overlay = click.get_current_context().find_root().params.get("overlay")
    if overlay:
        cfg = deep_merge(cfg, load_overlay(overlay))
    path = Path(tmp) / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def run_pipeline(pipeline, pipeline_name: str, config_path: str, summary_path: str | None, no_cache: bool,
                 run_name: str | None, overrides: dict | None = None):
    """Run a pipeline from a YAML config (already checked by :func:`checked_params`) and return the run;
    on failure write the failure summary and exit 1."""
    import tempfile

    started = datetime.now(timezone.utc)
    options: dict = {}
    if no_cache:
        options["enable_cache"] = False
    if run_name:
        options["run_name"] = run_name
    if not click.get_current_context().find_root().params.get("verbose"):
        from sidkit.console import quiet_expected_failures

        quiet_expected_failures()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pipeline.with_options(config_path=prepared_config(tmp, config_path, overrides), **options)()
    except Exception as exc:  # noqa: BLE001 - any failure becomes a non-zero exit with a summary
        summary = failure_summary(pipeline_name, exc, started)
        write_summary(summary_path, summary)
        click.echo(f"{pipeline_name} failed in step {summary.get('failed_step', '?')}: {summary['error']}", err=True)
        logging.getLogger("sidkit").debug("".join(traceback.format_exception(exc)))
        sys.exit(1)


def finish(summary_path: str | None, summary: dict, run_name: str, line: str, tracking: dict | None = None) -> None:
    """Write the summary (with the report pages this run wrote, ``reports``), print its one line and the pages.
    The pages also go to MLflow (``tracking``: the config's section; off with ``enabled: false``): into the
    run's own MLflow run where it has one (training), else into a run of the monitoring experiment
    (``TrackingConfig.experiment_for``) with the summary's numbers (drift, A/B)."""
    from sidkit.config import TrackingConfig
    from sidkit.monitoring.reports import reports_root, run_reports

    summary["reports"] = run_reports(run_name)
    summary["report_uris"] = stored_reports(run_name)
    tracking = TrackingConfig.model_validate(tracking or {})
    if summary["reports"] and tracking.enabled:
        from sidkit.tracking import log_report_pages
        from steps.context import use_stack_experiment_tracker

        use_stack_experiment_tracker()
        numbers = {k: v for k, v in summary.items() if k not in ("reports", "reference", "current", "production")}
        summary["reports_mlflow_run_id"] = log_report_pages(
            summary["reports"], run_name, summary.get("mlflow_run_id"),
            tracking.experiment_for("monitoring"), numbers)
    write_summary(summary_path, summary)
    click.echo(line)
    for page in summary["reports"]:
        click.echo(f"  report: {page}")
    if not summary["reports"]:                # steps ran elsewhere (a remote orchestrator): the stored copies
        for uri in summary["report_uris"]:
            click.echo(f"  report: {uri}")
    if summary["reports"]:
        click.echo(f"  all reports: {reports_root().resolve() / 'index.html'}")


def stored_reports(run_name: str) -> list[str]:
    """The artifact-store URIs of the report pages a run's steps stored (``report_uri`` step metadata,
    steps/report_store.py): where a remote run's pages are, when the local reports folder has none."""
    from zenml.client import Client

    try:
        steps = Client().get_pipeline_run(run_name).steps
    except KeyError:
        return []
    return [str(s.run_metadata["report_uri"]) for s in steps.values() if "report_uri" in (s.run_metadata or {})]


def output(run, step: str, name: str):
    return run.steps[step].outputs[name][0].load()


def checked_params(config_path: str, pipeline, summary_path: str | None) -> dict:
    """The config's parameters, the whole file checked first (sidkit.config); a bad file exits 2, naming the line."""
    from sidkit.config import ConfigFileError, check_config_file

    signature = inspect.signature(pipeline.entrypoint).parameters
    required = {k for k, p in signature.items() if p.default is inspect.Parameter.empty}
    try:
        cfg = check_config_file(config_path, set(signature), required - CLI_PARAMETERS, SETS)
    except ConfigFileError as exc:
        fail(summary_path, f"config error: {exc}", code=2)
    from pipelines.housekeeping import dead_local_server

    if problem := dead_local_server():
        fail(summary_path, problem, code=2)
    prepare_state()
    return cfg.get("parameters") or {}


MARKER = None


def prepare_state() -> None:
    """Once per process: initialise the stores under a lock, mark this process alive, close stale runs."""
    global MARKER
    if MARKER is not None:
        return
    from pipelines.housekeeping import close_stale_pipeline_runs, initialise_state
    from sidkit.locks import ProcessMarker

    initialise_state()
    MARKER = ProcessMarker()
    try:
        close_stale_pipeline_runs(MARKER)
    except Exception as exc:  # housekeeping must never stop the command the user asked for
        logging.getLogger("sidkit").warning("could not check for stale runs (%s: %s)", type(exc).__name__, exc)


CLI_PARAMETERS = {"tokenizer_version", "reference_version", "current_version", "challenger_version"}  # set by the CLI


def fail(summary_path: str | None, message: str, code: int = 1) -> None:
    write_summary(summary_path, {"status": "failed", "error": message, "run_id": None})
    click.echo(message, err=True)
    sys.exit(code)
