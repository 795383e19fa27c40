"""Test session isolation: a temporary sidkit home, ZenML store and MLflow store.

The environment is set at import time, before anything imports ZenML, so no test
ever touches the user's global ZenML store or the project's .sidkit/ folder.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="sidkit-tests-"))
os.environ["SIDKIT_HOME"] = str(_SESSION_HOME)
os.environ["ZENML_CONFIG_PATH"] = str(_SESSION_HOME / "zenml")
os.environ["ZENML_REPOSITORY_PATH"] = str(_SESSION_HOME / "repo")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_HOME / 'mlflow.db'}"
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ["SIDKIT_PROGRESS"] = "0"
(_SESSION_HOME / "repo").mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(ROOT))

from sidkit.settings import configure_environment  # noqa: E402

configure_environment(_SESSION_HOME)

SHARED_DATA = Path(os.environ.get("SIDKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set SIDKIT_SHARED_DATA to run these tests)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_synthetic():
    from sidkit.data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(n_items=120, n_users=90, n_clusters=4, with_images=False, seed=3))


@pytest.fixture(scope="session")
def clustered_vectors():
    """Well-separated Gaussian clusters: (x, labels)."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(8, 24))
    labels = rng.integers(0, 8, size=800)
    x = centres[labels] + rng.normal(0, 0.3, size=(800, 24))
    return x.astype("float32"), labels


def planted_walks(n_items: int, n_users: int, lengths: tuple[int, int], seed: int = 0):
    """Items with unique 2-token SIDs (8 codes at the second position) and user sequences that follow a
    fixed successor map 90% of the time: the next item is learnable, popularity is not enough."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sids = np.stack([np.arange(n_items) // 8, np.arange(n_items) % 8], 1)
    successor = rng.permutation(n_items)

    def walk(length):
        s = [int(rng.integers(n_items))]
        for _ in range(length - 1):
            s.append(int(successor[s[-1]]) if rng.random() < 0.9 else int(rng.integers(n_items)))
        return s

    return sids, [walk(int(rng.integers(*lengths))) for _ in range(n_users)]
