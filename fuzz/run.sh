#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another, and prints a
# line per target: runs, corpus size, crashes. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Crashes land in fuzz/artifacts/<target>/; turn each
# into a regression test (tests/fuzz_regressions.rs) before fixing it.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
targets=${TARGETS:-manifests templates requests explain}
status=0
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "artifacts/$t" -type f | wc -l)
  printf '%-10s %5ss  runs %-10s corpus %-6s crashes %s (exit %s)\n' \
    "$t" "$secs" "${runs:-?}" "$(ls "corpus/$t" | wc -l)" "$crashes" "$rc"
  if [ "$rc" -ne 0 ]; then
    status=1
    tail -30 "$log"
  fi
  rm -f "$log"
done
exit $status
