#!/usr/bin/env bash
# Run every notebook in order (headless, papermill), or the test suite.
#
#   ./run_all.sh                      # profile "quick": the whole study at reduced scale (CPU)
#   ./run_all.sh --profile smoke      # minutes; what the tests run
#   ./run_all.sh --profile paper      # the paper's scale (GPU)
#   ./run_all.sh --only 01 --force    # one stage, even if up to date
#   ./run_all.sh --data DIR [--nm-per-px X] [--name NAME]
#                                     # 01-07 and 09 on your own data (COCO, YOLO-seg, ImageJ, gray masks;
#                                     # PNG/JPEG/TIFF/DM3/DM4/EMD/SER), written to runs/NAME/
#   ./run_all.sh --test [pytest args] # the test suite (what CI runs)
#   ./run_all.sh --lint               # ruff and committed-clean notebooks (CI runs it first)
#
# On a fresh clone it creates .venv, installs requirements-lock.txt and tem_lib, and
# registers the Jupyter kernel "tem-lib". If the active Python already has tem_lib (Binder,
# Colab, your own environment), that environment is used as it is.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then  # answers without installing anything
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  echo "Notebook options (python -m tem_lib.running.runner --help once installed): --profile NAME, --only NN,"
  echo "--force, -p NAME VALUE, --runs-dir DIR, --data DIR [--nm-per-px X] [--name NAME]."
  exit 0
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
  echo "run_all.sh: $PYTHON not found; install Python >= 3.10" >&2; exit 2
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "run_all.sh: Python >= 3.10 needed, found $("$PYTHON" --version 2>&1)" >&2; exit 2
fi

if (cd / && "$PYTHON" -c 'import tem_lib') 2>/dev/null && [ "${TEM_LIB_USE_VENV:-0}" != 1 ]; then
  PY="$PYTHON"   # an environment with tem_lib is active: use it
else
  PY=.venv/bin/python
  stamp=.venv/.tem_lib-installed
  want=$(cat requirements-lock.txt pyproject.toml | "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] && command -v flock >/dev/null; then
    # one installer at a time: a second run_all.sh waits for the first instead of running a
    # second pip into the same .venv
    exec 9>.venv-install.lock
    if ! flock -n 9; then
      echo "== another run_all.sh is installing .venv; waiting for it to finish" >&2
      flock 9
    fi
  fi
  if [ ! -x "$PY" ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then  # (again: the other installer may have done it)
    echo "== installing the locked environment into .venv (first time: a few minutes)"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -r requirements-lock.txt
    "$PY" -m pip install --quiet --no-deps -e .
    "$PY" -m ipykernel install --sys-prefix --name tem-lib --display-name "Python (tem-lib)" >/dev/null
    echo "$want" > "$stamp"
  fi
fi

if [ "${1:-}" = "--test" ]; then
  shift
  exec "$PY" -m pytest "$@"
fi
if [ "${1:-}" = "--lint" ]; then  # what the pre-commit hooks check: ruff, notebooks without outputs
  "$PY" -m ruff check .
  exec "$PY" -m nbstripout --keep-id --verify notebooks/*.ipynb
fi
exec "$PY" -m tem_lib.running.runner "$@"
