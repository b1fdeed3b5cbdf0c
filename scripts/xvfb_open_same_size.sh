#!/usr/bin/env bash
# Open a document over one of the same size on a real X display, as a painter does, and
# screenshot what the screen shows (issue 17: the canvas kept the previous picture).
#
#   bash scripts/xvfb_open_same_size.sh [OUT_DIR]      # default: ./xvfb-shots
#
# Needs Xvfb, xdotool and ImageMagick's `import` (Debian: xvfb xdotool imagemagick).
# Starts Xvfb on a free display, runs `sfumato blue.ora` (1024x1024, all blue), opens
# red.ora (1024x1024, all red) with Ctrl+O and the file dialog, and takes a screenshot
# right after the dialog closes: 1-blue.png, 2-red.png. It prints the colour at the
# canvas centre of each and exits non-zero when the second is not red.
set -euo pipefail
out=${1:-xvfb-shots}
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python}

display=99
while [ -e "/tmp/.X${display}-lock" ]; do display=$((display + 1)); done
Xvfb ":$display" -screen 0 1600x1000x24 >/dev/null 2>&1 &
xvfb=$!
export DISPLAY=":$display"
unset QT_QPA_PLATFORM
app=
cleanup() { [ -n "$app" ] && kill "$app" 2>/dev/null; kill "$xvfb" 2>/dev/null; }
trap cleanup EXIT
sleep 1

"$python" - "$out" <<'EOF'
import sys
import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.files.ora import save_ora
from sfumato.canvas.model.tiles import TiledSurface

for name, rgb in (("blue", (0, 0, 255)), ("red", (255, 0, 0))):
    doc = Document(1024, 1024)
    px = np.zeros((1024, 1024, 4), np.uint8)
    px[..., :3] = rgb
    px[..., 3] = 255
    doc.root.append(PixelLayer("Background", TiledSurface.from_array(px)))
    save_ora(doc, f"{sys.argv[1]}/{name}.ora")
EOF

SFUMATO_CONFIG_DIR="$out/config" "$python" -m sfumato "$out/blue.ora" >"$out/app.log" 2>&1 &
app=$!
win=
for _ in $(seq 1 60); do
  win=$(xdotool search --onlyvisible --name "blue.ora" 2>/dev/null | head -1 || true)
  [ -n "$win" ] && break
  sleep 0.5
done
[ -n "$win" ] || { echo "the window did not appear; see $out/app.log" >&2; exit 1; }
sleep 3

centre() {  # the colour at the centre of the canvas area (the window's middle, a bit left)
  eval "$(xdotool getwindowgeometry --shell "$win")"
  import -window root -depth 8 -crop 1x1+$((X + WIDTH / 2))+$((Y + HEIGHT / 2)) txt:- | tail -1 | grep -o '#[0-9A-F]\{6\}' | head -1
}
import -window root "$out/1-blue.png"
first=$(centre)

xdotool windowactivate --sync "$win" 2>/dev/null || xdotool windowfocus "$win"
xdotool key --window "$win" ctrl+o
dialog=
for _ in $(seq 1 20); do
  dialog=$(xdotool search --onlyvisible --name "^Open" 2>/dev/null | head -1 || true)
  [ -n "$dialog" ] && break
  sleep 0.3
done
[ -n "$dialog" ] || { echo "the Open dialog did not appear" >&2; exit 1; }
xdotool windowfocus "$dialog" 2>/dev/null || true
sleep 0.3
xdotool type --delay 10 "$out/red.ora"
xdotool key Return
for _ in $(seq 1 40); do
  xdotool search --onlyvisible --name "red.ora" >/dev/null 2>&1 && break
  sleep 0.25
done
sleep 0.5  # no mouse movement, no zoom: just the repaint the open itself asks for
import -window root "$out/2-red.png"
second=$(centre)
echo "canvas centre: before $first, after opening red.ora $second (screenshots in $out)"
[ "$second" = "#FF0000" ]
