#!/usr/bin/env bash
# Starts the desktop app in a real X server (Xvfb), waits for its window, takes a screenshot
# and checks that the first screen rendered (not a blank window).
# Usage: scripts/smoke-window.sh [BINARY] (default: a debug build of the app)
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in xvfb-run xwininfo import convert; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is missing: run scripts/install-deps.sh (xvfb x11-utils imagemagick)" >&2; exit 1; }
done

bin="${1:-}"
if [[ -z "$bin" ]]; then
  # The embedded UI, as in a release, not the dev server.
  cargo build -p m365-migrator --bin m365-migrator --features custom-protocol
  bin="${CARGO_TARGET_DIR:-target}/debug/m365-migrator"
fi
[[ -x "$bin" ]] || { echo "smoke: $bin is not an executable" >&2; exit 1; }

out="artifacts/screenshots"
mkdir -p "$out"
shot="$out/window.png"
rm -f "$shot"
export HOME_FOR_APP
HOME_FOR_APP="$(mktemp -d)"

# WebKitGTK under Xvfb without a GPU: software rendering, no sandbox helpers as root.
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
  set -euo pipefail
  export XDG_DATA_HOME="$HOME_FOR_APP/data" XDG_CONFIG_HOME="$HOME_FOR_APP/config"
  export WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1
  "$0" >"$HOME_FOR_APP/app.log" 2>&1 &
  app=$!
  trap "kill $app 2>/dev/null || true" EXIT
  for _ in $(seq 1 60); do
    if xwininfo -root -tree 2>/dev/null | grep -q "\"M365 Migrator\""; then break; fi
    kill -0 $app 2>/dev/null || { echo "smoke: the app exited early:" >&2; cat "$HOME_FOR_APP/app.log" >&2; exit 1; }
    sleep 1
  done
  xwininfo -root -tree | grep -q "\"M365 Migrator\"" || { echo "smoke: no window titled M365 Migrator after 60 s" >&2; cat "$HOME_FOR_APP/app.log" >&2; exit 1; }
  # Give the web view time to lay out the first screen.
  sleep 4
  import -window root "$1"
' "$bin" "$shot"

[[ -s "$shot" ]] || { echo "smoke: no screenshot was taken" >&2; exit 1; }
# The first screen's primary buttons use the accent colour (light or dark theme); an error
# page or a blank window has none of it.
accent=0
for colour in "#0f6cbd" "#4aa3ff"; do
  n=$(convert "$shot" -fuzz 6% -fill black +opaque "$colour" -fill white -opaque "$colour" \
      -format "%[fx:round(mean*w*h)]" info:)
  accent=$((accent + n))
done
echo "smoke: window screenshot $shot has $accent accent-coloured pixels"
if (( accent < 2000 )); then
  echo "smoke: the first screen did not render (no accent-coloured buttons)" >&2
  exit 1
fi
echo "smoke: the desktop app opened its window and rendered the first screen"
