#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s against the official
# Kubernetes JSON schemas, offline (the schemas ship inside the PyPI package
# kubernetes-validate), strictly (an unknown field is an error), for the
# oldest Kubernetes the manifests aim at and the newest the package knows.
# Kustomization files are kustomize's, not Kubernetes resources: skipped here
# (kubectl kustomize renders them where kubectl is installed).
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=target/ci-tools/kubernetes-validate
if [ ! -d "$tools/kubernetes_validate" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools" \
    'kubernetes-validate==1.37.0'
fi
mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
for version in 1.30.0 1.37.0; do
  PYTHONPATH=$tools python3 -m kubernetes_validate --strict --quiet \
    --kubernetes-version "$version" "${manifests[@]}"
  echo "Kubernetes manifests valid for $version: ${#manifests[@]} files"
done
