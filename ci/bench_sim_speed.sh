#!/usr/bin/env bash
# Simulation speed of the fast engine (BENCHMARKS.md, "Simulation speed"): idle clusters after
# a start where every node joins node-1 at once, 1,000 targets, default protocol timings.
# Prints one line per size: simulated time, wall time, speed, peak RSS.
# Usage: ci/bench_sim_speed.sh [SIZES...]   (default: 5 10 25 50 100 250 500 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sim --locked >/dev/null 2>&1
sim="${CARGO_TARGET_DIR:-target}/release/sim"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(5 10 25 50 100 250 500 1000)
for n in "${sizes[@]}"; do
  # Two minutes below 100 nodes (the start is a negligible part), five above.
  d=120s
  [ "$n" -ge 100 ] && d=5m
  cat >"$dir/speed_$n.toml" <<TOML
name = "speed_$n"
engine = "fast"
seed = 1
duration = "$d"
[cluster]
nodes = $n
join = "node-1"
[targets]
count = 1000
TOML
  /usr/bin/time -f "%M" -o "$dir/rss" "$sim" "$dir/speed_$n.toml" --out "$dir/out_$n" >"$dir/log" 2>&1
  printf '%5d nodes: %s, peak RSS %d MiB\n' "$n" "$(grep -o '[0-9a-z]* simulated in .*real time)' "$dir/log")" $(($(cat "$dir/rss") / 1024))
done
