#!/usr/bin/env bash
# Installs what building and testing M365 Migrator needs on Debian/Ubuntu, skipping what is
# already there. Safe to run again. Other platforms: see README "Prerequisites".
set -euo pipefail

APT_PACKAGES=(
  # Tauri 2 on Linux (https://v2.tauri.app/start/prerequisites/)
  build-essential pkg-config curl file libssl-dev libwebkit2gtk-4.1-dev librsvg2-dev libxdo-dev
  # tests: a real window under Xvfb (clicked by xdotool, closed through python3-xlib), a real
  # browser, screenshots, the keychain (Secret Service over libdbus)
  xvfb xauth x11-utils imagemagick chromium dbus-x11 gnome-keyring libsecret-tools
  xdotool python3-xlib libdbus-1-dev
  # the report's screenshot shows Japanese and emoji folder names (Chromium has no fallback)
  fonts-ipafont-gothic fonts-noto-color-emoji
  # bundles
  rpm
  # real destination servers used by the tests
  dovecot-imapd radicale
  # the scale-out journal (issue 18): a private PostgreSQL started by the tests
  postgresql
  # the benchmark's destination-leg comparison (make bench, and its smoke in make test) and
  # its throughput plot (SVG to PNG)
  isync librsvg2-bin
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ "$(uname -s)" != Linux ]] || ! command -v apt-get >/dev/null; then
    echo "install-deps: please install: ${missing[*]} (see README, Prerequisites)" >&2
    exit 1
  fi
  SUDO=""
  [[ $EUID -ne 0 ]] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: Rust is missing: install it from https://rustup.rs, then run make again" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
command -v node >/dev/null || { echo "install-deps: Node.js 20+ is missing (apt-get install nodejs npm)" >&2; exit 1; }
