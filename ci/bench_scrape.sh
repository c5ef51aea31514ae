#!/usr/bin/env bash
# Scrape pipeline vs Prometheus agent mode (BENCHMARKS.md "Scrape pipeline vs Prometheus agent
# mode"). Needs Prometheus from the OS packages (installed if missing, as root or with sudo).
# Environment: BENCH_RUNS (default text:100,text:400,openmetrics:100,gzip:100: target format
# and count per run), BENCH_TARGETS (text runs only), BENCH_WARMUP_S (30), BENCH_WINDOW_S (60),
# BENCH_SCRAPERS (agent,prometheus), BENCH_TLS (1: HTTPS targets, TLS + basic-auth receiver,
# a metric relabel rule in both). Takes about 3 minutes per run (12 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/need_prometheus.sh
exec cargo test --release -p agent --test bench_scrape -- --ignored --nocapture
