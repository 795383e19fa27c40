"""sidkit command line: a thin layer over the ZenML pipelines.

    python run.py train --config configs/train.yaml [--summary OUT.json] [--no-cache]
    python run.py evaluate --config configs/eval_synthetic_fast.yaml [--model-version V] [--summary OUT.json]
    python run.py drift --config configs/drift.yaml [--reference V] [--current V] [--summary OUT.json]
    python run.py compare --config configs/compare.yaml [--challenger V] [--summary OUT.json]
    python run.py retrain --config configs/retrain_movielens.yaml [--until YYYY-MM] [--mode append|full]
    python run.py schedule --pipeline retraining --config F --cron "0 3 * * 1" --timezone UTC [--install]
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

from sidkit.settings import configure_environment, configure_threads

configure_environment()  # before zenml / mlflow / GX are imported


def _write_summary(path: str | None, summary: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=2, default=str))


def _latest_run(pipeline_name: str):
    from zenml.client import Client

    runs = Client().list_pipeline_runs(sort_by="desc:created", size=1, pipeline_name=pipeline_name)
    return runs.items[0] if runs.items else None


def _failure_summary(pipeline_name: str, exc: BaseException, started: datetime) -> dict:
    """The failure summary; it names a run only if this invocation created it (never an earlier run's)."""
    summary: dict = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "run_id": None}
    try:
        run = _latest_run(pipeline_name)
        if run is not None and run.created.replace(tzinfo=timezone.utc) < started:
            run = None
        if run is not None:
            summary["run_id"] = str(run.id)
            summary["run_name"] = run.name
            step = run.steps.get("validate_data") if pipeline_name == "training_pipeline" else None
            if step is not None and step.status.value == "completed":
                report = step.outputs["validation_report"][0].load()
                summary["validation"] = {"passed": report.passed, "rejected_rows": report.rejected_rows,
                                         "mode": report.mode, "accounting": report.accounting,
                                         "report_html": report.html_path}
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
@click.option("--overlay", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Environment overlay (settings only), e.g. configs/overlays/kubernetes.yaml.")
def cli(verbose: bool, overlay: str | None) -> None:
    """Learn, evaluate, ship and monitor semantic IDs."""
    level = logging.DEBUG if verbose else logging.INFO
    # no handler of our own: ZenML's console handler on the root logger prints every record once;
    # our logger gets its level explicitly and its records propagate there
    logging.getLogger("sidkit").setLevel(level)


def merge_overlay(config: dict, overlay: dict) -> dict:
    """Deep-merge an environment overlay (settings only) into a pipeline config."""
    out = dict(config)
    for key, value in overlay.items():
        out[key] = merge_overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


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


def _prepared_config(tmp: str, config_path: str, overrides: dict | None) -> str:
    """The config with CLI overrides in ``parameters`` and the --overlay settings merged in."""
    import yaml

    overlay = click.get_current_context().find_root().params.get("overlay")
    if not overrides and not overlay:
        return config_path
    cfg = yaml.safe_load(Path(config_path).read_text()) or {}
    cfg.setdefault("parameters", {}).update(overrides or {})
    if overlay:
        cfg = merge_overlay(cfg, load_overlay(overlay))
    path = Path(tmp) / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _run(pipeline, pipeline_name: str, config_path: str, summary_path: str | None, no_cache: bool,
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
            return pipeline.with_options(config_path=_prepared_config(tmp, config_path, overrides), **options)()
    except Exception as exc:  # noqa: BLE001 - any failure becomes a non-zero exit with a summary
        summary = _failure_summary(pipeline_name, exc, started)
        _write_summary(summary_path, summary)
        click.echo(f"{pipeline_name} failed in step {summary.get('failed_step', '?')}: {summary['error']}", err=True)
        logging.getLogger("sidkit").debug("".join(traceback.format_exception(exc)))
        sys.exit(1)


def _output(run, step: str, name: str):
    return run.steps[step].outputs[name][0].load()


def checked_params(config_path: str, pipeline, summary_path: str | None) -> dict:
    """The config's parameters, the whole file checked first (sidkit.config); a bad file exits 2, naming the line."""
    from sidkit.config import ConfigFileError, check_config_file

    signature = inspect.signature(pipeline.entrypoint).parameters
    required = {k for k, p in signature.items() if p.default is inspect.Parameter.empty}
    try:
        cfg = check_config_file(config_path, set(signature), required - CLI_PARAMETERS)
    except ConfigFileError as exc:
        _fail(summary_path, f"config error: {exc}", code=2)
    _prepare_state()
    return cfg.get("parameters") or {}


_MARKER = None


def _prepare_state() -> None:
    """Once per process: initialise the stores under a lock, mark this process alive, close stale runs."""
    global _MARKER
    if _MARKER is not None:
        return
    from pipelines.housekeeping import close_stale_pipeline_runs, initialise_state
    from sidkit.locks import ProcessMarker

    initialise_state()
    _MARKER = ProcessMarker()
    try:
        close_stale_pipeline_runs(_MARKER)
    except Exception as exc:  # housekeeping must never stop the command the user asked for
        logging.getLogger("sidkit").warning("could not check for stale runs (%s: %s)", type(exc).__name__, exc)


CLI_PARAMETERS = {"tokenizer_version", "reference_version", "current_version", "challenger_version"}  # set by the CLI


def _fail(summary_path: str | None, message: str, code: int = 1) -> None:
    _write_summary(summary_path, {"status": "failed", "error": message, "run_id": None})
    click.echo(message, err=True)
    sys.exit(code)


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

    checked_params(config_path, training_pipeline, summary_path)
    run = _run(training_pipeline, "training_pipeline", config_path, summary_path, no_cache, run_name)
    summary = _output(run, "publish_tokenizer", "training_summary")
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
    from pipelines.evaluation import evaluation_pipeline
    from pipelines.model_versions import resolve_model_version

    # pin the version now, so "latest" or a stage means the same version in every step
    params = checked_params(config_path, evaluation_pipeline, summary_path)
    try:
        mv = resolve_model_version(params["tokenizer_model"], model_version or params.get("tokenizer_version"))
    except KeyError as exc:
        _write_summary(summary_path, {"status": "failed", "error": f"KeyError: {exc}", "run_id": None})
        click.echo(f"cannot evaluate: {exc}", err=True)
        sys.exit(1)
    overrides = {"tokenizer_version": str(mv.name)}
    run = _run(evaluation_pipeline, "evaluation_pipeline", config_path, summary_path, no_cache, run_name, overrides)
    summary = _output(run, "publish_evaluation", "evaluation_summary")
    _write_summary(summary_path, summary)
    r, k = summary["retrieval"], summary["ranking"]
    click.echo(f"{summary['tokenizer_model']} version {summary['model_version']}: recall@10 {r['recall@10']:.4f}, "
               f"ndcg@10 {r['ndcg@10']:.4f} ({r['n_users']} users); AUC {k['auc']:.4f}, GAUC {k['gauc']:.4f}")


@cli.command()
@CONFIG
@click.option("--reference", "reference_version", default=None, help="Reference model version (default: production).")
@click.option("--current", "current_version", default=None, help="Current model version (default: latest).")
@click.option("--fail-on-drift", is_flag=True, help="Exit with code 3 when drift is detected.")
@SUMMARY
@RUN_NAME
def drift(config_path: str, reference_version: str | None, current_version: str | None, fail_on_drift: bool,
          summary_path: str | None, run_name: str | None) -> None:
    """SID drift between two model versions: Evidently report (reports folder + dashboard) and drift gate."""
    from pipelines.model_versions import production_version, resolve_model_version
    from pipelines.monitoring import drift_monitoring

    params = checked_params(config_path, drift_monitoring, summary_path)
    model = params.get("model")
    if not model:
        _fail(summary_path, f"{config_path}: parameters.model (the model name) is required")
    try:
        ref = reference_version or params.get("reference_version") or production_version(model)
        if ref is None:
            _fail(summary_path, f"model {model!r} has no version in stage 'production'; pass --reference")
        ref = str(resolve_model_version(params.get("reference_model") or model, ref).name)
        cur = str(resolve_model_version(model, current_version or params.get("current_version")).name)
    except KeyError as exc:
        _fail(summary_path, f"cannot resolve model versions: {exc}")
    if ref == cur and (params.get("reference_model") or model) == model:
        _fail(summary_path, f"reference and current are the same version ({model} v{ref}): nothing to compare; "
                            "pass --reference and --current", code=2)
    run = _run(drift_monitoring, "drift_monitoring", config_path, summary_path, False, run_name,
               {"reference_version": ref, "current_version": cur})
    s = _output(run, "detect_sid_drift", "sid_drift_summary")
    summary = {"status": "succeeded", "run_name": run.name, "drift_detected": s["drift_detected"],
               "sid_churn": s["sid_churn"], "per_level": s["per_level"], "report_html": s["report_html"],
               "reasons": s["reasons"], "reference": ref, "current": cur, "mode": s["mode"],
               "approved": _output(run, "drift_gate", "drift_approved")}
    _write_summary(summary_path, summary)
    click.echo(f"{model} v{ref} -> v{cur}: {'DRIFT' if s['drift_detected'] else 'no drift'} "
               f"(churn {s['sid_churn']:.2%}); report {s['report_html']}")
    if fail_on_drift and s["drift_detected"]:
        sys.exit(3)


@cli.command()
@CONFIG
@click.option("--challenger", "challenger_version", default=None, help="Challenger version (default: latest).")
@click.option("--champion", "champion_version", default=None, help="Champion version (default: stage production).")
@click.option("--force", is_flag=True, help="Promote even if a drift gate rejected the challenger (recorded).")
@click.option("--dry-run", is_flag=True, help="Decide and report, change nothing.")
@SUMMARY
@RUN_NAME
def compare(config_path: str, challenger_version: str | None, champion_version: str | None, force: bool,
            dry_run: bool, summary_path: str | None, run_name: str | None) -> None:
    """Offline A/B: champion (production) vs challenger on the same users; promote if the rule passes."""
    from pipelines.ab_comparison import ab_comparison
    from pipelines.model_versions import production_version, resolve_model_version

    params = checked_params(config_path, ab_comparison, summary_path)
    model = params.get("model")
    if not model:
        _fail(summary_path, f"{config_path}: parameters.model (the model name) is required")
    try:
        chall = str(resolve_model_version(model, challenger_version or params.get("challenger_version")).name)
        champ = champion_version or production_version(model)
        champ = str(resolve_model_version(model, champ).name) if champ else None
    except KeyError as exc:
        _fail(summary_path, f"cannot resolve model versions: {exc}")
    if champ == chall:
        _fail(summary_path, f"version {chall} is already the champion; name another challenger with --challenger")
    run = _run(ab_comparison, "ab_comparison", config_path, summary_path, False, run_name,
               {"challenger_version": chall, "champion_version": champ, "force": force, "dry_run": dry_run})
    result = _output(run, "compare_with_champion", "ab_comparison").result
    promotion = _output(run, "promote_challenger", "promotion")
    summary = {"status": "succeeded", "run_name": run.name, "champion": champ, "challenger": chall,
               "metrics": {k: {f: v.get(f) for f in ("champion", "challenger", "lift", "ci_low", "ci_high", "p_value")}
                           for k, v in result.get("metrics", {}).items()},
               "decision": {k: promotion.get(k) for k in ("promoted", "would_promote", "dry_run", "forced", "reason")},
               "production": promotion.get("production")}
    _write_summary(summary_path, summary)
    click.echo(f"{model}: champion {champ} vs challenger {chall}: {promotion['reason']}; "
               f"in production: version {promotion.get('production')}")


@cli.command()
@CONFIG
@click.option("--until", default=None, help="Snapshot month YYYY-MM (sets dataset.snapshot.until).")
@click.option("--mode", type=click.Choice(["append", "full"]), default=None, help="Stable SIDs (append) or full retrain.")
@SUMMARY
@RUN_NAME
def retrain(config_path: str, until: str | None, mode: str | None, summary_path: str | None, run_name: str | None) -> None:
    """The retraining loop: validate, challenger SIDs, drift report, A/B against the champion, promote or not."""
    from pipelines.model_versions import production_version
    from pipelines.retraining import retraining
    from sidkit.locks import LockHeld, exclusive

    params = checked_params(config_path, retraining, summary_path)
    model = params.get("model_name")
    if not model:
        _fail(summary_path, f"{config_path}: parameters.model_name is required")
    overrides: dict = {}
    if until:
        from sidkit.data.snapshots import month_end
        from sidkit.errors import ConfigError

        try:
            month_end(until)
        except ConfigError as exc:
            _fail(summary_path, f"--until: {exc}", code=2)
        overrides["dataset"] = {**params.get("dataset", {}), "snapshot": {**params.get("dataset", {}).get("snapshot", {}),
                                                                          "until": until}}
    if mode:
        overrides["mode"] = mode
    try:
        with exclusive(f"retraining-{model}", f"a retraining of model {model!r}"):
            champion = production_version(model)
            overrides["champion_version"] = champion
            run = _run(retraining, "retraining", config_path, summary_path, False, run_name, overrides)
    except LockHeld as exc:
        _fail(summary_path, str(exc), code=4)
    published = _output(run, "publish_tokenizer", "training_summary")
    promotion = _output(run, "promote_challenger", "promotion")
    effective_mode = (mode or params.get("mode", "append")) if champion else "full (no champion yet)"
    summary = {"status": "succeeded", "run_name": run.name, "model_version": published["model_version"],
               "champion": champion, "mode": effective_mode, "promoted": promotion["promoted"],
               "reason": promotion["reason"], "sid_churn": None, "kept_sids": None, "drift_detected": None,
               "report_html": None, "dataset": published["dataset"], "sid_quality": published["sid_quality"]}
    if "detect_sid_drift" in run.steps:
        d = _output(run, "detect_sid_drift", "sid_drift_summary")
        summary.update({"sid_churn": d["sid_churn"], "kept_sids": d["kept_sids"], "n_common_items": d["n_common_items"],
                        "new_items": d.get("new_items"), "drift_detected": d["drift_detected"],
                        "drift_reasons": d["reasons"], "report_html": d["report_html"],
                        "drift_approved": _output(run, "drift_gate", "drift_approved")})
    comparison = _output(run, "compare_with_champion", "ab_comparison").result
    summary["metrics"] = {k: {f: v.get(f) for f in ("champion", "challenger", "lift", "ci_low", "ci_high", "p_value")}
                          for k, v in comparison.get("metrics", {}).items()}
    _write_summary(summary_path, summary)
    summary["production"] = promotion.get("production")
    click.echo(f"{model}: version {summary['model_version']} ({summary['mode']}) "
               f"{'promoted' if summary['promoted'] else 'not promoted'}: {summary['reason']}; "
               f"in production: version {summary['production']}")


SCHEDULABLE = {"retraining": "retrain", "drift_monitoring": "drift", "training_pipeline": "train"}


@cli.command()
@click.option("--pipeline", "pipeline_name", required=True, type=click.Choice(sorted(SCHEDULABLE)))
@CONFIG
@click.option("--cron", required=True, help='Cron expression, five fields, e.g. "0 3 * * 1" (Mondays 03:00).')
@click.option("--timezone", "tz", default="UTC", show_default=True, help="IANA time zone the cron is read in.")
@click.option("--install", is_flag=True, help="Local orchestrator: install the crontab entry for this user.")
@SUMMARY
def schedule(pipeline_name: str, config_path: str, cron: str, tz: str, install: bool, summary_path: str | None) -> None:
    """Schedule a pipeline: a ZenML Schedule where the orchestrator supports it, else a crontab entry."""
    from sidkit.scheduling import ScheduleError, cron_entry, install_crontab, validate_cron, validate_timezone

    try:
        validate_cron(cron)
        zone = validate_timezone(tz)
    except ScheduleError as exc:
        _fail(summary_path, str(exc), code=2)
    from zenml.client import Client

    orchestrator = Client().active_stack.orchestrator
    info = {"pipeline": pipeline_name, "cron": cron, "timezone": tz, "orchestrator": orchestrator.name,
            "orchestrator_flavor": orchestrator.flavor}
    if orchestrator.config.is_schedulable:
        from datetime import datetime

        from zenml.config.schedule import Schedule

        module = {"retraining": "pipelines.retraining", "drift_monitoring": "pipelines.monitoring",
                  "training_pipeline": "pipelines.training"}[pipeline_name]
        pipeline = getattr(__import__(module, fromlist=[pipeline_name]), pipeline_name)
        sched = Schedule(name=f"{pipeline_name}-{cron.replace(' ', '_')}", cron_expression=cron,
                         start_time=datetime.now(zone))
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pipeline.with_options(config_path=_prepared_config(tmp, config_path, None), schedule=sched)()
        info.update({"scheduled": True, "schedule_name": sched.name})
        _write_summary(summary_path, info)
        click.echo(f"scheduled {pipeline_name} on {orchestrator.name} ({orchestrator.flavor}): '{cron}' ({tz})")
        return
    from sidkit.settings import state_dir

    args = [SCHEDULABLE[pipeline_name], "--config", str(Path(config_path).resolve())]
    line = cron_entry(cron, tz, args, Path(__file__).resolve().parent, Path(sys.executable), state_dir().resolve())
    info.update({"scheduled": False, "cron_line": line, "installed": False,
                 "reason": f"the active orchestrator '{orchestrator.name}' (flavor {orchestrator.flavor}) cannot run "
                           "schedules; use a crontab entry, or a stack with a Kubernetes/Kubeflow orchestrator "
                           "(infra/README.md)"})
    click.echo(f"{info['reason']}.\nEquivalent crontab entry:\n\n{line}\n")
    if install:
        try:
            install_crontab(line)
        except ScheduleError as exc:
            info["error"] = str(exc)
            _write_summary(summary_path, info)
            _fail(summary_path, str(exc), code=2)
        info["installed"] = True
        click.echo("installed in this user's crontab (crontab -l to see it)")
        _write_summary(summary_path, info)
        return
    click.echo("(run again with --install to add it to this user's crontab)")
    _write_summary(summary_path, info)
    sys.exit(2)  # refused: nothing was scheduled


def main() -> None:
    configure_threads()   # one heavy process, the cores it was given (SIDKIT_THREADS overrides)
    cli()


if __name__ == "__main__":
    main()
