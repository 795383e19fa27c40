#!/usr/bin/env bash
# Create .venv and install sidkit with its pinned stack. Idempotent; used by `make setup`.
#
# torch is installed first, from pip's configuration (which finds the CPU wheel of
# torch 2.13.0 on this kind of machine), and checked to be a +cpu build: a resolver left
# to choose torch pulls gigabytes of CUDA wheels. The rest is installed with uv (several
# times faster; --compile-bytecode because PYTHONDONTWRITEBYTECODE is set here), given
# pip's find-links so it keeps the same torch; plain pip is the fallback.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${SIDKIT_EXTRAS:-test}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "sidkit needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

is_cpu_torch() { "$PY" - <<'PYEOF' 2>/dev/null
import sys
try:
    import torch
except Exception:
    sys.exit(1)
sys.exit(0 if torch.__version__ == "2.13.0+cpu" else 1)
PYEOF
}

if ! is_cpu_torch; then
  echo "== installing torch 2.13.0 (CPU) first"
  "$PY" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
  if ! is_cpu_torch; then
    if [ "${SIDKIT_ALLOW_NON_CPU_TORCH:-0}" != "1" ]; then
      echo "torch is $("$PY" -c 'import torch; print(torch.__version__)'), not 2.13.0+cpu." >&2
      echo "Point pip at a CPU wheel (TORCH_INDEX_URL=<index with CPU wheels>) or set SIDKIT_ALLOW_NON_CPU_TORCH=1." >&2
      exit 1
    fi
  fi
fi

FIND_LINKS="${PIP_FIND_LINKS:-$("$PY" -m pip config get global.find-links 2>/dev/null || true)}"
echo "== installing sidkit[$EXTRAS]"
installed=0
if "$PY" -m pip install --quiet "uv==0.13.9" >/dev/null 2>&1; then
  args=(pip install --python "$PY" --compile-bytecode --quiet)
  for fl in $FIND_LINKS; do args+=(--find-links "$fl"); done
  if "$VENV/bin/uv" "${args[@]}" -e ".[$EXTRAS]"; then installed=1; else echo "uv failed; falling back to pip" >&2; fi
fi
if [ "$installed" = 0 ]; then
  "$PY" -m pip install --quiet -e ".[$EXTRAS]"
  "$PY" -m compileall -q "$VENV/lib" >/dev/null 2>&1 || true
fi
if ! is_cpu_torch && [ "${SIDKIT_ALLOW_NON_CPU_TORCH:-0}" != "1" ]; then
  echo "the install replaced torch 2.13.0+cpu; refusing to continue" >&2
  exit 1
fi

# the browser test (tests/test_browser.py) drives Debian's chromium headless; installed where we may
# (root with apt, or passwordless sudo), else that test is skipped with the reason
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "== installing chromium + chromium-driver (Debian) for the browser test"
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver) \
      >/dev/null 2>&1 || echo "note: could not install chromium; the browser test will be skipped" >&2
  else
    echo "note: no chromium and no way to install it (apt as root); the browser test will be skipped" >&2
  fi
fi

echo "== initialising local state under .sidkit/ (ZenML store, MLflow, caches)"
"$PY" - <<'PYEOF'
from pathlib import Path
from sidkit.settings import configure_environment, shell_exports
root = configure_environment()
(root / "env.sh").write_text(shell_exports(root))
from zenml.client import Client
Client().active_stack  # creates the local SQLite store and the default stack
print(f"state in {root}; for the zenml CLI: source {root / 'env.sh'}")
PYEOF
# make the project root the ZenML source root (silences "running without a ZenML repository")
if [ ! -d .zen ]; then
  (set +u; source .sidkit/env.sh; "$VENV/bin/zenml" init >/dev/null 2>&1) || echo "note: 'zenml init' did not run" >&2
fi
touch "$VENV/.sidkit-installed"
