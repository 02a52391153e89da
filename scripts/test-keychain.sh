#!/usr/bin/env bash
# The keychain against a real Secret Service: a private D-Bus session with gnome-keyring-daemon
# (unlocked with a throwaway password), then the ignored test tests/keychain.rs in it.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in dbus-run-session gnome-keyring-daemon secret-tool; do
  command -v "$tool" >/dev/null || { echo "test-keychain: $tool is missing: apt-get install dbus-x11 gnome-keyring libsecret-tools (scripts/install-deps.sh)" >&2; exit 1; }
done
cargo="${CARGO:-cargo}"
# Build outside the D-Bus session so the daemon does not wait on the compiler; the CLI too
# (one test runs it), right before use since target/ is shared.
"$cargo" nextest run -p m365-migrator --test keychain --run-ignored only --no-run
"$cargo" build -p migrator-cli --bin m365-migrate
export M365_MIGRATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/m365-migrate"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
# The keyring file lives in a throwaway XDG_DATA_HOME (never the user's own keyring);
# XDG_RUNTIME_DIR holds the daemon's control socket.
mkdir -m 700 "$home/run"
XDG_RUNTIME_DIR="$home/run" XDG_DATA_HOME="$home/data" \
  dbus-run-session -- bash -c '
    set -euo pipefail
    eval "$(echo -n throwaway | gnome-keyring-daemon --unlock --components=secrets)"
    export GNOME_KEYRING_CONTROL
    "$0" nextest run -p m365-migrator --test keychain --run-ignored only
  ' "$cargo"
