#!/usr/bin/env bash
# Builds the Linux installers and checks them:
#  - the desktop app's .deb and .rpm (Tauri). AppImage, MSI/NSIS and .dmg/.app are configured
#    in tauri.conf.json but need downloads or other platforms;
#  - the headless CLI `m365-migrate` (issue 21): one portable x86_64 binary against glibc 2.17
#    (cargo-zigbuild), as a .tar.gz and as a .deb and .rpm that need nothing graphical, with
#    shell completions, man pages, an example configuration and systemd units.
# In CI (CI=true, as root) it also installs the .debs: the app is started under Xvfb, the CLI
# runs `--version` and `demo` and is removed again.
# `scripts/package.sh cli` builds and checks the CLI's packages only.
set -euo pipefail
cd "$(dirname "$0")/.."

package_app() {
  local tauri=ui/node_modules/.bin/tauri
  [[ -x "$tauri" ]] || { echo "package: run 'cd ui && npm ci' first (make ui-deps)" >&2; exit 1; }
  "$tauri" build --bundles deb,rpm --ci

  local deb rpm
  deb=$(ls -t target/release/bundle/deb/*.deb 2>/dev/null | head -1 || true)
  rpm=$(ls -t target/release/bundle/rpm/*.rpm 2>/dev/null | head -1 || true)
  [[ -n "$deb" ]] || { echo "package: no .deb was produced" >&2; exit 1; }
  [[ -n "$rpm" ]] || { echo "package: no .rpm was produced" >&2; exit 1; }
  ls -l "$deb" "$rpm"
  dpkg-deb --info "$deb" | sed -n '1,20p'
  # Lists are captured before searching: `producer | grep -q` fails under pipefail when grep
  # exits at the first match and the producer dies of SIGPIPE.
  local deb_files rpm_files
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
}

# ---------------------------------------------------------------------------------------------
# The CLI

CLI_TARGET=x86_64-unknown-linux-gnu
# The glibc the portable binary may need at most: RHEL/CentOS 7's; RHEL 8 has 2.28.
GLIBC_BASELINE=2.17
CLI_OUT=target/release/bundle/cli
# Packages no headless server should be asked to install: toolkits, X11/Wayland, WebKit.
GUI_PACKAGES='gtk|webkit|wayland|libx11|libxcb|libxext|x11-common|xorg|gdk|cairo|pango|atk|libgl1|mesa|libdrm|gnome|qt[0-9]'

die() { echo "package: $*" >&2; exit 1; }

# cargo-zigbuild and Zig, from PyPI, once. Where pip may not install into the system Python
# (PEP 668), into a virtual environment under target/.
ensure_zigbuild() {
  local venv=target/tools/zigbuild installed
  # The host's own target on x86_64 Linux, so normally there already.
  if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    grep -qx "$CLI_TARGET" <<<"$installed" || rustup target add "$CLI_TARGET"
  fi
  [[ -x "$venv/bin/cargo-zigbuild" ]] && export PATH="$PWD/$venv/bin:$PATH"
  if command -v cargo-zigbuild >/dev/null && { command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1; }; then
    return
  fi
  echo "package: installing cargo-zigbuild and ziglang from PyPI"
  if ! python3 -m pip install -q cargo-zigbuild ziglang; then
    python3 -m venv "$venv" || die "cannot create a Python venv: apt-get install python3-venv"
    "$venv/bin/pip" install -q cargo-zigbuild ziglang
    export PATH="$PWD/$venv/bin:$PATH"
  fi
  # pip puts its scripts in the interpreter's scripts folder, which a pyenv shim only finds
  # after a rehash: put the folder itself on PATH.
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
  hash -r
  command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is not on PATH after pip install"
}

# Debian package names of the shared libraries the binary links; an unknown one is an error,
# so a new dependency (a graphical one above all) is a decision, not an accident.
deb_depends() {
  local needed lib deps=()
  needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  for lib in $needed; do
    case "$lib" in
      libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-x86-64.so.2) deps+=("libc6 (>= $GLIBC_BASELINE)") ;;
      libgcc_s.so.1) deps+=("libgcc-s1 | libgcc1") ;;
      libdbus-1.so.3) deps+=("libdbus-1-3") ;;
      *) die "the CLI links $lib, which has no Debian package in deb_depends" ;;
    esac
  done
  printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

# Lays out the installed files under $1; $2 is where zsh finds completions on that system.
stage_cli() {
  local root=$1 zsh_dir=$2 gen=$3 pkg=src-tauri/cli/packaging
  install -D -m 0755 "$CLI_BIN" "$root/usr/bin/m365-migrate"
  install -d -m 0755 "$root/usr/share/man/man1"
  for page in "$gen"/man/man1/*.1; do
    gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
  done
  install -D -m 0644 "$gen/completions/m365-migrate.bash" "$root/usr/share/bash-completion/completions/m365-migrate"
  install -D -m 0644 "$gen/completions/_m365-migrate" "$root$zsh_dir/_m365-migrate"
  install -D -m 0644 "$gen/completions/m365-migrate.fish" "$root/usr/share/fish/vendor_completions.d/m365-migrate.fish"
  install -D -m 0644 -t "$root/usr/lib/systemd/system" "$pkg/m365-migrate.service" "$pkg/m365-migrate.timer" "$pkg/m365-migrate-worker@.service" "$pkg/m365-migrate@.service" "$pkg/m365-migrate@.timer"
  install -D -m 0644 -t "$root/usr/share/doc/m365-migrate" "$pkg/README" "$pkg/migrate.toml.example" LICENSE
  install -d -m 0700 "$root/etc/m365-migrate"
  install -m 0600 "$pkg/secrets.env" "$root/etc/m365-migrate/secrets.env"
}

package_cli() {
  ensure_zigbuild
  local version started seconds
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' src-tauri/cli/Cargo.toml | head -1)
  started=$(date +%s)
  cargo zigbuild --release --locked -p migrator-cli --bin m365-migrate --target "$CLI_TARGET.$GLIBC_BASELINE"
  seconds=$(($(date +%s) - started))
  echo "package: the portable CLI built in ${seconds}s"
  CLI_BIN=target/$CLI_TARGET/release/m365-migrate

  # 1. No glibc symbol newer than the baseline.
  local symbols newest
  symbols=$(objdump -T "$CLI_BIN")
  newest=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$symbols" | sed 's/GLIBC_//' | sort -uV | tail -1)
  [[ -n "$newest" ]] || die "objdump -T found no GLIBC symbol versions in $CLI_BIN"
  [[ "$(printf '%s\n%s\n' "$newest" "$GLIBC_BASELINE" | sort -V | tail -1)" == "$GLIBC_BASELINE" ]] \
    || die "$CLI_BIN needs GLIBC_$newest, newer than the baseline $GLIBC_BASELINE"
  echo "package: the CLI needs glibc $newest at most (baseline $GLIBC_BASELINE)"

  rm -rf "$CLI_OUT" && mkdir -p "$CLI_OUT"
  local work
  work=$(mktemp -d)
  CLI_WORK=$work
  trap 'rm -rf "$CLI_WORK"' EXIT

  # Completions and man pages, generated by the binary from its own clap definition.
  local gen=$work/gen shell
  mkdir -p "$gen/completions"
  for shell in bash zsh fish; do
    "$CLI_BIN" completions "$shell" >"$work/completion"
    case "$shell" in
      bash) mv "$work/completion" "$gen/completions/m365-migrate.bash" ;;
      zsh) mv "$work/completion" "$gen/completions/_m365-migrate" ;;
      fish) mv "$work/completion" "$gen/completions/m365-migrate.fish" ;;
    esac
  done
  "$CLI_BIN" man --out "$gen/man/man1"

  # 2. The tarball: binary, licence, README, completions, man pages, units, example files.
  local name=m365-migrate-$version-x86_64-linux pkg=src-tauri/cli/packaging
  local tree=$work/$name
  install -D -m 0755 "$CLI_BIN" "$tree/m365-migrate"
  install -m 0644 LICENSE "$pkg/README" "$pkg/migrate.toml.example" "$tree/"
  install -m 0600 "$pkg/secrets.env" "$tree/secrets.env"
  cp -r "$gen/completions" "$gen/man" "$tree/"
  install -D -m 0644 -t "$tree/systemd" "$pkg/m365-migrate.service" "$pkg/m365-migrate.timer" "$pkg/m365-migrate-worker@.service" "$pkg/m365-migrate@.service" "$pkg/m365-migrate@.timer"
  local tarball=$CLI_OUT/$name.tar.gz
  tar -C "$work" --owner=0 --group=0 -czf "$tarball" "$name"

  # The binary from the tarball runs the demo: every simulated message lands once.
  local unpacked=$work/unpacked users=2 messages=10 written
  mkdir -p "$unpacked" && tar -C "$unpacked" -xzf "$tarball"
  "$unpacked/$name/m365-migrate" --quiet demo --out "$unpacked/demo" --users $users --messages $messages \
    || die "the portable binary's demo failed"
  written=$(find "$unpacked/demo" -path '*/cur/*' -type f | wc -l)
  [[ "$written" -eq $((users * messages)) ]] || die "the portable demo wrote $written messages, not $((users * messages))"
  echo "package: the portable binary from $tarball ran the demo ($written messages)"

  # 3. The .deb, from a staged tree.
  local deb_root=$work/deb depends
  stage_cli "$deb_root" /usr/share/zsh/vendor-completions "$gen"
  depends=$(deb_depends "$CLI_BIN")
  grep -Eiq "$GUI_PACKAGES" <<<"$depends" && die "the CLI .deb would depend on a graphical package: $depends"
  mkdir -p "$deb_root/DEBIAN"
  cat >"$deb_root/DEBIAN/control" <<EOF
Package: m365-migrate
Version: $version
Architecture: amd64
Maintainer: M365 Migrator <noreply@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
Depends: $depends
Section: mail
Priority: optional
Description: migrate a Microsoft 365 tenant to IceWarp or any IMAP/DAV server (CLI)
 m365-migrate, the headless command line of M365 Migrator: mail, calendars, contacts and
 tasks from Microsoft Graph to IceWarp, any IMAP + CalDAV/CardDAV server, or a local folder.
 Includes systemd units (the timer for incremental passes is disabled by default).
EOF
  echo /etc/m365-migrate/secrets.env >"$deb_root/DEBIAN/conffiles"
  # systemd reads the new units; nothing is enabled or started.
  printf '#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n' >"$deb_root/DEBIAN/postinst"
  cp "$deb_root/DEBIAN/postinst" "$deb_root/DEBIAN/postrm"
  chmod 0755 "$deb_root/DEBIAN/postinst" "$deb_root/DEBIAN/postrm"
  local deb=$CLI_OUT/m365-migrate_${version}_amd64.deb
  dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$deb" >/dev/null
  local deb_files
  deb_files=$(dpkg-deb --contents "$deb")
  for f in usr/bin/m365-migrate usr/share/man/man1/m365-migrate.1.gz usr/share/man/man1/m365-migrate-run.1.gz \
    usr/share/bash-completion/completions/m365-migrate usr/share/zsh/vendor-completions/_m365-migrate \
    usr/share/fish/vendor_completions.d/m365-migrate.fish usr/lib/systemd/system/m365-migrate.service \
    usr/lib/systemd/system/m365-migrate.timer usr/lib/systemd/system/m365-migrate@.service \
    usr/lib/systemd/system/m365-migrate@.timer usr/share/doc/m365-migrate/migrate.toml.example; do
    grep -q " \./$f\$" <<<"$deb_files" || die "the CLI .deb has no /$f"
  done
  grep -q '^-rw------- root/root .* \./etc/m365-migrate/secrets\.env$' <<<"$deb_files" \
    || die "the CLI .deb's secrets.env is not root-only (0600)"

  # 4. The .rpm, from the same layout (rpm computes the library requirements itself).
  local rpm_root=$work/rpm top=$work/rpmbuild
  stage_cli "$rpm_root" /usr/share/zsh/site-functions "$gen"
  mkdir -p "$top/SPECS"
  cat >"$top/SPECS/m365-migrate.spec" <<EOF
%global debug_package %{nil}
%define _build_id_links none
# The staged files are final (stripped binary, gzipped man pages): no brp-* post-processing.
%global __os_install_post %{nil}
Name: m365-migrate
Version: $version
Release: 1
Summary: Migrate a Microsoft 365 tenant to IceWarp or any IMAP/DAV server (CLI)
License: Apache-2.0
BuildArch: x86_64

%description
m365-migrate, the headless command line of M365 Migrator: mail, calendars, contacts and tasks
from Microsoft Graph to IceWarp, any IMAP + CalDAV/CardDAV server, or a local folder. Includes
systemd units (the timer for incremental passes is disabled by default).

%install
cp -a $rpm_root/. %{buildroot}/

%post
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi

%postun
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi

%files
%attr(0755,root,root) /usr/bin/m365-migrate
/usr/share/man/man1/*.1.gz
/usr/share/bash-completion/completions/m365-migrate
/usr/share/zsh/site-functions/_m365-migrate
/usr/share/fish/vendor_completions.d/m365-migrate.fish
/usr/lib/systemd/system/m365-migrate.service
/usr/lib/systemd/system/m365-migrate.timer
/usr/lib/systemd/system/m365-migrate-worker@.service
/usr/lib/systemd/system/m365-migrate@.service
/usr/lib/systemd/system/m365-migrate@.timer
%doc /usr/share/doc/m365-migrate
%dir %attr(0700,root,root) /etc/m365-migrate
%config(noreplace) %attr(0600,root,root) /etc/m365-migrate/secrets.env
EOF
  rpmbuild -bb --quiet --define "_topdir $top" --define "_rpmdir $PWD/$CLI_OUT" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    "$top/SPECS/m365-migrate.spec" >/dev/null
  local rpm=$CLI_OUT/m365-migrate-$version-1.x86_64.rpm requires
  [[ -f "$rpm" ]] || die "no CLI .rpm was produced"
  requires=$(rpm -qpR "$rpm" 2>/dev/null)
  grep -Eiq "$GUI_PACKAGES" <<<"$requires" && die "the CLI .rpm would require a graphical library: $requires"
  grep -qx "/usr/bin/m365-migrate" <<<"$(rpm -qlp "$rpm" 2>/dev/null)" || die "the CLI .rpm has no /usr/bin/m365-migrate"

  # The units as systemd reads them, ExecStart pointing at the staged binary (no man pages
  # installed yet: --man=no). Warnings (an unknown key, say) fail too.
  if command -v systemd-analyze >/dev/null; then
    local units=$work/units
    mkdir -p "$units"
    sed "s#/usr/bin/m365-migrate#$deb_root/usr/bin/m365-migrate#" "$pkg/m365-migrate.service" >"$units/m365-migrate.service"
    cp "$pkg/m365-migrate.timer" "$units/"
    # A template is verified as one of its instances.
    sed "s#/usr/bin/m365-migrate#$deb_root/usr/bin/m365-migrate#" "$pkg/m365-migrate-worker@.service" >"$units/m365-migrate-worker@1.service"
    sed "s#/usr/bin/m365-migrate#$deb_root/usr/bin/m365-migrate#" "$pkg/m365-migrate@.service" >"$units/m365-migrate@contoso.service"
    cp "$pkg/m365-migrate@.timer" "$units/m365-migrate@contoso.timer"
    verify_units --man=no "$units/m365-migrate.service" "$units/m365-migrate.timer" "$units/m365-migrate-worker@1.service" \
      "$units/m365-migrate@contoso.service" "$units/m365-migrate@contoso.timer"
  fi

  # 5. What installing the .deb would pull in, dependencies of dependencies included.
  if command -v apt-cache >/dev/null; then
    local names closure
    names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/(.*)//; s/ //g' | grep -v '^$')
    # shellcheck disable=SC2086 # one package name per word
    closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances $names 2>/dev/null | grep -v '^ ' | sort -u || true)
    [[ -n "$closure" ]] || die "apt-cache knows none of $names: run apt-get update"
    grep -Eiq "$GUI_PACKAGES" <<<"$closure" \
      && die "installing the CLI .deb would pull in: $(grep -Ei "$GUI_PACKAGES" <<<"$closure" | paste -sd' ')"
    echo "package: the CLI .deb needs $(wc -l <<<"$closure") packages in all, none graphical"
  fi

  if [[ "${CI:-}" == "true" && $EUID -eq 0 ]]; then
    install_cli_deb "$deb" "$unpacked/installed-demo"
  fi
  ls -l "$tarball" "$deb" "$rpm"
  echo "package: built $tarball, $deb and $rpm"
}

# Installs the CLI .deb as CI does, runs the installed binary, verifies the units, and removes
# the package again so the machine is left as it was.
install_cli_deb() {
  local deb=$1 demo=$2 was_installed=false
  dpkg-query -W -f='${Status}' m365-migrate 2>/dev/null | grep -q "install ok installed" && was_installed=true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$deb"
  /usr/bin/m365-migrate --version
  /usr/bin/m365-migrate --quiet demo --out "$demo" --users 2 --messages 10 || die "the installed CLI's demo failed"
  [[ "$(stat -c %a /etc/m365-migrate/secrets.env)" == 600 ]] || die "the installed secrets.env is not 0600"
  if command -v systemd-analyze >/dev/null; then
    local man=--man=yes
    command -v man >/dev/null || man=--man=no
    verify_units "$man" /usr/lib/systemd/system/m365-migrate.service /usr/lib/systemd/system/m365-migrate.timer
  fi
  [[ $was_installed == true ]] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -q m365-migrate
  echo "package: the installed CLI ran --version and demo"
}

# `systemd-analyze verify`, failing on any complaint: it exits 0 on an unknown key.
verify_units() {
  local said
  said=$(systemd-analyze verify "$@" 2>&1) || die "systemd-analyze verify rejects the CLI's units: $said"
  [[ -z "$said" ]] || die "systemd-analyze verify complains about the CLI's units: $said"
  echo "package: systemd-analyze verify accepts the CLI's units"
}

case "${1:-all}" in
  all) package_app; package_cli ;;
  cli) package_cli ;;
  *) die "usage: scripts/package.sh [cli]" ;;
esac
