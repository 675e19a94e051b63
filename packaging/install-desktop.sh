#!/usr/bin/env bash
# Installs the desktop entry, icon and slide MIME types for the current user, so IDC Viewer is in
# the application menu and a double-click on .svs .ndpi .tif/.tiff .mrxs .scn .dcm opens the slide.
# Usage: bash packaging/install-desktop.sh [--exec PROGRAM]
#   PROGRAM defaults to the frozen build (dist/IDC Viewer/idc-viewer), else .venv/bin/idc-viewer.
# Files go under ${XDG_DATA_HOME:-~/.local/share}: applications/, icons/hicolor/, mime/packages/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
exe=""
while [ $# -gt 0 ]; do
  case $1 in
    --exec) exe=${2:?--exec needs a program}; shift 2 ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "install-desktop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$exe" ]; then
  for candidate in "$root/dist/IDC Viewer/idc-viewer" "$root/.venv/bin/idc-viewer"; do
    [ -x "$candidate" ] && { exe=$candidate; break; }
  done
fi
[ -n "$exe" ] && [ -x "$exe" ] || {
  echo "install-desktop.sh: no idc-viewer to point at: build it (bash packaging/build.sh) or" \
       "give --exec PROGRAM" >&2
  exit 1
}
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
case $exe in *[\"\`\$\\]*)
  echo "install-desktop.sh: $exe has a character a desktop entry cannot quote" >&2; exit 1 ;;
esac
data=${XDG_DATA_HOME:-$HOME/.local/share}
icons="$root/idc_viewer/resources/icons"
mkdir -p "$data/applications" "$data/icons/hicolor/256x256/apps" \
  "$data/icons/hicolor/scalable/apps" "$data/mime/packages"
# the desktop entry spec quotes a path with spaces ("IDC Viewer") in double quotes
sed "s|@EXEC@|\"$exe\"|" "$here/desktop/idc-viewer.desktop.in" \
  > "$data/applications/idc-viewer.desktop"
cp "$icons/idc-viewer.png" "$data/icons/hicolor/256x256/apps/idc-viewer.png"
cp "$icons/idc-viewer.svg" "$data/icons/hicolor/scalable/apps/idc-viewer.svg"
cp "$here/desktop/idc-viewer-mime.xml" "$data/mime/packages/idc-viewer.xml"
# the caches are refreshed where the tools exist (a desktop has them; a bare server may not)
if command -v update-mime-database >/dev/null; then update-mime-database "$data/mime"; fi
if command -v update-desktop-database >/dev/null; then
  update-desktop-database "$data/applications"
fi
# (the per-user hicolor folder has no index.theme, which this tool may refuse: not an error)
if command -v gtk-update-icon-cache >/dev/null; then
  gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
fi
echo "installed: $data/applications/idc-viewer.desktop -> $exe"
