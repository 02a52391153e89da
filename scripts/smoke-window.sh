#!/usr/bin/env bash
# The built desktop app in a real X server (Xvfb, WebKitGTK):
#  1. its window comes up and renders the first screen (screenshot, accent-coloured buttons);
#  2. "Try the demo" on the Projects screen (clicked with xdotool) migrates the simulated tenant to completion: all
#     300 messages land in the demo project's folder and the Report screen shows (screenshot);
#  3. "Open the HTML report" hands exactly the run's report.html to the desktop's opener
#     (xdg-open, replaced by one that records what it was given);
#  4. closing the window when nothing runs quits the app (WM_DELETE_WINDOW, as a window
#     manager's close button sends it), so the close guard never traps the user.
# Usage: scripts/smoke-window.sh [BINARY] (default: a debug build of the app)
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in xvfb-run xwininfo import convert xdotool; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is missing: run scripts/install-deps.sh (apt-get install xvfb x11-utils imagemagick xdotool)" >&2; exit 1; }
done
/usr/bin/python3 -c "import Xlib" 2>/dev/null || { echo "smoke: python3-xlib is missing: apt-get install python3-xlib" >&2; exit 1; }

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
report="$out/window-report.png"
rm -f "$shot" "$report"
export HOME_FOR_APP
HOME_FOR_APP="$(mktemp -d)"
trap 'rm -rf "$HOME_FOR_APP"' EXIT

# WebKitGTK under Xvfb without a GPU: software rendering, no sandbox helpers as root.
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
  set -euo pipefail
  export XDG_DATA_HOME="$HOME_FOR_APP/data" XDG_CONFIG_HOME="$HOME_FOR_APP/config"
  # The desktop opener the app starts (tauri-plugin-opener runs xdg-open): one that records.
  mkdir -p "$HOME_FOR_APP/bin"
  printf "#!/bin/sh\nprintf %%s \"\$1\" > \"%s/opened\"\n" "$HOME_FOR_APP" > "$HOME_FOR_APP/bin/xdg-open"
  chmod +x "$HOME_FOR_APP/bin/xdg-open"
  export PATH="$HOME_FOR_APP/bin:$PATH"
  export WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1
  "$0" >"$HOME_FOR_APP/app.log" 2>&1 &
  app=$!
  trap "kill $app 2>/dev/null || true" EXIT
  fail() { echo "smoke: $*" >&2; cat "$HOME_FOR_APP/app.log" >&2; exit 1; }
  window() { xwininfo -root -tree 2>/dev/null | awk "/\"M365 Migrator\"/ {print \$1; exit}"; }
  for _ in $(seq 1 60); do
    [[ -n "$(window)" ]] && break
    kill -0 $app 2>/dev/null || fail "the app exited early:"
    sleep 1
  done
  id="$(window)"
  [[ -n "$id" ]] || fail "no window titled M365 Migrator after 60 s"
  # Give the web view time to lay out the first screen.
  sleep 4
  import -window "$id" "$1"

  # "Try the demo" on the Projects screen with no project yet (window 1100x760 at the origin).
  xdotool mousemove 168 479 click 1
  # The demo has a folder of its own in the projects folder (never a real project one).
  demo="$XDG_DATA_HOME/com.m365migrator.app/projects/demo"
  count() { find "$demo" -path "*/cur/*" -type f 2>/dev/null | wc -l; }
  for _ in $(seq 1 60); do
    [[ "$(count)" -ge 300 ]] && break
    sleep 1
  done
  [[ "$(count)" -eq 300 ]] || fail "the demo wrote $(count) of 300 messages to $demo (did the Try the demo button move?)"
  sleep 2
  import -window "$id" "$2"

  # "Open the HTML report": the first button of the Report screen.
  xdotool mousemove 202 152 click 1
  for _ in $(seq 1 20); do
    [[ -s "$HOME_FOR_APP/opened" ]] && break
    sleep 0.5
  done
  opened="$(cat "$HOME_FOR_APP/opened" 2>/dev/null || true)"
  [[ "$opened" == "$demo/.m365-migrator/report/report.html" ]] || fail "Open the HTML report opened \"$opened\", not the report.html of the run"
  [[ -s "$opened" ]] || fail "the report $opened is missing or empty"

  # Nothing runs now: a close request quits the app.
  /usr/bin/python3 - <<"PY"
from Xlib import X, display, protocol
d = display.Display()
delete = d.intern_atom("WM_DELETE_WINDOW")
def find(w):
    if w.get_wm_name() == "M365 Migrator" and delete in (w.get_wm_protocols() or []):
        return w
    for child in w.query_tree().children:
        found = find(child)
        if found:
            return found
w = find(d.screen().root)
w.send_event(protocol.event.ClientMessage(window=w, client_type=d.intern_atom("WM_PROTOCOLS"),
             data=(32, [delete, X.CurrentTime, 0, 0, 0])), event_mask=X.NoEventMask)
d.flush()
PY
  for _ in $(seq 1 20); do
    kill -0 $app 2>/dev/null || exit 0
    sleep 0.5
  done
  fail "the window did not close when asked (nothing was running)"
' "$bin" "$shot" "$report"

# The screens' primary buttons use the accent colour (light or dark theme); an error page or a
# blank window has none of it.
accent_pixels() {
  local n total=0
  for colour in "#0f6cbd" "#4aa3ff"; do
    n=$(convert "$1" -fuzz 6% -fill black +opaque "$colour" -fill white -opaque "$colour" \
        -format "%[fx:round(mean*w*h)]" info:)
    total=$((total + n))
  done
  echo "$total"
}
for file in "$shot" "$report"; do
  [[ -s "$file" ]] || { echo "smoke: no screenshot $file was taken" >&2; exit 1; }
  accent=$(accent_pixels "$file")
  echo "smoke: screenshot $file has $accent accent-coloured pixels"
  if (( accent < 1000 )); then
    echo "smoke: $file shows no rendered screen (no accent-coloured buttons)" >&2
    exit 1
  fi
done
# The real app's windows for the README.
mkdir -p docs/screenshots
cp "$shot" docs/screenshots/app-window.png
cp "$report" docs/screenshots/app-report.png
echo "smoke: the desktop app rendered its first screen, ran the demo to its report, opened the report and closed when asked"
