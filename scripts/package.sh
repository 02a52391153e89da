#!/usr/bin/env bash
# Builds the Linux installers (.deb and .rpm) and checks them. AppImage, MSI/NSIS and
# .dmg/.app are configured in tauri.conf.json but need downloads or other platforms.
# In CI (CI=true, as root) it also installs the .deb and starts the installed app under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."

tauri=ui/node_modules/.bin/tauri
[[ -x "$tauri" ]] || { echo "package: run 'cd ui && npm ci' first (make ui-deps)" >&2; exit 1; }
"$tauri" build --bundles deb,rpm --ci

deb=$(ls -t target/release/bundle/deb/*.deb 2>/dev/null | head -1 || true)
rpm=$(ls -t target/release/bundle/rpm/*.rpm 2>/dev/null | head -1 || true)
[[ -n "$deb" ]] || { echo "package: no .deb was produced" >&2; exit 1; }
[[ -n "$rpm" ]] || { echo "package: no .rpm was produced" >&2; exit 1; }
ls -l "$deb" "$rpm"
dpkg-deb --info "$deb" | sed -n '1,20p'
# Lists are captured before searching: `producer | grep -q` fails under pipefail when grep
# exits at the first match and the producer dies of SIGPIPE.
deb_files=$(dpkg-deb --contents "$deb")
grep -q "usr/bin/m365-migrator$" <<<"$deb_files" || { echo "package: the .deb has no /usr/bin/m365-migrator" >&2; exit 1; }
rpm -qip "$rpm" 2>/dev/null | head -n 12 || true
rpm_files=$(rpm -qlp "$rpm" 2>/dev/null)
grep -qx "/usr/bin/m365-migrator" <<<"$rpm_files" || { echo "package: the .rpm has no /usr/bin/m365-migrator" >&2; exit 1; }

if [[ "${CI:-}" == "true" && $EUID -eq 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$deb"
  scripts/smoke-window.sh /usr/bin/m365-migrator
  echo "package: the installed app starts and shows its first screen"
fi
echo "package: built $deb and $rpm"
