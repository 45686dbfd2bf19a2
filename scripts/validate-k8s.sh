#!/usr/bin/env bash
# Renders every overlay under deploy/kubernetes/overlays with `kubectl kustomize` and validates the
# output offline against the Kubernetes schemas (kubernetes-validate, from PyPI), strictly; also checks
# that each overlay's container StatefulSet replicas equal the REPLICAS its entrypoint is given.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubectl >/dev/null 2>&1; then
  echo "validate-k8s: installing kubectl (Debian's kubernetes-client)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq kubernetes-client >/dev/null
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "validate-k8s: installing kubernetes-validate" >&2
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore kubernetes-validate
fi
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
n=0
for o in deploy/kubernetes/overlays/*/; do
  name=$(basename "$o")
  kubectl kustomize "$o" > "$out/$name.yaml"
  kubernetes-validate --strict --quiet "$out/$name.yaml"
  python3 - "$out/$name.yaml" "$name" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sts = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "rmqc-container"][0]
env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
assert str(sts["spec"]["replicas"]) == env["REPLICAS"], (sys.argv[2], sts["spec"]["replicas"], env["REPLICAS"])
kinds = sorted(d["kind"] for d in docs)
print("validate-k8s: %s: %s valid; %s container pods, REPLICAS=%s" % (sys.argv[2], ", ".join(kinds), sts["spec"]["replicas"], env["REPLICAS"]))
PY
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "validate-k8s: no overlays found" >&2; exit 1; }
