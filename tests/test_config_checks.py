"""Whole-config checks before anything runs: every error names the file, the key and the line."""

import inspect
from pathlib import Path

import pytest
import yaml

from sidkit.config import ConfigFileError, check_config_file

ROOT = Path(__file__).resolve().parents[1]
BASE = (ROOT / "configs" / "train_beauty_rqvae.yaml").read_text()


def _pipeline_parameters(name: str) -> set[str]:
    import importlib

    module, attr = {"train": ("pipelines.training", "training_pipeline"),
                    "eval": ("pipelines.evaluation", "evaluation_pipeline"),
                    "drift": ("pipelines.monitoring", "drift_monitoring"),
                    "compare": ("pipelines.ab_comparison", "ab_comparison"),
                    "retrain": ("pipelines.retraining", "retraining")}[name]
    return set(inspect.signature(getattr(importlib.import_module(module), attr).entrypoint).parameters)


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "overlays" not in p.parts),
                         ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_config_passes_the_checks(path):
    check_config_file(path, _pipeline_parameters(path.name.split("_")[0].removesuffix(".yaml")))


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old,new,key,reason", [
    ("    epochs: 200", "    epochs: 0", "parameters.tokenizer.epochs", "greater than or equal to 1"),
    ("    batch_size: 1024", "    batch_size: 0", "parameters.tokenizer.batch_size", "greater than or equal to 1"),
    ("    batch_size: 1024", "    batch_size: 1024\n    lr: -0.001", "parameters.tokenizer.lr", "greater than 0"),
    ("    codebook_size: 256", "    codebok_size: 256", "parameters.tokenizer.codebok_size", "unknown key"),
    ("    behaviour: {enabled: true, epochs: 30}", "    behaviour: {enabled: true, epochs: 0}",
     "parameters.features.behaviour.epochs", "greater than or equal to 1"),
    ("  collisions: {policy: append_token}", "  collisions: {policy: append}", "parameters.collisions.policy",
     "append_token"),
    ("  max_history: 20", "  max_history: 1", "parameters.max_history", ">= 2"),
    ("  max_history: 20", "  max_histroy: 20", "parameters.max_histroy", "unknown parameter"),
    ("path: ../shared/data/amazon-beauty}", "path: ../shared/data/amazon-beauty, colour: red}",
     "parameters.dataset.colour", "unknown option"),
    ("{format: amazon_sequences,", "{format: amazon_seq,", "parameters.dataset.format", "must be one of"),
    ("  validation: {on_invalid: fail,", "  validation: {on_invalid: fail, min_users: 3,",
     "parameters.validation.min_users", "unknown key"),
])
def test_bad_values_are_named_with_key_and_line(tmp_path, old, new, key, reason):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    with pytest.raises(ConfigFileError) as err:
        check_config_file(_write(tmp_path, text), _pipeline_parameters("train"))
    assert err.value.key == key and reason in err.value.reason
    assert err.value.line == _line_of(text, new.splitlines()[-1])
    assert str(err.value).startswith(f"{tmp_path / 'bad.yaml'}, line {err.value.line}, key '{key}'")


def test_unknown_top_level_key(tmp_path):
    text = BASE + "paramters: {}\n"
    with pytest.raises(ConfigFileError, match=r"line \d+, key 'paramters': unknown top-level key") as err:
        check_config_file(_write(tmp_path, text))
    assert err.value.line == len(text.splitlines())


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigFileError, match=r"bad.yaml, line 3: not valid YAML"):
        check_config_file(_write(tmp_path, "parameters:\n  dataset: {format: synthetic\n"))


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"])
def test_empty_config(tmp_path, text):
    with pytest.raises(ConfigFileError, match="the config file is empty"):
        check_config_file(_write(tmp_path, text))


def test_unset_environment_variable_names_key_and_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SIDKIT_NOT_SET", raising=False)
    text = "parameters:\n  dataset:\n    format: amazon_sequences\n    path: ${SIDKIT_NOT_SET}/beauty\n"
    with pytest.raises(ConfigFileError, match=r"line 4, key 'parameters.dataset.path': environment variable "
                                              r"\$\{SIDKIT_NOT_SET\} is not set"):
        check_config_file(_write(tmp_path, text))
    monkeypatch.setenv("SIDKIT_NOT_SET", str(tmp_path))
    check_config_file(_write(tmp_path, text))


def test_bad_snapshot_month(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "retrain_movielens.yaml").read_text())
    cfg["parameters"]["dataset"]["snapshot"]["until"] = "1997-13"
    with pytest.raises(ConfigFileError, match="parameters.dataset.snapshot.until'.*YYYY-MM"):
        check_config_file(_write(tmp_path, yaml.safe_dump(cfg)), _pipeline_parameters("retrain"))


def test_missing_required_parameter(tmp_path):
    with pytest.raises(ConfigFileError, match="'tokenizer_model' is required"):
        check_config_file(_write(tmp_path, "parameters:\n  ranking: {epochs: 1}\n"), _pipeline_parameters("eval"),
                          {"tokenizer_model"})


def test_retrain_rejects_a_bad_month_before_anything_runs(tmp_path):
    import json

    from click.testing import CliRunner

    import run

    out = tmp_path / "s.json"
    r = CliRunner().invoke(run.cli, ["retrain", "--config", str(ROOT / "configs" / "retrain_movielens.yaml"),
                                     "--until", "1997-13", "--summary", str(out)])
    assert r.exit_code == 2 and "YYYY-MM" in json.loads(out.read_text())["error"]


def _flat(d: dict, prefix: tuple = ()) -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "ablations").glob("*.yaml")), ids=lambda p: p.stem)
def test_an_ablation_differs_from_its_base_only_where_it_says(path):
    from sidkit.config import resolve_config

    ablation, _ = resolve_config(path)
    base, _ = resolve_config(ROOT / "configs" / yaml.safe_load(path.read_text())["extends"].removeprefix("../"))
    own = _flat(yaml.safe_load(path.read_text())["parameters"])
    a, b = _flat(ablation["parameters"]), _flat(base["parameters"])
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    # one switch per ablation, or the settings of one component (e.g. features.behaviour); nothing else drifts
    assert len({k[:2] for k in own}) == 1 and (len(own) == 1 or all(len(k) > 2 for k in own)) and changed == set(own)
    assert ablation["model"]["name"] == base["model"]["name"] and "ablation" in ablation["model"]["tags"]


def test_extends_merges_mappings_and_errors_name_the_file_that_set_the_key(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    child = tmp_path / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text("extends: ../base.yaml\nparameters:\n  tokenizer:\n    epochs: 7\n")
    cfg = check_config_file(child, _pipeline_parameters("train"))
    assert cfg["parameters"]["tokenizer"]["epochs"] == 7
    assert cfg["parameters"]["tokenizer"]["method"] == yaml.safe_load(BASE)["parameters"]["tokenizer"]["method"]
    assert "extends" not in cfg
    child.write_text("extends: ../base.yaml\nparameters:\n  tokenizer:\n    epochs: 0\n")
    with pytest.raises(ConfigFileError) as err:
        check_config_file(child, _pipeline_parameters("train"))
    assert err.value.file == str(child) and err.value.line == 4 and err.value.key == "parameters.tokenizer.epochs"
    base.write_text(BASE.replace("batch_size:", "batch_sise:", 1))
    child.write_text("extends: ../base.yaml\n")
    with pytest.raises(ConfigFileError) as err:
        check_config_file(child, _pipeline_parameters("train"))
    assert Path(err.value.file).resolve() == base.resolve() and "batch_sise" in err.value.key
    assert err.value.line == _line_of(BASE, "batch_size:")


def test_extends_refuses_a_cycle_and_a_missing_base(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nparameters: {}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nparameters: {}\n")
    with pytest.raises(ConfigFileError, match="circular"):
        check_config_file(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigFileError, match="does not exist") as err:
        check_config_file(tmp_path / "c.yaml")
    assert err.value.line == 1


def test_set_overrides_one_key_and_errors_name_it(tmp_path):
    from sidkit.config import resolve_config

    path = _write(tmp_path, BASE)
    cfg, _ = resolve_config(path, ["tokenizer.epochs=3", "parameters.tokenizer.hidden_dims=[64, 32]", "run_name=x"])
    assert cfg["parameters"]["tokenizer"]["epochs"] == 3 and cfg["parameters"]["tokenizer"]["hidden_dims"] == [64, 32]
    assert cfg["run_name"] == "x"
    with pytest.raises(ConfigFileError) as err:
        check_config_file(path, _pipeline_parameters("train"), sets=["tokenizer.epochs=0"])
    assert err.value.file == "--set tokenizer.epochs=0" and err.value.key == "parameters.tokenizer.epochs"
    with pytest.raises(ConfigFileError, match="key=value"):
        resolve_config(path, ["tokenizer.epochs"])


def test_a_tokenizer_key_the_method_does_not_read_is_refused_where_it_is_written(tmp_path):
    text = BASE.replace("  tokenizer:\n", "  tokenizer:\n    router_top_k: 2\n", 1)
    with pytest.raises(ConfigFileError, match="does not read this key") as err:
        check_config_file(_write(tmp_path, text), _pipeline_parameters("train"))
    assert err.value.key == "parameters.tokenizer.router_top_k" and err.value.line == _line_of(text, "router_top_k")
    from sidkit.tokenizers.base import unread_keys

    assert unread_keys({"method": "adasid", "router_top_k": 2, "levels": 2}) == []
    assert unread_keys({"method": "rqkmeans", "epochs": 5, "lr": 0.1}) == ["epochs", "lr"]


def test_a_pipeline_started_without_the_cli_checks_its_parameters_before_any_step():
    """`zenml pipeline run -c` and Python calls bypass run.py's file check: the pipeline itself refuses, naming
    the parameter, while ZenML builds it -- no run is created."""
    from zenml.client import Client

    from pipelines.training import training_pipeline
    from sidkit.config import ConfigFileError

    before = len(Client().list_pipeline_runs(size=1000).items)
    with pytest.raises(ConfigFileError, match=r"tokenizer\.epochs"):
        training_pipeline(dataset={"format": "synthetic", "n_items": 50}, tokenizer={"method": "rqvae", "epochs": 0})
    with pytest.raises(ConfigFileError, match=r"tokenizer\.router_top_k.*does not read"):
        training_pipeline(dataset={"format": "synthetic"}, tokenizer={"method": "rqvae", "router_top_k": 2})
    with pytest.raises(ConfigFileError, match=r"dataset\.format"):
        training_pipeline(dataset={"format": "csv-ish", "path": "x"})
    assert len(Client().list_pipeline_runs(size=1000).items) == before


def test_steps_take_the_typed_sections_and_experiments_are_named_once():
    """collisions, health, tracking and approval reach their steps as the models the config is checked against
    (no step reads them with ``.get`` and a default of its own); the MLflow experiment defaults live in one table."""
    import inspect

    from sidkit.config import EXPERIMENTS, ApprovalConfig, CollisionsConfig, TrackingConfig
    from sidkit.evaluation.sid_quality import HealthThresholds
    from steps.evaluation import publish_evaluation
    from steps.monitoring import drift_gate
    from steps.registry import publish_tokenizer
    from steps.tokenizer import assign_semantic_ids, finetune_tokenizer, sid_health_gate, train_tokenizer

    expected = [(train_tokenizer, "tracking", TrackingConfig), (finetune_tokenizer, "tracking", TrackingConfig),
                (publish_tokenizer, "tracking", TrackingConfig), (publish_evaluation, "tracking", TrackingConfig),
                (assign_semantic_ids, "collisions", CollisionsConfig), (sid_health_gate, "gate", HealthThresholds),
                (drift_gate, "approval", ApprovalConfig)]
    for step, name, model in expected:
        assert inspect.signature(step.entrypoint).parameters[name].annotation is model, (step.name, name)
    assert TrackingConfig().experiment_for("evaluation") == EXPERIMENTS["evaluation"] == "sidkit-evaluation"
    assert {TrackingConfig(experiment="team").experiment_for(kind) for kind in EXPERIMENTS} == {"team"}
    with pytest.raises(ValueError, match="extra"):
        HealthThresholds.model_validate({"min_utilisation": 0.2})   # a misspelt threshold is an error, not a no-op
