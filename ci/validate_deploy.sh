#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests in deploy/ (no cluster, no network once the
# tools are installed):
#   1. `kubectl kustomize deploy/` renders them;
#   2. kubernetes-validate checks every rendered object against the Kubernetes JSON schemas it
#      bundles, strictly (unknown fields are errors), for the oldest and the newest Kubernetes
#      version we claim; an object whose kind/apiVersion has no schema is an error too;
#   3. cross-references the schemas cannot see: selectors against pod labels, the Service,
#      ServiceAccount, ConfigMap, ClusterRole and HPA target named where they are used, probe
#      ports and paths, the agent's flags (each must exist in agent/src/cli.rs) and the
#      shutdown bound in the code against terminationGracePeriodSeconds;
#   4. a self-check: a copy of the rendered output with one misspelt field must be rejected.
# Usage: ci/validate_deploy.sh [KUSTOMIZE_DIR]   (default deploy/; any copy of it works)
# Exits non-zero on any failure and says what failed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
dir=${1:-deploy}
[ -f "$dir/kustomization.yaml" ] || { echo "FAIL: no kustomization.yaml in $dir" >&2; exit 1; }

# Kubernetes versions to validate against: the oldest supported (StatefulSet
# persistentVolumeClaimRetentionPolicy is on by default from 1.27) and the newest schema set
# kubernetes-validate bundles.
K8S_MIN=${K8S_MIN:-1.27}
KV_VERSION=1.37.0

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

# kubectl with a kustomize that takes directories in `resources` and `labels` (kubectl >= 1.21;
# Debian bookworm's kubernetes-client is 1.20, too old, so the Kubernetes package is tried first).
kubectl_ok() {
  command -v kubectl >/dev/null 2>&1 || return 1
  local minor
  minor=$(kubectl version --client -o json 2>/dev/null |
    python3 -c 'import json,sys,re; print(re.sub(r"\D.*","",json.load(sys.stdin)["clientVersion"]["minor"]))' 2>/dev/null) || return 1
  [ -n "$minor" ] && [ "$minor" -ge 21 ]
}
if ! kubectl_ok; then
  echo "== installing kubectl (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubectl >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
  if ! kubectl_ok; then
    echo "FAIL: need kubectl >= 1.21 (kustomize v4+) to render $dir; found: $(kubectl version --client 2>&1 | head -1)" >&2
    echo "      install kubectl from the Kubernetes apt repository (pkgs.k8s.io) or Google Cloud's" >&2
    exit 1
  fi
fi

# kubernetes-validate, with its bundled schemas (no network at validation time).
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  echo "== installing kubernetes-validate==$KV_VERSION (pip)"
  python3 -m pip install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION" >/dev/null
fi
k8s_max=$(python3 -c 'import kubernetes_validate.utils as u; print(".".join(u.latest_version().split(".")[:2]))')
echo "== tools: $(kubectl version --client 2>/dev/null | tr '\n' ' ')| kubernetes-validate $(python3 -m kubernetes_validate --version)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

echo "== kubectl kustomize $dir"
if ! kubectl kustomize "$dir" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"; then
  echo "FAIL: kubectl kustomize $dir:" >&2
  cat "$tmp/kustomize.err" >&2
  exit 1
fi
if [ -s "$tmp/kustomize.err" ]; then
  # kustomize prints deprecations and similar warnings here; none is acceptable.
  echo "FAIL: kubectl kustomize $dir printed warnings:" >&2
  cat "$tmp/kustomize.err" >&2
  fail=1
fi
docs=$(python3 -c 'import sys,yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$tmp/rendered.yaml")
echo "   $docs objects"

# Runs kubernetes-validate --strict on FILE for both versions; prints the problems; returns 0
# only if every object passed against both (a missing schema, e.g. a misspelt kind or
# apiVersion, is only a warning in kubernetes-validate and an error here).
schema_check() {
  local file=$1 n=$2 out rc=0
  out=$(python3 -m kubernetes_validate --strict -k "$K8S_MIN" -k "$k8s_max" "$file" 2>&1) || rc=$?
  local passed
  passed=$(grep -c '^INFO .* passed for resource' <<<"$out" || true)
  grep -v '^INFO ' <<<"$out" || true
  [ "$rc" = 0 ] && [ "$passed" = $((2 * n)) ]
}

echo "== kubernetes-validate --strict, Kubernetes $K8S_MIN and $k8s_max"
if schema_check "$tmp/rendered.yaml" "$docs"; then
  echo "   $docs objects x 2 versions passed"
else
  echo "FAIL: schema validation (above)" >&2
  fail=1
fi

echo "== cross-references"
if ! python3 - "$tmp/rendered.yaml" "$repo" <<'PY'; then
import os, re, sys, yaml

rendered, repo = sys.argv[1], sys.argv[2]
objs = [d for d in yaml.safe_load_all(open(rendered)) if d]
errors = []
def err(msg): errors.append(msg)

def find(kind, name=None, namespace=None):
    out = [o for o in objs if o.get("kind") == kind
           and (name is None or o["metadata"]["name"] == name)
           and (namespace is None or o["metadata"].get("namespace") == namespace)]
    return out

def matches(selector, labels, what):
    sel = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    if not sel:
        err(f"{what}: empty selector")
    for k, v in sel.items():
        if labels.get(k) != v:
            err(f"{what}: selector {k}={v} does not match the pod labels {labels}")

def read(path):
    with open(os.path.join(repo, path)) as f:
        return f.read()

for kind in ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
             "Service", "StatefulSet", "PodDisruptionBudget", "HorizontalPodAutoscaler"]:
    if not find(kind):
        err(f"no {kind} rendered")

# What the agent really has: flags (clap `long = "..."`) and HTTP paths (the router).
cli = read("agent/src/cli.rs")
flags = set(re.findall(r'long\s*=\s*"([^"]+)"', cli))
http_src = read("agent/src/http.rs")
paths = set(re.findall(r'"(/[^"\s]*)"\s*(?:=>|\|)', http_src)) | set(re.findall(r'path == "(/[^"]+)"', http_src))

for sts in find("StatefulSet"):
    name, ns = sts["metadata"]["name"], sts["metadata"].get("namespace")
    where = f"StatefulSet {name}"
    spec = sts["spec"]
    pod = spec["template"]
    labels = pod["metadata"].get("labels", {})
    matches(spec["selector"], labels, f"{where} .spec.selector")
    if spec.get("podManagementPolicy") != "Parallel":
        err(f"{where}: podManagementPolicy is not Parallel")
    if "replicas" in spec:
        err(f"{where}: sets replicas; the HorizontalPodAutoscaler owns the count")
    svcs = find("Service", spec.get("serviceName"), ns)
    if not svcs:
        err(f"{where}: serviceName {spec.get('serviceName')!r} is no Service in {ns}")
    for svc in svcs:
        if svc["spec"].get("clusterIP") != "None":
            err(f"Service {svc['metadata']['name']}: not headless (clusterIP: None)")
        if svc["spec"].get("publishNotReadyAddresses") is not True:
            err(f"Service {svc['metadata']['name']}: publishNotReadyAddresses is not true")
        matches(svc["spec"].get("selector", {}), labels, f"Service {svc['metadata']['name']} selector")
    ps = pod["spec"]
    sa = ps.get("serviceAccountName")
    if not find("ServiceAccount", sa, ns):
        err(f"{where}: serviceAccountName {sa!r} is no ServiceAccount in {ns}")
    for tsc in ps.get("topologySpreadConstraints", []):
        matches(tsc.get("labelSelector", {}), labels, f"{where} topologySpreadConstraints")
    volumes = {v["name"]: v for v in ps.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    for v in volumes.values():
        if "configMap" in v and not find("ConfigMap", v["configMap"]["name"], ns):
            err(f"{where}: volume {v['name']} names ConfigMap {v['configMap']['name']!r}, not rendered")
    for c in ps["containers"]:
        cw = f"{where} container {c['name']}"
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
        mounts = {m["mountPath"].rstrip("/"): m["name"] for m in c.get("volumeMounts", [])}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes and m["name"] not in claims:
                err(f"{cw}: volumeMount {m['name']} has no volume or claim template")
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
            p = c.get(probe)
            if not p:
                if probe != "startupProbe":
                    err(f"{cw}: no {probe}")
                continue
            g = p.get("httpGet", {})
            if isinstance(g.get("port"), str) and g["port"] not in ports:
                err(f"{cw} {probe}: port {g['port']!r} is not a named container port")
            if g.get("path") not in paths:
                err(f"{cw} {probe}: path {g.get('path')!r} is not served by agent/src/http.rs {sorted(paths)}")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/-/ready":
            err(f"{cw}: readinessProbe is not /-/ready")
        env = {e["name"] for e in c.get("env", [])}
        args = c.get("args", [])
        if not args or args[0] != "run":
            err(f"{cw}: args must start with the subcommand run")
        values = {}
        positional = []
        for a in args[1:]:
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                if var not in env:
                    err(f"{cw}: {a} uses $({var}), which is not in env")
            if a.startswith("--"):
                flag, _, value = a[2:].partition("=")
                if flag not in flags:
                    err(f"{cw}: flag --{flag} does not exist in agent/src/cli.rs")
                values[flag] = value
            else:
                positional.append(a)
        for need in ["cluster.enabled", "cluster.join-addresses", "server.http.listen-addr", "storage.path"]:
            if need not in values:
                err(f"{cw}: --{need} is not set")
        join = values.get("cluster.join-addresses", "").split(",")[0]
        join_host = re.sub(r":\d+$", "", join)
        if join_host.split(".")[0] != spec.get("serviceName"):
            err(f"{cw}: --cluster.join-addresses={join} is not the headless Service {spec.get('serviceName')!r}")
        listen_port = values.get("server.http.listen-addr", "").rpartition(":")[2]
        if not listen_port.isdigit() or int(listen_port) not in ports.values():
            err(f"{cw}: listen port {listen_port!r} is not a container port {ports}")
        storage = values.get("storage.path", "").rstrip("/")
        if storage not in mounts:
            err(f"{cw}: --storage.path {storage!r} is not a volumeMount {sorted(mounts)}")
        elif mounts[storage] not in claims:
            err(f"{cw}: --storage.path is on volume {mounts[storage]!r}, not a volumeClaimTemplate")
        # The config file: mounted from a rendered ConfigMap key.
        if len(positional) != 1:
            err(f"{cw}: expected one config file argument, got {positional}")
        else:
            cfg = positional[0]
            d, _, key = cfg.rpartition("/")
            vol = volumes.get(mounts.get(d, ""), {})
            cms = find("ConfigMap", vol.get("configMap", {}).get("name"), ns)
            if not cms or key not in cms[0].get("data", {}):
                err(f"{cw}: config file {cfg} is not a key of a mounted ConfigMap")
            else:
                # Component kinds of the config: each should be one the agent implements.
                src = cms[0]["data"][key]
                kinds = set(re.findall(r"^\s*([a-z_]+\.[a-z_.]+)\s+\"[^\"]*\"\s*\{", src, re.M))
                code = ""
                for root, _, files in os.walk(os.path.join(repo, "agent/src")):
                    for f in files:
                        if f.endswith(".rs"):
                            code += open(os.path.join(root, f)).read()
                for k in sorted(kinds):
                    if f'"{k}"' not in code:
                        print(f"   note: component {k} of {cfg} is not (yet) named in agent/src")
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            err(f"{cw}: readOnlyRootFilesystem is not true")
        if not ps.get("securityContext", {}).get("runAsNonRoot") and not sc.get("runAsNonRoot"):
            err(f"{cw}: runAsNonRoot is not set")
        if not c.get("resources", {}).get("requests", {}).get("cpu"):
            err(f"{cw}: no CPU request (the HPA scales on CPU utilization of the request)")
        # terminationGracePeriodSeconds against the shutdown bound in agent/src/run.rs:
        # max(leave timeout, remote_write flush) + 2 s, then the runtime's 1 s shutdown.
        pipeline = read("agent/src/pipeline/mod.rs")
        m_flush = re.search(r"SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs\((\d+)\)", pipeline)
        m_leave = re.search(r'long = "cluster.leave-timeout",.*?default_value = "(\d+)s"', cli, re.S)
        run_src = read("agent/src/run.rs")
        m_bound = re.search(r"let bound = leave_timeout\.max\(SHUTDOWN_FLUSH_TIMEOUT\) \+ Duration::from_secs\((\d+)\)", run_src)
        if not (m_flush and m_leave and m_bound):
            err("cannot read the shutdown bound from agent/src (SHUTDOWN_FLUSH_TIMEOUT, "
                "--cluster.leave-timeout default, `let bound` in run.rs): update this check")
        else:
            leave = int(m_leave.group(1))
            for a in args:
                if a.startswith("--cluster.leave-timeout="):
                    leave = int(re.match(r"(\d+)s$", a.split("=", 1)[1]).group(1))
            bound = max(leave, int(m_flush.group(1))) + int(m_bound.group(1)) + 1
            grace = ps.get("terminationGracePeriodSeconds", 30)
            pre = c.get("lifecycle", {}).get("preStop")
            if grace < 2 * bound and pre is None:
                err(f"{where}: terminationGracePeriodSeconds {grace} leaves less than 2x the shutdown bound ({bound} s)")
            print(f"   shutdown bound {bound} s, terminationGracePeriodSeconds {grace}")

for hpa in find("HorizontalPodAutoscaler"):
    ref = hpa["spec"]["scaleTargetRef"]
    ns = hpa["metadata"].get("namespace")
    if not find(ref["kind"], ref["name"], ns):
        err(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: target {ref['kind']}/{ref['name']} not rendered in {ns}")
    if (hpa["spec"].get("minReplicas"), hpa["spec"].get("maxReplicas")) != (3, 8):
        err(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: replicas not 3..8")

pods = [(s["metadata"].get("namespace"), s["spec"]["template"]["metadata"].get("labels", {})) for s in find("StatefulSet")]
for pdb in find("PodDisruptionBudget"):
    ns = pdb["metadata"].get("namespace")
    ls = [l for n, l in pods if n == ns]
    if not ls:
        err(f"PodDisruptionBudget {pdb['metadata']['name']}: no StatefulSet in {ns}")
    for l in ls:
        matches(pdb["spec"]["selector"], l, f"PodDisruptionBudget {pdb['metadata']['name']}")

for crb in find("ClusterRoleBinding"):
    if not find("ClusterRole", crb["roleRef"]["name"]):
        err(f"ClusterRoleBinding {crb['metadata']['name']}: ClusterRole {crb['roleRef']['name']} not rendered")
    for s in crb.get("subjects", []):
        if s["kind"] == "ServiceAccount" and not find("ServiceAccount", s["name"], s.get("namespace")):
            err(f"ClusterRoleBinding {crb['metadata']['name']}: ServiceAccount {s.get('namespace')}/{s['name']} not rendered")

namespaces = {o["metadata"]["name"] for o in find("Namespace")}
for o in objs:
    ns = o["metadata"].get("namespace")
    if ns and ns not in namespaces:
        print(f"   note: {o['kind']}/{o['metadata']['name']} is in namespace {ns}, which deploy/ does not create")

for e in errors:
    print(f"FAIL: {e}", file=sys.stderr)
if not errors:
    print("   all cross-references hold")
sys.exit(1 if errors else 0)
PY
  fail=1
fi

echo "== self-check: a misspelt field must be rejected"
python3 - "$tmp/rendered.yaml" "$tmp/broken.yaml" <<'PY'
import sys, yaml
objs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for o in objs:
    if o["kind"] == "StatefulSet":
        c = o["spec"]["template"]["spec"]["containers"][0]
        c["imagePullPolicyy"] = c.pop("imagePullPolicy", "IfNotPresent")
yaml.safe_dump_all(objs, open(sys.argv[2], "w"))
PY
if schema_check "$tmp/broken.yaml" "$docs" >/dev/null 2>&1; then
  echo "FAIL: kubernetes-validate accepted a StatefulSet with the unknown field imagePullPolicyy" >&2
  fail=1
else
  echo "   rejected, as it must be"
fi

if [ "$fail" != 0 ]; then
  echo "validate_deploy: FAILED" >&2
  exit 1
fi
echo "validate_deploy: $dir renders and validates"
