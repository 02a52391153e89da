#!/usr/bin/env bash
# The core must stay free of Tauri and of the simulator (DESIGN.md, Layout).
set -euo pipefail
tree=$(cargo tree -p migrator-core -e normal --prefix none)
if grep -Eq '^(tauri|migrator-sim)[ -]' <<<"$tree"; then
  echo "check-layout: migrator-core depends on tauri or migrator-sim:" >&2
  grep -E '^(tauri|migrator-sim)' <<<"$tree" >&2
  exit 1
fi
echo "check-layout: migrator-core has no tauri or simulator dependency"
