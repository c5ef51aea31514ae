#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for SECONDS each (default 15: the smoke run that
# ci/test.sh does), stopping a target early once it has run RUNS inputs (optional second
# argument). The long run: BENCHMARKS.md "Fuzzing" (10M executions per target). A crash leaves
# its input in fuzz/artifacts/TARGET/ and fails the script; commit it as a regression input
# under fuzz/regressions/TARGET/ (replayed by every run of this script).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
runs_cap="${2:-}"
runs_arg=()
if [ -n "$runs_cap" ]; then runs_arg=(-runs="$runs_cap"); fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked >/dev/null 2>&1
fi
# cargo-fuzz passes -Z flags (sanitizer instrumentation) to rustc; this lets the stable
# toolchain accept them.
export RUSTC_BOOTSTRAP=1
# FUZZ_TARGETS="a b" limits the run to those targets; FUZZ_MAX_LEN (default 65536) bounds the
# size of an input (the long run uses 4096 for the two targets whose cost grows with size).
max_len="${FUZZ_MAX_LEN:-65536}"
# FUZZ_SANITIZER=none drops AddressSanitizer (4-5x the executions per second; the long run's
# choice, the smoke run keeps the default).
san=(--sanitizer "${FUZZ_SANITIZER:-address}")
# Built once with the flags every run below uses (a run with other flags would rebuild).
cargo fuzz build --release --debug-assertions "${san[@]}" 2>&1 | tail -1
for target in ${FUZZ_TARGETS:-$(cargo fuzz list)}; do
  if [ -d "regressions/$target" ]; then
    cargo fuzz run --release --debug-assertions "${san[@]}" "$target" regressions/"$target"/* -- -runs=0 >/dev/null 2>&1 \
      || { echo "fuzz: $target: a regression input fails again"; exit 1; }
  fi
  mkdir -p "corpus/$target"
  # Committed seed inputs (valid messages: `cargo run -p cluster --example fuzz_seeds`), read
  # but never written: new inputs go to corpus/.
  seeds=()
  if [ -d "seeds/$target" ]; then seeds=("seeds/$target"); fi
  start=$SECONDS
  out=$(cargo fuzz run --release --debug-assertions "${san[@]}" "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 "${runs_arg[@]}" 2>&1) || {
    echo "$out" | tail -40
    echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/"
    exit 1
  }
  runs=$(echo "$out" | grep -o 'stat::number_of_executed_units: *[0-9]*' | grep -o '[0-9]*$' || true)
  rate=$(echo "$out" | grep -o 'stat::average_exec_per_sec: *[0-9]*' | grep -o '[0-9]*$' || true)
  cov=$(echo "$out" | grep -o 'cov: [0-9]*' | tail -1 | grep -o '[0-9]*$' || true)
  echo "fuzz: $target: ${runs:-?} executions (${rate:-?}/s, coverage ${cov:-?} edges, corpus $(ls "corpus/$target" | wc -l) inputs) in $((SECONDS - start)) s, no crash"
done
