#!/usr/bin/env bash
# Scenario regression gate (issue 3): reruns every scenario in scenarios/ with its own seed and
# engine and compares the reports with the committed baselines in reports/<name>/report.json.
# Fails (exit 1) when a scenario that passed now fails, when any convergence time is later than
# its baseline by more than max(2 s, 25%), or when any moved_fraction / ideal_fraction is above
# its baseline by more than 0.05; prints the table either way.
# After an intended change: `target/release/sim regress --update`, review, commit reports/.
set -euo pipefail
cd "$(dirname "$0")/.."

sim="${CARGO_TARGET_DIR:-target}/release/sim"
if [ -z "${SIM_PREBUILT:-}" ] || [ ! -x "$sim" ]; then
  echo "== build sim (release)"
  cargo build --release -p sim --locked 2>&1
fi

echo "== sim regress"
"$sim" regress --baseline reports --scenarios scenarios \
  --ratio-tolerance 0.05 --converge-tolerance 2s --converge-tolerance-percent 25
