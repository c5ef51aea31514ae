#!/usr/bin/env bash
# The long WAL outage test (not in CI): a real Prometheus receiver down for WAL_OUTAGE_SECS
# (default 600) while the agent scrapes; every scraped sample must arrive afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export WAL_OUTAGE_SECS="${WAL_OUTAGE_SECS:-600}"
exec cargo test --release -p agent --test e2e_wal -- --ignored --nocapture a_long_receiver_outage_loses_nothing
