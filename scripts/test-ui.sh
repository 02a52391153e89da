#!/usr/bin/env bash
# The UI in a real Chromium (Debian's), served from ui/dist with the Tauri backend scripted.
# Screenshots go to artifacts/screenshots/ and, for the README, docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../ui"
[[ -x /usr/bin/chromium || -n "${CHROMIUM_PATH:-}" ]] || { echo "test-ui: Chromium is missing: apt-get install chromium" >&2; exit 1; }
npm test
