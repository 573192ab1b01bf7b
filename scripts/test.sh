#!/usr/bin/env bash
# Set up (or update) the virtual environment and run every check CI runs:
# ruff, the import contract (core/ never imports Qt), tests/core with Qt
# unavailable, then the Qt tests offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# constraints.txt pins torch to the CPU build; the package metadata keeps a range.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import core, app, torch, PySide6" # fail early if the install failed

echo "== ruff"
"$VENV/bin/ruff" check .
echo "== import contract"
"$VENV/bin/lint-imports"
echo "== tests/core with Qt unavailable"
"$VENV/bin/python" scripts/without_qt.py -m pytest tests/core -q -p no:pytest-qt -p no:cacheprovider -W ignore::pytest.PytestConfigWarning
echo "== tests/app (Qt, offscreen)"
export QT_QPA_PLATFORM=offscreen
rc=0
"$VENV/bin/python" -m pytest tests/app -q -p no:cacheprovider || rc=$?
if [ "$rc" -eq 5 ]; then echo "no Qt tests collected"; rc=0; fi
exit "$rc"
