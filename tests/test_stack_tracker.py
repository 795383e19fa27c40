"""MLflow through the active stack's experiment tracker (a remote or shared MLflow), else sidkit's own store."""

import os

from zenml.client import Client
from zenml.enums import StackComponentType


def test_runs_go_to_the_stacks_mlflow_tracker_when_it_has_one(tmp_path, monkeypatch):
    import mlflow

    from sidkit.tracking import mlflow_run
    from steps.context import use_stack_experiment_tracker

    client = Client()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])   # restored after the test
    assert use_stack_experiment_tracker() is None                                 # default stack: sidkit's store
    session_uri = os.environ["MLFLOW_TRACKING_URI"]

    uri = f"sqlite:///{tmp_path / 'team-mlflow.db'}"
    tracker = client.create_stack_component("team-mlflow", "mlflow", StackComponentType.EXPERIMENT_TRACKER,
                                            configuration={"tracking_uri": uri})
    default = client.active_stack_model
    components = {kind: [c[0].id] for kind, c in default.components.items()}
    client.create_stack("with-tracker", components={**components, StackComponentType.EXPERIMENT_TRACKER: [tracker.id]})
    client.activate_stack("with-tracker")
    try:
        assert use_stack_experiment_tracker() == "team-mlflow"
        assert os.environ["MLFLOW_TRACKING_URI"] == uri
        with mlflow_run("sidkit-tracker-test", "on-the-stack") as m:
            m.log_metric("x", 1.0)
            run_id = m.active_run().info.run_id
        assert mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics == {"x": 1.0}
        assert mlflow.MlflowClient(tracking_uri=session_uri).get_experiment_by_name("sidkit-tracker-test") is None
    finally:
        client.activate_stack(default.id)
        client.delete_stack("with-tracker")
        client.delete_stack_component(tracker.id, StackComponentType.EXPERIMENT_TRACKER)
