#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for SECONDS each (default 15: the smoke run that
# ci/test.sh does). A long run: `ci/fuzz.sh 900` (figures in BENCHMARKS.md). A crash leaves
# its input in fuzz/artifacts/TARGET/ and fails the script; commit it as a regression input
# under fuzz/regressions/TARGET/ (replayed by every run of this script).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked >/dev/null 2>&1
fi
# cargo-fuzz passes -Z flags (sanitizer instrumentation) to rustc; this lets the stable
# toolchain accept them.
export RUSTC_BOOTSTRAP=1
cargo fuzz build --release --debug-assertions 2>&1 | tail -1
for target in $(cargo fuzz list); do
  if [ -d "regressions/$target" ]; then
    cargo fuzz run --release --debug-assertions "$target" regressions/"$target"/* -- -runs=0 >/dev/null 2>&1 \
      || { echo "fuzz: $target: a regression input fails again"; exit 1; }
  fi
  mkdir -p "corpus/$target"
  out=$(cargo fuzz run --release --debug-assertions "$target" "corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1) || {
    echo "$out" | tail -40
    echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/"
    exit 1
  }
  runs=$(echo "$out" | grep -o 'stat::number_of_executed_units: *[0-9]*' | grep -o '[0-9]*$' || true)
  echo "fuzz: $target: ${runs:-?} executions in ${secs}s, no crash"
done
