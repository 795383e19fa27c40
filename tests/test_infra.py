"""Environment overlays: settings only, valid ZenML settings, naming real steps; cluster scripts exist.

(A Kubeflow pipeline spec cannot be compiled offline with ZenML: the Kubeflow orchestrator
compiles the KFP spec only inside ``submit_pipeline``, after building images and while
connecting to the Kubeflow endpoint. infra/README.md says so.)
"""

from pathlib import Path

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = sorted((ROOT / "configs" / "overlays").glob("*.yaml"))


def _step_names() -> set[str]:
    import steps.data
    import steps.evaluation
    import steps.features
    import steps.monitoring
    import steps.promotion
    import steps.registry
    import steps.tokenizer

    names = set()
    for module in (steps.data, steps.evaluation, steps.features, steps.monitoring, steps.promotion, steps.registry,
                   steps.tokenizer):
        names |= {n for n, obj in vars(module).items() if type(obj).__name__ == "BaseStep" or hasattr(obj, "entrypoint")}
    return names


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: p.stem)
def test_overlay_is_settings_only_and_valid(path, monkeypatch):
    from zenml.config import DockerSettings, ResourceSettings
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    from pipelines import cli_support as run
    from sidkit.config import deep_merge

    monkeypatch.setenv("SIDKIT_REGISTRY", "registry.example.com/sidkit")
    overlay = run.load_overlay(str(path))
    base = yaml.safe_load((ROOT / "configs" / "train_beauty_rqvae.yaml").read_text())
    merged = deep_merge(base, overlay)
    assert merged["parameters"] == base["parameters"]            # environments differ only in settings
    PipelineRunConfiguration.model_validate({k: v for k, v in merged.items() if k != "model"} | {"model": None})
    settings = overlay.get("settings") or {}
    if "docker" in settings:
        docker = DockerSettings.model_validate(settings["docker"])
        assert docker.parent_image == "registry.example.com/sidkit/sidkit-base:latest"
    known = _step_names()
    for name, step in (overlay.get("steps") or {}).items():
        assert name in known, f"overlay {path.name} configures unknown step {name!r}"
        if "resources" in step["settings"]:
            ResourceSettings.model_validate(step["settings"]["resources"])


def test_overlay_with_parameters_is_refused(tmp_path):
    from pipelines import cli_support as run

    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: {tokenizer: {epochs: 1}}\nsettings: {}\n")
    with pytest.raises(click.UsageError, match="only contain settings"):
        run.load_overlay(str(bad))


def test_gpu_overlays_request_gpus_for_training_steps():
    for name in ("kubernetes", "kubeflow"):
        overlay = yaml.safe_load((ROOT / "configs" / "overlays" / f"{name}.yaml").read_text())
        assert overlay["steps"]["train_tokenizer"]["settings"]["resources"]["gpu_count"] == 1


def test_stack_scripts_are_valid_bash():
    import subprocess

    for script in (ROOT / "infra" / "stacks").glob("*.sh"):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
