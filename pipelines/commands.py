"""The bodies of run.py's commands: resolve versions, run the pipeline, write the summary, print one line.

Each takes the command's options as keyword arguments (run.py declares them with click).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipelines.cli_support import checked_params, fail, finish, output, prepared_config, run_pipeline, write_summary

ROOT = Path(__file__).resolve().parents[1]


def train(config_path: str, summary_path: str | None, no_cache: bool, run_name: str | None) -> None:
    """Run the training pipeline: data -> validation -> embeddings -> tokenizer -> SIDs."""
    from pipelines.training import training_pipeline

    params = checked_params(config_path, training_pipeline, summary_path)
    run = run_pipeline(training_pipeline, "training_pipeline", config_path, summary_path, no_cache, run_name)
    summary = output(run, "publish_tokenizer", "training_summary")
    q = summary["sid_quality"]
    finish(summary_path, summary, run.name,
           f"run {summary['run_name']}: {summary['tokenizer']['method']} on {summary['dataset']['name']} -> "
           f"model version {summary['model_version']}; collision rate {q['collision_rate']:.4f} -> "
           f"{q['collision_rate_final']:.4f}; utilisation {[round(u, 3) for u in q['utilization']]}",
           params.get("tracking"))


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
        write_summary(summary_path, {"status": "failed", "error": f"KeyError: {exc}", "run_id": None})
        click.echo(f"cannot evaluate: {exc}", err=True)
        sys.exit(1)
    overrides = {"tokenizer_version": str(mv.name)}
    run = run_pipeline(evaluation_pipeline, "evaluation_pipeline", config_path, summary_path, no_cache, run_name, overrides)
    summary = output(run, "publish_evaluation", "evaluation_summary")
    write_summary(summary_path, summary)
    r, k = summary["retrieval"], summary["ranking"]
    click.echo(f"{summary['tokenizer_model']} version {summary['model_version']}: recall@10 {r['recall@10']:.4f}, "
               f"ndcg@10 {r['ndcg@10']:.4f} ({r['n_users']} users); AUC {k['auc']:.4f}, GAUC {k['gauc']:.4f}")


def drift(config_path: str, reference_version: str | None, current_version: str | None, fail_on_drift: bool,
          summary_path: str | None, run_name: str | None) -> None:
    """SID drift between two model versions: Evidently report (reports folder + dashboard) and drift gate."""
    from pipelines.model_versions import production_version, resolve_model_version
    from pipelines.monitoring import drift_monitoring

    params = checked_params(config_path, drift_monitoring, summary_path)
    model = params.get("model")
    if not model:
        fail(summary_path, f"{config_path}: parameters.model (the model name) is required")
    try:
        ref = reference_version or params.get("reference_version") or production_version(model)
        if ref is None:
            fail(summary_path, f"model {model!r} has no version in stage 'production'; pass --reference")
        ref = str(resolve_model_version(params.get("reference_model") or model, ref).name)
        cur = str(resolve_model_version(model, current_version or params.get("current_version")).name)
    except KeyError as exc:
        fail(summary_path, f"cannot resolve model versions: {exc}")
    if ref == cur and (params.get("reference_model") or model) == model:
        fail(summary_path, f"reference and current are the same version ({model} v{ref}): nothing to compare; "
                            "pass --reference and --current", code=2)
    run = run_pipeline(drift_monitoring, "drift_monitoring", config_path, summary_path, False, run_name,
               {"reference_version": ref, "current_version": cur})
    s = output(run, "detect_sid_drift", "sid_drift_summary")
    summary = {"status": "succeeded", "run_name": run.name, "drift_detected": s["drift_detected"],
               "sid_churn": s["sid_churn"], "per_level": s["per_level"], "report_html": s["report_html"],
               "report_uri": s.get("report_uri"),
               "reasons": s["reasons"], "reference": ref, "current": cur, "mode": s["mode"],
               "approved": output(run, "drift_gate", "drift_approved")}
    finish(summary_path, summary, run.name, f"{model} v{ref} -> v{cur}: {'DRIFT' if s['drift_detected'] else 'no drift'} "
                                            f"(churn {s['sid_churn']:.2%}); report {s['report_html']}",
           params.get("tracking"))
    if fail_on_drift and s["drift_detected"]:
        sys.exit(3)


def compare(config_path: str, challenger_version: str | None, champion_version: str | None, force: bool,
            dry_run: bool, summary_path: str | None, run_name: str | None) -> None:
    """Offline A/B: champion (production) vs challenger on the same users; promote if the rule passes."""
    from pipelines.ab_comparison import ab_comparison
    from pipelines.model_versions import production_version, resolve_model_version

    params = checked_params(config_path, ab_comparison, summary_path)
    model = params.get("model")
    if not model:
        fail(summary_path, f"{config_path}: parameters.model (the model name) is required")
    try:
        chall = str(resolve_model_version(model, challenger_version or params.get("challenger_version")).name)
        champ = champion_version or production_version(model)
        champ = str(resolve_model_version(model, champ).name) if champ else None
    except KeyError as exc:
        fail(summary_path, f"cannot resolve model versions: {exc}")
    if champ == chall:
        fail(summary_path, f"version {chall} is already the champion; name another challenger with --challenger")
    run = run_pipeline(ab_comparison, "ab_comparison", config_path, summary_path, False, run_name,
               {"challenger_version": chall, "champion_version": champ, "force": force, "dry_run": dry_run})
    result = output(run, "compare_with_champion", "ab_comparison").result
    promotion = output(run, "promote_challenger", "promotion")
    summary = {"status": "succeeded", "run_name": run.name, "champion": champ, "challenger": chall,
               "metrics": {k: {f: v.get(f) for f in ("champion", "challenger", "lift", "ci_low", "ci_high", "p_value")}
                           for k, v in result.get("metrics", {}).items()},
               "decision": {k: promotion.get(k) for k in ("promoted", "would_promote", "dry_run", "forced", "reason")},
               "production": promotion.get("production")}
    finish(summary_path, summary, run.name, f"{model}: champion {champ} vs challenger {chall}: {promotion['reason']}; "
                                            f"in production: version {promotion.get('production')}",
           params.get("tracking"))


def retrain(config_path: str, until: str | None, mode: str | None, summary_path: str | None, run_name: str | None) -> None:
    """The retraining loop: validate, challenger SIDs, drift report, A/B against the champion, promote or not."""
    from pipelines.model_versions import production_version
    from pipelines.retraining import retraining
    from sidkit.locks import LockHeld, exclusive

    params = checked_params(config_path, retraining, summary_path)
    model = params.get("model_name")
    if not model:
        fail(summary_path, f"{config_path}: parameters.model_name is required")
    overrides: dict = {}
    if until:
        from sidkit.data.snapshots import month_end
        from sidkit.errors import ConfigError

        try:
            month_end(until)
        except ConfigError as exc:
            fail(summary_path, f"--until: {exc}", code=2)
        overrides["dataset"] = {**params.get("dataset", {}), "snapshot": {**params.get("dataset", {}).get("snapshot", {}),
                                                                          "until": until}}
    if mode:
        overrides["mode"] = mode
    try:
        with exclusive(f"retraining-{model}", f"a retraining of model {model!r}"):
            champion = production_version(model)
            overrides["champion_version"] = champion
            run = run_pipeline(retraining, "retraining", config_path, summary_path, False, run_name, overrides)
    except LockHeld as exc:
        fail(summary_path, str(exc), code=4)
    published = output(run, "publish_tokenizer", "training_summary")
    promotion = output(run, "promote_challenger", "promotion")
    effective_mode = (mode or params.get("mode", "append")) if champion else "full (no champion yet)"
    summary = {"status": "succeeded", "run_name": run.name, "model_version": published["model_version"],
               "champion": champion, "mode": effective_mode, "promoted": promotion["promoted"],
               "reason": promotion["reason"], "sid_churn": None, "kept_sids": None, "drift_detected": None,
               "report_html": None, "dataset": published["dataset"], "sid_quality": published["sid_quality"],
               "mlflow_run_id": published.get("mlflow_run_id")}
    if "detect_sid_drift" in run.steps:
        d = output(run, "detect_sid_drift", "sid_drift_summary")
        summary.update({"sid_churn": d["sid_churn"], "kept_sids": d["kept_sids"], "n_common_items": d["n_common_items"],
                        "new_items": d.get("new_items"), "drift_detected": d["drift_detected"],
                        "drift_reasons": d["reasons"], "report_html": d["report_html"], "report_uri": d.get("report_uri"),
                        "drift_approved": output(run, "drift_gate", "drift_approved")})
    comparison = output(run, "compare_with_champion", "ab_comparison").result
    summary["metrics"] = {k: {f: v.get(f) for f in ("champion", "challenger", "lift", "ci_low", "ci_high", "p_value")}
                          for k, v in comparison.get("metrics", {}).items()}
    summary["production"] = promotion.get("production")
    drift_line = ("" if summary["drift_detected"] is None else
                  f"; {'DRIFT' if summary['drift_detected'] else 'no drift'} (churn {summary['sid_churn']:.2%}, "
                  f"report {summary['report_html']})")
    finish(summary_path, summary, run.name,
           f"{model}: version {summary['model_version']} ({summary['mode']}) "
           f"{'promoted' if summary['promoted'] else 'not promoted'}: {summary['reason']}; "
           f"in production: version {summary['production']}{drift_line}", params.get("tracking"))


SCHEDULABLE = {"retraining": "retrain", "drift_monitoring": "drift", "training_pipeline": "train"}


def schedule(pipeline_name: str, config_path: str, cron: str, tz: str, install: bool, summary_path: str | None) -> None:
    """Schedule a pipeline: a ZenML Schedule where the orchestrator supports it, else a crontab entry."""
    from sidkit.scheduling import ScheduleError, cron_entry, install_crontab, validate_cron, validate_timezone

    try:
        validate_cron(cron)
        zone = validate_timezone(tz)
    except ScheduleError as exc:
        fail(summary_path, str(exc), code=2)
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
            pipeline.with_options(config_path=prepared_config(tmp, config_path, None), schedule=sched)()
        info.update({"scheduled": True, "schedule_name": sched.name})
        write_summary(summary_path, info)
        click.echo(f"scheduled {pipeline_name} on {orchestrator.name} ({orchestrator.flavor}): '{cron}' ({tz})")
        return
    from sidkit.settings import state_dir

    from pipelines.cli_support import SETS

    args = [SCHEDULABLE[pipeline_name], "--config", str(Path(config_path).resolve()),
            *(x for assignment in SETS for x in ("--set", assignment))]
    line = cron_entry(cron, tz, args, ROOT, Path(sys.executable), state_dir().resolve())
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
            write_summary(summary_path, info)
            fail(summary_path, str(exc), code=2)
        info["installed"] = True
        click.echo("installed in this user's crontab (crontab -l to see it)")
        write_summary(summary_path, info)
        return
    click.echo("(run again with --install to add it to this user's crontab)")
    write_summary(summary_path, info)
    sys.exit(2)  # refused: nothing was scheduled
