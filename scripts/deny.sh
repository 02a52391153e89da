#!/usr/bin/env bash
# Supply-chain checks with cargo-deny against deny.toml, for the main workspace (the desktop
# app, core, CLI, simulator) and the fuzz workspace. Installs the pinned cargo-deny when it is
# missing or another version.
#   scripts/deny.sh policy      licences, bans, sources: offline, part of `make test`
#   scripts/deny.sh advisories  the RustSec advisory database (GitHub), `make audit`
#     ADVISORY_DB=<path>        use a local clone of github.com/rustsec/advisory-db instead
#                               of fetching it (offline)
set -euo pipefail
cd "$(dirname "$0")/.."

# 0.20.2 needs Rust 1.88 (`cargo info cargo-deny@0.20.2`). Installing it compiles ~300 crates:
# about 9.5 minutes on 2 shared CPUs, once; a rerun finds the binary and skips it.
CARGO_DENY_VERSION=0.20.2
CARGO=${CARGO:-cargo}

if [[ "$("$CARGO" deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  echo "deny: installing cargo-deny $CARGO_DENY_VERSION (once, several minutes)"
  "$CARGO" install --locked "cargo-deny@$CARGO_DENY_VERSION"
fi

fail() {
  echo "deny: $1" >&2
  exit 1
}

# The fuzz workspace keeps no lock file (fuzz/.gitignore): seeding it from the main one makes
# the check see the versions the product ships; cargo adds libfuzzer-sys from crates.io.
fuzz_lock() {
  [[ -f fuzz/Cargo.lock ]] || cp Cargo.lock fuzz/Cargo.lock
  "$CARGO" fetch -q --manifest-path fuzz/Cargo.toml
}

case "${1:-}" in
  policy)
    # Both workspaces' crates must be on disk for an offline check (cargo fetch, crates.io).
    "$CARGO" fetch -q --locked
    fuzz_lock
    # --workspace: the root manifest is also a package, and without it only the desktop app's
    # graph would be checked, not the CLI's and simulator's.
    "$CARGO" deny --offline --locked --workspace check --hide-inclusion-graph \
      licenses bans sources ||
      fail "a dependency breaks deny.toml (licence not allowed, banned crate or source not crates.io): see the errors above; allow a licence only if it does not bind the Apache-2.0 bundle, with its reason in deny.toml"
    # The fuzz workspace shares deny.toml; exceptions only the main graph uses are not news.
    "$CARGO" deny --offline --manifest-path fuzz/Cargo.toml check --hide-inclusion-graph \
      -A license-exception-not-encountered -A license-not-encountered \
      licenses bans sources ||
      fail "a dependency of the fuzz workspace breaks deny.toml: see the errors above"
    ;;
  advisories)
    fuzz_lock
    offline=()
    config=deny.toml
    if [[ -n "${ADVISORY_DB:-}" ]]; then
      [[ -d "$ADVISORY_DB/crates" ]] || fail "ADVISORY_DB=$ADVISORY_DB is not a clone of rustsec/advisory-db (no crates/ folder)"
      # cargo-deny reads the database from <db-path>/advisory-db-<hash of its URL>; this is the
      # folder name cargo-deny 0.20 uses for the default URL (github.com/rustsec/advisory-db).
      dbs=$(mktemp -d)
      trap 'rm -rf "$dbs"' EXIT
      ln -s "$(cd "$ADVISORY_DB" && pwd)" "$dbs/advisory-db-3157b0e258782691"
      config="$dbs/deny.toml"
      sed "s|^\[advisories\]$|[advisories]\ndb-path = \"$dbs\"|" deny.toml >"$config"
      offline=(--offline)
      echo "deny: advisory database $(git -C "$ADVISORY_DB" log -1 --format='%H of %cs' 2>/dev/null || echo "$ADVISORY_DB")"
    fi
    status=0
    "$CARGO" deny "${offline[@]}" --config "$config" --locked --workspace check \
      --hide-inclusion-graph advisories || status=1
    "$CARGO" deny "${offline[@]}" --config "$config" --manifest-path fuzz/Cargo.toml check \
      --hide-inclusion-graph -A advisory-not-detected advisories || status=1
    ((status == 0)) || fail "a dependency has an advisory: upgrade it (cargo update -p <crate>) or, if no fix exists, add an ignore entry with its reason to deny.toml"
    ;;
  *)
    fail "usage: scripts/deny.sh policy|advisories"
    ;;
esac
