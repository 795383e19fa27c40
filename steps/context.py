"""What a running step knows about its pipeline's model version (None where the pipeline has no model)."""

from zenml import get_step_context
from zenml.exceptions import StepContextError


def model_name_and_version() -> tuple[str | None, str | None]:
    """(model name, version number) of the model version this run produces or reads; (None, None) without one."""
    try:
        model = get_step_context().model
    except StepContextError:
        return None, None
    return model.name, (None if model.version is None else str(model.version))
