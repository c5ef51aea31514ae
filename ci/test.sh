#!/usr/bin/env bash
# The one test command (README): installs what the tests need, builds once (release profile,
# one target dir), runs every test, then reruns every scenario against its committed baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_pkgs+=(prometheus-node-exporter)
# The simulator's process engine (sim/tests/process_agreement.rs): network namespaces, a
# bridge and veths (iproute2), partitions and packet loss (nftables).
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]} (Debian packages used by the end-to-end tests)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

echo "== Kubernetes manifests (deploy/): render with kustomize, validate offline"
bash ci/validate_deploy.sh

echo "== cargo test (release profile, whole workspace)"
cargo test --workspace --release --locked 2>&1

echo "== scenario regression gate"
# cargo test above built target/release/sim (the sim crate's integration tests need it).
SIM_PREBUILT=1 bash ci/regress.sh

echo "== fuzz smoke run (cargo-fuzz, 15 s per target; the long run: BENCHMARKS.md \"Fuzzing\")"
bash ci/fuzz.sh 15
