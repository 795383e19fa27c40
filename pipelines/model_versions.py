"""Resolving model versions and their artifacts (ZenML Model Control Plane), shared by pipelines.

Inside a pipeline body, ``Client().get_model_version(...)`` and ``get_artifact`` are resolved
when the pipeline is compiled; versions that must not move while a run is prepared (``latest``,
``production``) are pinned to a number by run.py before the pipeline is called.
"""

from zenml.client import Client
from zenml.enums import ModelStages

from steps.artifacts import Artifacts


def resolve_model_version(name: str, version: str | None):
    return Client().get_model_version(name, version or ModelStages.LATEST)


def production_version(name: str) -> str | None:
    """The number of the model version in stage ``production``, or None when there is none."""
    try:
        return str(Client().get_model_version(name, ModelStages.PRODUCTION).name)
    except KeyError:
        return None


def artifact(mv, name: str):
    art = mv.get_artifact(name)
    if art is None:
        raise ValueError(f"model version {mv.model.name}:{mv.name} has no '{name}' artifact; "
                         "was it produced by the training or retraining pipeline?")
    return art


def serving_tokenizer(mv):
    """The tokenizer that produced the version's SIDs. Every version has it under one name,
    ``finetuned_tokenizer`` (stage 2 when it ran, else stage 1; append mode re-publishes the
    champion's): inside a pipeline body artifact lookups are lazy, so a fallback on a missing
    name could not be decided here."""
    return artifact(mv, Artifacts.FINETUNED_TOKENIZER)
