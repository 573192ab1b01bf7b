#!/usr/bin/env bash
# Register a built Gumshoe folder with the desktop: menu entry, icon, *.gumshoe type.
#   packaging/install-desktop.sh dist/gumshoe
set -euo pipefail
APP=$(cd "${1:?usage: install-desktop.sh APP_FOLDER}" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$HOME/.local/bin" "$DATA/applications" "$DATA/icons/hicolor/256x256/apps" "$DATA/mime/packages"
ln -sf "$APP/gumshoe" "$HOME/.local/bin/gumshoe"
cp "$APP/gumshoe.png" "$DATA/icons/hicolor/256x256/apps/gumshoe.png"
sed "s|^Exec=gumshoe|Exec=$APP/gumshoe|; s|^TryExec=gumshoe|TryExec=$APP/gumshoe|" \
  "$APP/gumshoe.desktop" > "$DATA/applications/gumshoe.desktop"
cp "$APP/gumshoe-mime.xml" "$DATA/mime/packages/gumshoe.xml"
command -v update-mime-database >/dev/null && update-mime-database "$DATA/mime" || true
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
echo "installed: gumshoe in the menu, ~/.local/bin/gumshoe"
