#!/usr/bin/env bash
# make bench: builds m365-bench in release and runs every scenario of issue 9 (and the tenant
# scenarios of issue 17), then writes
# the generated section of BENCHMARKS.md, benchmarks/results.json and the throughput plot
# (benchmarks/throughput.svg, and .png when ImageMagick is there). Extra arguments go to
# m365-bench, e.g. `scripts/bench.sh --scenario small,destleg`, or `scripts/bench.sh --reduced`
# (smaller scenarios, said so in the results) when the full sizes do not fit the time.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v mbsync >/dev/null || { echo "bench: mbsync is missing: apt-get install isync (scripts/install-deps.sh installs it)" >&2; exit 1; }
[[ -x /usr/sbin/dovecot ]] || command -v dovecot >/dev/null || { echo "bench: dovecot is missing: apt-get install dovecot-imapd" >&2; exit 1; }

started=$(date +%s)
cargo build --release -p migrator-cli --bin m365-bench
target_dir=${CARGO_TARGET_DIR:-target}

status=0
"$target_dir/release/m365-bench" --out benchmarks --markdown BENCHMARKS.md "$@" || status=$?
# The tenant scenarios (issue 17.5) on their own: their numbers go to benchmarks/tenant/
# (tenant.json, tenant-startup.json) and into BENCHMARKS.md's tenant section by hand, not the
# generated section (`tenant` into the local folder and into Dovecot). Each run waits until
# 361 s after the previous one's files were deleted (on a
# journal-less ext4 they would slow its file creation: m365-bench's tenant::REUSE_WINDOW).
if [[ $# -eq 0 ]]; then
  "$target_dir/release/m365-bench" --out benchmarks/tenant --scenario tenant,tenant-memory,tenant-startup || status=$?
fi

if [[ -f benchmarks/throughput.svg ]]; then
  # librsvg (apt-get install librsvg2-bin) first: ImageMagick needs an SVG delegate it often lacks.
  if command -v rsvg-convert >/dev/null && rsvg-convert -b white -o benchmarks/throughput.png benchmarks/throughput.svg; then
    echo "bench: plot in benchmarks/throughput.png"
  elif command -v convert >/dev/null && convert -density 96 benchmarks/throughput.svg benchmarks/throughput.png 2>/dev/null; then
    echo "bench: plot in benchmarks/throughput.png"
  else
    echo "bench: could not render the plot (apt-get install librsvg2-bin); it is in benchmarks/throughput.svg" >&2
  fi
fi
echo "bench: finished in $(( $(date +%s) - started )) s (build included), exit $status"
exit $status
