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


def use_stack_experiment_tracker() -> str | None:
    """Where the active stack has an MLflow experiment tracker, point MLflow at it (its tracking URI and
    credentials, set by ZenML as environment variables, which sidkit.tracking reads first); without one, sidkit's
    own store under the state folder stays in use. Returns the tracker's name, or None."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    if tracker is None or tracker.flavor != "mlflow":
        return None
    tracker.configure_mlflow()
    return tracker.name


def tracked_run(experiment: str, run_name: str, run_id: str | None = None, tags: dict | None = None):
    """sidkit.tracking.mlflow_run on the stack's experiment tracker when it has one (see above)."""
    from sidkit.tracking import mlflow_run

    use_stack_experiment_tracker()
    return mlflow_run(experiment, run_name, run_id=run_id, tags=tags)
