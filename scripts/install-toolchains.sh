#!/usr/bin/env bash
# Installs what the TypeScript and Go clients (and their checks) need, from this machine's
# registries only: Debian packages for Go (GOPATH mode, no module proxy) and npm modules.
set -euo pipefail
cd "$(dirname "$0")/.."

# grpc-go 1.33 marshals through github.com/golang/protobuf: it must be the 1.5 line (APIv2-backed),
# which replaces the 1.3 package that golang-google-grpc-dev pulls in.
DEBS=(golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev
      golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev
      kubectl  # `kubectl kustomize` renders deploy/k8s; no cluster is contacted
      redis-server)  # for the Redis state store tests: fixtures start their own on a free port
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

command -v node >/dev/null || { echo "node is required (Node.js >= 20)" >&2; exit 1; }
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
