#!/bin/sh
# Add clipdesk to the desktop's application menu (for this user), pointing at this folder.
set -e
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
mkdir -p "$apps" "$icons"
cp "$here/clipdesk.svg" "$icons/clipdesk.svg"
sed "s|^Exec=clipdesk-gui|Exec=\"$here/clipdesk-gui\"|" "$here/clipdesk.desktop" > "$apps/clipdesk.desktop"
echo "installed $apps/clipdesk.desktop"
