#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s against the official
# Kubernetes JSON schemas, offline (the schemas ship inside the PyPI package
# kubernetes-validate), strictly (an unknown field is an error), for the
# oldest Kubernetes the manifests aim at and the newest the package knows.
# Kustomization files are kustomize's, not Kubernetes resources: skipped here;
# .ci/run renders the overlay with kubectl kustomize (where kubectl is installed)
# and passes the result to this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=target/ci-tools/kubernetes-validate
if [ ! -d "$tools/kubernetes_validate" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools" \
    'kubernetes-validate==1.37.0'
fi
# With arguments: those files (e.g. a rendered overlay); without: every manifest.
if [ "$#" -gt 0 ]; then
  manifests=("$@")
else
  mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
fi
for version in 1.30.0 1.37.0; do
  PYTHONPATH=$tools python3 -m kubernetes_validate --strict --quiet \
    --kubernetes-version "$version" "${manifests[@]}"
  echo "Kubernetes manifests valid for $version: ${#manifests[@]} files"
done
