#!/usr/bin/env bash
# A remote-write outage, the agent vs Prometheus agent mode (BENCHMARKS.md "Remote-write
# outage and crash vs Prometheus agent mode"): loss, catch-up and peak RSS with the receiver
# down, and with a kill -9 + restart of the scraper during the outage. Needs Prometheus from
# the OS packages (installed if missing). Environment: BENCH_TARGETS (100), BENCH_OUTAGE_S
# (60), BENCH_WARMUP_S (20). Takes about 4 x (warm-up + outage + catch-up) ~ 6 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/need_prometheus.sh
exec cargo test --release -p agent --test bench_outage -- --ignored --nocapture
