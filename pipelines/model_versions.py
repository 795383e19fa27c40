"""Resolving model versions and their artifacts (ZenML Model Control Plane), shared by pipelines.

Inside a pipeline body, ``Client().get_model_version(...)`` and ``get_artifact`` are resolved
when the pipeline is compiled; versions that must not move while a run is prepared (``latest``,
``production``) are pinned to a number by run.py before the pipeline is called.
"""

from zenml.client import Client
from zenml.enums import ModelStages
from zenml.models import ModelVersionResponse

from steps.artifacts import Artifacts


# metadata that publish_tokenizer writes last, after the SID health gate: a version without it
# belongs to a run that failed or was killed before it finished
COMPLETE_MARK = "sid_quality"


def is_complete(mv) -> bool:
    return COMPLETE_MARK in (mv.run_metadata or {})


def resolve_model_version(name: str, version: str | None):
    """A version by number, name or stage; ``None`` or ``latest``: the newest *complete* version.

    Failed and killed training runs leave model versions without artifacts; "latest" skips them.
    A version asked for by number that is incomplete is an error that says so. Inside a pipeline
    body ZenML hands back lazy placeholders that cannot be inspected; they are returned as they are
    (run.py pins every version with this function before a pipeline is compiled).
    """
    client = Client()
    latest = version in (None, "latest", ModelStages.LATEST)
    mv = client.get_model_version(name, ModelStages.LATEST if latest else version)
    if not isinstance(mv, ModelVersionResponse) or is_complete(mv):
        return mv
    if latest:
        for candidate in client.list_model_versions(model_name_or_id=name, sort_by="desc:number", size=100).items:
            if is_complete(candidate):
                return client.get_model_version(name, candidate.number)
        raise KeyError(f"model {name!r} has no complete version (every run so far failed or was stopped "
                       "before publishing its tokenizer)")
    raise KeyError(f"version {mv.name} of model {name!r} is incomplete: its run failed or was stopped before "
                   "publishing the tokenizer")


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
