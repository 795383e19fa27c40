"""ZenML steps: thin typed wrappers around sidkit. Importing registers the materializers."""

import materializers  # noqa: F401  (registers sidkit's materializers with ZenML)
