#!/usr/bin/env bash
# The built desktop app in a real X server (Xvfb, WebKitGTK):
#  1. its window comes up and renders the first screen (screenshot, accent-coloured buttons);
#  2. "Try the demo" on the Projects screen (clicked with xdotool) migrates the simulated tenant to completion: all
#     300 messages land in the demo project's folder and the Report screen shows (screenshot);
#  3. "Open the HTML report" hands exactly the run's report.html to the desktop's opener
#     (xdg-open, replaced by one that records what it was given);
#  4. closing the window when nothing runs quits the app (WM_DELETE_WINDOW, as a window
#     manager's close button sends it), so the close guard never traps the user;
#  5. a saved project (a project file pointing at the Graph simulator, m365-sim, with added
#     latency; a folder destination): opened, its client secret typed and kept for the
#     session, the Plan counted, a full pass started; closing the window during the pass asks
#     (screenshot), "Stop and quit" stops the pass and the app exits only once it has stopped
#     (the project records the pass as stopped, not running);
#  6. the app started again runs the project's incremental pass end to end: exactly the tenant's 300
#     messages in the destination folder (the stopped pass resumed, nothing copied twice),
#     the pass recorded as finished.
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
# The Graph simulator the saved project reads (a test tool, never shipped).
cargo build -p migrator-sim --bin m365-sim
sim="${CARGO_TARGET_DIR:-target}/debug/m365-sim"
[[ -x "$bin" ]] || { echo "smoke: $bin is not an executable" >&2; exit 1; }

out="artifacts/screenshots"
mkdir -p "$out"
shot="$out/window.png"
report="$out/window-report.png"
quit="$out/window-quit.png"
rm -f "$shot" "$report" "$quit"
export HOME_FOR_APP
HOME_FOR_APP="$(mktemp -d)"
trap 'rm -rf "$HOME_FOR_APP"' EXIT
# A close request to the app's window (WM_DELETE_WINDOW), as a window manager's close button
# sends it.
cat >"$HOME_FOR_APP/close.py" <<'PY'
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
  # The messages land before the calendars, contacts and tasks: the run has ended when its
  # report is written (a loaded machine takes longer), then the page shows the Report screen.
  for _ in $(seq 1 60); do
    [[ -s "$demo/.m365-migrator/report/report.html" ]] && break
    sleep 1
  done
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
  /usr/bin/python3 "$HOME_FOR_APP/close.py"
  for _ in $(seq 1 20); do
    kill -0 $app 2>/dev/null || exit 0
    sleep 0.5
  done
  fail "the window did not close when asked (nothing was running)"
' "$bin" "$shot" "$report"

# 5 and 6: a saved project, quit during its pass, then run end to end.
cat >"$HOME_FOR_APP/project.sh" <<'EOS'
set -euo pipefail
bin="$1" sim="$2" quit="$3"
export XDG_DATA_HOME="$HOME_FOR_APP/data" XDG_CONFIG_HOME="$HOME_FOR_APP/config"
export WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1
export PATH="$HOME_FOR_APP/bin:$PATH"
data="$XDG_DATA_HOME/com.m365migrator.app"
out="$HOME_FOR_APP/project-out"
app=""
fail() {
  echo "smoke: $*" >&2
  # What the window showed when it failed.
  [[ -n "$(window)" ]] && import -window "$(window)" "$(dirname "$quit")/window-failed.png" || true
  cat "$HOME_FOR_APP/app.log" >&2
  exit 1
}
# Slow answers (latency per Graph request), so the pass is caught while it runs.
"$sim" serve --latency-ms 150 --print-secret >"$HOME_FOR_APP/sim.out" 2>&1 &
simpid=$!
trap 'kill $simpid 2>/dev/null || true; [[ -n "$app" ]] && kill $app 2>/dev/null || true' EXIT
for _ in $(seq 1 30); do grep -q "^serving" "$HOME_FOR_APP/sim.out" && break; sleep 0.5; done
field() { awk -v k="$1" '$1 == k {print $2}' "$HOME_FOR_APP/sim.out"; }
url="$(field url)"
[[ -n "$url" ]] || { cat "$HOME_FOR_APP/sim.out" >&2; echo "smoke: the simulator did not start" >&2; exit 1; }
# The saved project: the newest (listed first), no secret in it.
mkdir -p "$data/projects" "$out"
cat >"$data/projects/smoke-project.json" <<JSON
{"id": "smoke-project", "name": "Smoke project", "createdAt": 4000000000, "updatedAt": 4000000000,
 "demo": false,
 "source": {"tenantId": "$(field tenant_id)", "clientId": "$(field client_id)", "cloud": "global",
            "loginUrl": "$url", "graphUrl": "$url", "allowPlaintextLoopback": true},
 "destination": {"kind": "folder", "path": "$out"}, "selection": {"users": []}, "passes": []}
JSON
window() { xwininfo -root -tree 2>/dev/null | awk '/"M365 Migrator"/ {print $1; exit}'; }
start_app() {
  "$bin" >"$HOME_FOR_APP/app.log" 2>&1 &
  app=$!
  for _ in $(seq 1 60); do
    [[ -n "$(window)" ]] && break
    kill -0 $app 2>/dev/null || fail "the app exited early:"
    sleep 1
  done
  [[ -n "$(window)" ]] || fail "no window titled M365 Migrator after 60 s"
  sleep 4
}
# xdotool type drops "~" under Xvfb's keymap: typed as its keysym.
type_text() {
  local s="$1"
  while [[ "$s" == *"~"* ]]; do
    xdotool type --delay 20 -- "${s%%~*}"; xdotool key asciitilde; s="${s#*~}"
  done
  xdotool type --delay 20 -- "$s"
}
passes() { /usr/bin/python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["passes"]; print(" ".join(x["state"] for x in p))' "$data/projects/smoke-project.json"; }
count() { find "$out" -path "*/cur/*" -type f 2>/dev/null | wc -l; }
counts="$data/projects/smoke-project/mailbox-counts.json"
# Open the project, keep its secret for the session, count the Plan, start a full pass.
open_and_start() {
  # "Open" on the first project's row of the Projects screen (window 1100x760 at the origin).
  xdotool mousemove 842 209 click 1
  sleep 3
  # The Source screen: the client secret field, "Test connection" (stores it: no keychain
  # here, so the session-only offer shows), "Keep for this session only".
  xdotool mousemove 632 314 click 1
  sleep 1
  type_text "$(field secret)"
  sleep 1
  xdotool mousemove 471 435 click 1
  sleep 3
  xdotool mousemove 393 437 click 1
  sleep 2
  rm -f "$counts"
  # "3 Plan" counts the mailboxes (the counts are kept in the project's folder).
  xdotool mousemove 535 25 click 1
  for _ in $(seq 1 90); do
    [[ -s "$counts" ]] && break
    sleep 1
  done
  [[ -s "$counts" ]] || fail "the Plan did not count the mailboxes (was the client secret kept?)"
  sleep 2
  # The Plan screen scrolled to its foot: the pass buttons ($1 $2: where the one to press is;
  # the pass history below them moves them up once a pass is recorded).
  xdotool mousemove 1050 400
  for _ in $(seq 1 15); do xdotool click 5; done
  sleep 1
  xdotool mousemove "$1" "$2" click 1
}
close_window() { /usr/bin/python3 "$HOME_FOR_APP/close.py"; }

# 5. Quit during the pass, the question answered "Stop and quit".
start_app
# "Start full pass".
open_and_start 245 684
for _ in $(seq 1 60); do
  [[ "$(count)" -ge 1 ]] && break
  sleep 0.5
done
[[ "$(count)" -ge 1 ]] || fail "the pass wrote no message (did the Start full pass button move?)"
close_window
sleep 2
import -window "$(window)" "$quit"
kill -0 $app 2>/dev/null || fail "the app quit during a pass without asking"
# "Stop and quit" in the question.
xdotool mousemove 547 432 click 1
for _ in $(seq 1 120); do
  kill -0 $app 2>/dev/null || break
  sleep 0.5
done
kill -0 $app 2>/dev/null && fail "Stop and quit did not quit the app"
[[ "$(passes)" == "stopped" ]] || fail "after Stop and quit the project records its passes as \"$(passes)\", not \"stopped\" (did the app exit before the pass stopped?)"
stopped_at="$(count)"
(( stopped_at < 300 )) || fail "the pass had finished before the question was answered"
echo "smoke: quit during the pass: asked, stopped cleanly after $stopped_at of 300 messages"

# 6. Started again: the project's pass runs to the end (the session's secret is typed again).
start_app
# "Start incremental pass", above the one pass recorded: it resumes the stopped one.
open_and_start 421 627
for _ in $(seq 1 240); do
  [[ "$(passes)" == "stopped finished" ]] && break
  sleep 0.5
done
[[ "$(passes)" == "stopped finished" ]] || fail "the second pass did not finish: passes \"$(passes)\""
[[ "$(count)" -eq 300 ]] || fail "the project's folder holds $(count) messages, not the tenant's 300"
echo "smoke: the saved project ran end to end: 300 messages, none twice"
close_window
for _ in $(seq 1 20); do
  kill -0 $app 2>/dev/null || exit 0
  sleep 0.5
done
fail "the window did not close when asked (nothing was running)"
EOS
xvfb-run -a -s "-screen 0 1280x800x24" bash "$HOME_FOR_APP/project.sh" "$bin" "$sim" "$quit"

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
for file in "$shot" "$report" "$quit"; do
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
echo "smoke: the desktop app rendered its first screen, ran the demo to its report, opened the report, closed when asked, stopped a saved project's pass on quit and ran it end to end"
