#!/usr/bin/env bash
# Build the one-folder app (CPU torch) into dist/gumshoe/ and a tarball beside it.
#   bash packaging/build.sh            # uses .venv (created and filled if missing)
#   PYTHON=/path/to/python bash packaging/build.sh
# Install on Linux: untar, then run dist/gumshoe/gumshoe, or
#   packaging/install-desktop.sh dist/gumshoe   # menu entry, icon, *.gumshoe file type
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-$VENV/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  # the CPU build of torch keeps the folder small; the index serves +cpu wheels
  "$VENV/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu torch
  "$VENV/bin/pip" install -q -c constraints.txt -e .
fi
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install -q "pyinstaller>=6.10"
# the icon: render the SVG once (Qt is already a dependency)
QT_QPA_PLATFORM=offscreen "$PY" - <<'PY'
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtCore import Qt
app = QGuiApplication([])
img = QImage(256, 256, QImage.Format.Format_ARGB32)
img.fill(Qt.GlobalColor.transparent)
p = QPainter(img)
QSvgRenderer("resources/icons/gumshoe.svg").render(p)
p.end()
img.save("packaging/gumshoe.png")
PY
"$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
  packaging/gumshoe.spec
cp packaging/gumshoe.desktop packaging/gumshoe-mime.xml packaging/gumshoe.png dist/gumshoe/
du -sh dist/gumshoe
tar -C dist -czf dist/gumshoe-linux-x86_64.tar.gz gumshoe
echo "built dist/gumshoe/gumshoe and dist/gumshoe-linux-x86_64.tar.gz"
