"""Read a pipeline config file and check all of it before anything runs.

:func:`check_config_file` parses the YAML (keeping each key's line), refuses an empty file,
a syntax error, an unset ``${VAR}``, an unknown top-level key or pipeline parameter, and
validates every parameter section with the typed model of the code that reads it
(tokenizer, features, generator, ranker, validation, health, collisions, tracking, drift,
approval, A/B rule, dataset options). Every error is a :class:`ConfigFileError` naming the
file, the dotted key and its line, e.g.::

    configs/x.yaml, line 12, key 'parameters.tokenizer.epochs': Input should be greater than or equal to 1

It needs no data and no ZenML: a typo fails in well under a second, before loading,
validating or embedding anything.

Composition (:func:`resolve_config`): ``extends: base.yaml`` (relative to the file) starts from the
base config, itself resolved, and deep-merges this file over it: mappings merge key by key, any
other value (lists included) replaces the base's. ``--set key=value`` on the CLI then overrides one
key (``parameters.`` may be left out: ``--set tokenizer.epochs=5``; the value is read as YAML).
Errors name the file (or ``--set``) that last set the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from sidkit.errors import ConfigError

# keys ZenML accepts at the top of a run configuration that sidkit's configs use or may use
TOP_LEVEL_KEYS = {"run_name", "model", "parameters", "settings", "steps", "enable_cache", "enable_step_logs",
                  "enable_artifact_metadata", "enable_artifact_visualization", "enable_pipeline_logs", "extra",
                  "tags", "schedule", "build", "substitutions", "environment", "secrets", "cache_policy"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigFileError(ConfigError):
    """A config file is unreadable or holds a bad value; names the file, the key and the line."""

    def __init__(self, file: str | Path, key: str | None, line: int | None, reason: str):
        self.file, self.key, self.line, self.reason = str(file), key, line, reason
        where = str(file) + (f", line {line}" if line else "") + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollisionsConfig(_Strict):
    policy: Literal["append_token", "relocate", "none"] = "append_token"
    # multi-expert SIDs (MACRec: one branch per modality): resolve each expert's block of codes on its own, so
    # each modality's SID names one item, as MACRec's per-modality generation reads them (relocate only)
    per_expert: bool = False

    @model_validator(mode="after")
    def _per_expert_relocates(self) -> "CollisionsConfig":
        if self.per_expert and self.policy != "relocate":
            raise ValueError(f"per_expert: true needs policy: relocate (the SID keeps its layout), not {self.policy}")
        return self


# the MLflow experiment of each kind of run when ``tracking.experiment`` is not set (the one place it is chosen)
EXPERIMENTS = {"training": "sidkit", "evaluation": "sidkit-evaluation", "monitoring": "sidkit-monitoring"}


class TrackingConfig(_Strict):
    enabled: bool = True
    experiment: str | None = None   # None: the kind of run's own experiment (EXPERIMENTS)

    def experiment_for(self, kind: Literal["training", "evaluation", "monitoring"]) -> str:
        return self.experiment or EXPERIMENTS[kind]


class ApprovalConfig(_Strict):
    default: Literal["approve", "reject"] = "reject"
    use_alerter: bool = True
    fail_on_reject: bool = False


class SnapshotConfig(_Strict):
    until: str
    items: Literal["seen", "all"] = "seen"


def _locate(text: str) -> dict[tuple, int]:
    """Dotted key path (tuple) -> 1-based line, for every mapping key and list entry in the YAML."""
    lines: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


class _Checker:
    """Builds errors naming where a key was last set: ``lines`` maps key paths to (file, line)."""

    def __init__(self, path: Path, lines: dict[tuple, tuple[str | Path, int | None]]):
        self.path, self.lines = path, lines

    def error(self, key: tuple, reason: str) -> ConfigFileError:
        where = None
        for n in range(len(key), 0, -1):  # the deepest key that has a line
            where = self.lines.get(tuple(key[:n]))
            if where:
                break
        file, line = where or (self.path, None)
        return ConfigFileError(file, ".".join(map(str, key)) or None, line, reason)

    def model(self, key: tuple, model: type[BaseModel], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {type(value).__name__} {value!r}")
        try:
            model.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            reason = "unknown key (not read by this section)" if err["type"] == "extra_forbidden" else err["msg"]
            raise self.error(key + tuple(err["loc"]), reason) from None


def _section_models() -> dict[str, Callable]:
    """Parameter name -> model of the code that reads it (imported lazily: torch is heavy)."""
    from sidkit.data.validation import ValidationRules
    from sidkit.evaluation.ab import DecisionRule
    from sidkit.evaluation.sid_quality import HealthThresholds
    from sidkit.features.embeddings import FeatureConfig
    from sidkit.monitoring.drift import DriftThresholds
    from sidkit.ranking.din import RankerConfig
    from sidkit.retrieval.generator import GeneratorConfig
    from sidkit.tokenizers.base import TokenizerConfig
    from sidkit.tokenizers.finetune import SoftIndexingConfig

    class DriftSection(_Strict):
        mode: Literal["auto", "tokenizers", "snapshots"] = "auto"
        thresholds: DriftThresholds = DriftThresholds()
        approval: ApprovalConfig = ApprovalConfig()
        reports_dir: str | None = None

    class ABSection(_Strict):
        """Retraining's A/B settings: each downstream model compared when set (``null``: not compared)."""
        retrieval: GeneratorConfig | None = None
        ranking: RankerConfig | None = RankerConfig(epochs=3)   # a short ranker: retraining's A/B is a check
        rule: DecisionRule = DecisionRule()

    return {"validation": ValidationRules, "features": FeatureConfig, "tokenizer": TokenizerConfig,
            "stage2": SoftIndexingConfig, "collisions": CollisionsConfig, "health": HealthThresholds,
            "tracking": TrackingConfig, "retrieval": GeneratorConfig, "ranking": RankerConfig,
            "thresholds": DriftThresholds, "approval": ApprovalConfig, "rule": DecisionRule, "drift": DriftSection,
            "ab": ABSection}


def section_model(name: str) -> type[BaseModel]:
    """The model of a config section (``drift``, ``ab``, ``tracking``, ...): what the code that reads it validates."""
    return _section_models()[name]


def _check_dataset(c: _Checker, value: Any) -> None:
    from sidkit.data.loaders import OPTIONS
    from sidkit.data.synthetic import SyntheticConfig

    key = ("parameters", "dataset")
    if not isinstance(value, dict):
        raise c.error(key, "expected a mapping with at least 'format'")
    fmt = value.get("format")
    formats = sorted([*OPTIONS, "synthetic"])
    if fmt not in formats:
        raise c.error(key + ("format",), f"must be one of {formats}, got {fmt!r}")
    if value.get("snapshot") is not None:
        c.model(key + ("snapshot",), SnapshotConfig, value["snapshot"])
        from sidkit.data.snapshots import month_end

        try:
            month_end(str(value["snapshot"]["until"]))
        except ConfigError as exc:
            raise c.error(key + ("snapshot", "until"), str(exc)) from None
    rest = {k: v for k, v in value.items() if k not in ("format", "name", "snapshot")}
    if fmt == "synthetic":
        try:
            SyntheticConfig(**rest)
        except TypeError as exc:
            raise c.error(key, f"bad option for the synthetic catalogue: {exc}") from None
        return
    if "path" not in rest:
        raise c.error(key, f"'path' is required for format {fmt!r}")
    unknown = sorted(set(rest) - {"path", *OPTIONS[fmt]})
    if unknown:
        raise c.error(key + (unknown[0],), f"unknown option for format {fmt!r}; it accepts {['path', *OPTIONS[fmt]]}")
    if fmt == "table":
        from sidkit.data.loaders.table import TableColumns

        for required in ("interactions", "items"):
            if not isinstance(rest.get(required), str):
                raise c.error(key, f"'{required}' (a file in dataset.path) is required for format 'table'")
        c.model(key + ("columns",), TableColumns, rest.get("columns") or {})


def _read_one(path: Path) -> tuple[dict, dict[tuple, tuple[Path, int]]]:
    """One YAML file -> (mapping, key path -> (file, line)); errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, None, None, f"cannot read the file ({exc})") from None
    try:
        lines = _locate(text)
        cfg = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigFileError(path, None, mark.line + 1 if mark else None,
                              f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(path, None, None, f"not valid YAML: {exc}") from None
    if cfg is None:
        raise ConfigFileError(path, None, None, "the config file is empty")
    if not isinstance(cfg, dict):
        raise ConfigFileError(path, None, 1, f"a config must be a mapping, got {type(cfg).__name__}")
    return cfg, {k: (path, n) for k, n in lines.items()}


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``: mappings merge key by key; any other value replaces the base's."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolve_file(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, dict]:
    path = path.resolve() if chain else path
    if path.resolve() in chain:
        raise ConfigFileError(path, "extends", None, "circular 'extends': " + " -> ".join(map(str, (*chain, path.resolve()))))
    cfg, lines = _read_one(path)
    base_name = cfg.pop("extends", None)
    if base_name is None:
        return cfg, lines
    if not isinstance(base_name, str) or not base_name:
        raise ConfigFileError(path, "extends", lines.get(("extends",), (path, None))[1], "expected the path of a base config")
    base_path = path.parent / base_name
    if not base_path.is_file():
        raise ConfigFileError(path, "extends", lines[("extends",)][1], f"base config {base_path} does not exist")
    base, base_lines = _resolve_file(base_path, (*chain, path.resolve()))
    own = {k: v for k, v in lines.items() if k != ("extends",)}
    return deep_merge(base, cfg), {**base_lines, **own}


def parse_set(assignment: str) -> tuple[tuple[str, ...], Any]:
    """``a.b.c=value`` -> (key path, value read as YAML); ``parameters.`` is implied unless the path
    starts at a top-level key."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigFileError("--set", assignment, None, "expected key=value, e.g. tokenizer.epochs=5")
    path = tuple(part for part in key.strip().split("."))
    if path[0] not in TOP_LEVEL_KEYS:
        path = ("parameters", *path)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigFileError("--set", key, None, f"value is not valid YAML: {exc}") from None
    return path, value


def resolve_config(path: str | Path, sets: tuple[str, ...] | list[str] = ()) -> tuple[dict, dict]:
    """The config after ``extends`` and ``--set`` (see the module docstring), and where each key was set."""
    cfg, lines = _resolve_file(Path(path))
    for assignment in sets:
        key, value = parse_set(assignment)
        node = cfg
        for part in key[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[key[-1]] = value
        lines = {k: v for k, v in lines.items() if k[:len(key)] != key}
        lines[key] = ("--set " + assignment, None)
    return cfg, lines


def _check_tokenizer_keys(c: _Checker, value: dict) -> None:
    """A key the chosen method does not read would be silently ignored: refuse it."""
    from sidkit.tokenizers.base import COMMON_KEYS, registry, unread_keys

    unread = unread_keys(value)
    if unread:
        method = value.get("method", "rqvae")
        reads = sorted(COMMON_KEYS | registry()[method].READS)
        raise c.error(("parameters", "tokenizer", unread[0]), f"method {method!r} does not read this key; it reads {reads}")


def check_config_file(path: str | Path, allowed_parameters: set[str] | None = None,
                      required_parameters: set[str] = frozenset(), sets: tuple[str, ...] | list[str] = ()) -> dict:
    """The resolved config (``extends`` and ``sets`` applied), checked whole; :class:`ConfigFileError`
    at the first problem."""
    path = Path(path)
    cfg, lines = resolve_config(path, sets)
    c = _Checker(path, lines)
    for key in cfg:
        if key not in TOP_LEVEL_KEYS:
            raise c.error((key,), f"unknown top-level key; expected some of {sorted(TOP_LEVEL_KEYS)}")
    _check_variables(c, cfg, ())
    params = cfg.get("parameters") or {}
    if not isinstance(params, dict):
        raise c.error(("parameters",), "expected a mapping of pipeline parameters")
    for key in sorted(required_parameters - set(params)):
        raise c.error(("parameters",), f"'{key}' is required")
    _check_parameter_values(c, params, allowed_parameters)
    return cfg


def _check_parameter_values(c: "_Checker", params: dict, allowed_parameters: set[str] | None) -> None:
    """Every parameter with the model of the code that reads it (dataset, tokenizer, ... sections)."""
    models = _section_models()
    for key, value in params.items():
        if allowed_parameters is not None and key not in allowed_parameters:
            raise c.error(("parameters", key), f"unknown parameter; this pipeline takes {sorted(allowed_parameters)}")
        if value is None:
            continue
        if key == "dataset":
            _check_dataset(c, value)
        elif key in models:
            c.model(("parameters", key), models[key], value)
            if key == "tokenizer":
                _check_tokenizer_keys(c, value)
        elif key == "max_history" and (not isinstance(value, int) or isinstance(value, bool) or value < 2):
            raise c.error(("parameters", key), f"must be a whole number >= 2, got {value!r}")


def check_pipeline_parameters(pipeline_name: str, params: dict) -> None:
    """The same checks as :func:`check_config_file`, on the parameters a pipeline was called with: each pipeline
    runs this first, while ZenML builds it, so a run started any way (``zenml pipeline run -c``, Python, a
    schedule) is refused before any step runs, naming the parameter (:class:`ConfigFileError`)."""
    _check_parameter_values(_Checker(Path(f"<{pipeline_name} parameters>"), {}), params, None)


def _check_variables(c: _Checker, node: Any, key: tuple) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _check_variables(c, v, key + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_variables(c, v, key + (i,))
    elif isinstance(node, str):
        unset = [v for v in _VAR.findall(node) if v not in os.environ]
        if unset:
            raise c.error(key, f"environment variable ${{{unset[0]}}} is not set")


def main(argv: list[str] | None = None) -> None:
    """``python -m sidkit.config FILE [--set KEY=VALUE ...]``: print the resolved config (YAML), e.g. for
    ``zenml pipeline run ... -c`` which reads plain files and knows no ``extends``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m sidkit.config", description=main.__doc__)
    ap.add_argument("file")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        cfg = check_config_file(args.file, sets=args.sets)
    except ConfigFileError as exc:
        sys.exit(f"config error: {exc}")
    sys.stdout.write(yaml.safe_dump(cfg, sort_keys=False))


if __name__ == "__main__":
    main()
