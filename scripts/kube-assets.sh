#!/usr/bin/env bash
# Prints a folder holding `kube-apiserver`, `etcd` and `kubectl` for the cluster tests
# (the envtest convention that KUBEBUILDER_ASSETS names), building it when it is missing.
#
# No container image is reachable here, so the API server is built from Debian bookworm's
# `kubernetes` source package (1.20.2, with vendor/), and etcd comes from `etcd-server`.
# The result is cached outside the clone, in $TURNSTILE_KUBE_ASSETS (default
# /var/cache/turnstile/kube-1.20.2): the first build takes about 5 minutes on 2 cores, a
# cached one nothing. Needs root for apt-get.
set -euo pipefail

out=${TURNSTILE_KUBE_ASSETS:-/var/cache/turnstile/kube-1.20.2}
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] && [ -x "$out/kubectl" ]; then
  echo "$out"
  exit 0
fi

log() { echo "kube-assets: $*" >&2; }
export DEBIAN_FRONTEND=noninteractive
if [ ! -f /etc/apt/sources.list.d/turnstile-src.sources ]; then
  cat >/etc/apt/sources.list.d/turnstile-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
log "installing the build's packages"
apt-get update -qq >&2
apt-get install -y -qq etcd-server golang-go rsync jq dpkg-dev \
  golang-github-modern-go-reflect2-dev >&2

work=$(mktemp -d /var/tmp/kube-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
log "fetching the kubernetes source package"
apt-get source --download-only -qq kubernetes >&2
tar -xzf kubernetes_*.orig.tar.gz
src=$(find . -maxdepth 1 -mindepth 1 -type d -name 'kubernetes*' | head -1)
[ -n "$src" ] || { log "no source tree in the package"; exit 1; }

# The vendored reflect2 v1.0.1 faults under Go >= 1.18 at the first request; v1.0.2 does not.
rm -f "$src"/vendor/github.com/modern-go/reflect2/*.go "$src"/vendor/github.com/modern-go/reflect2/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$src/vendor/github.com/modern-go/reflect2/"

# Debian's debian/rules lays GOPATH out this way; the build scripts expect it.
mkdir -p .go/src/k8s.io
ln -s "$(realpath "$src")" .go/src/k8s.io/kubernetes
export GOPATH="$work/.go" GOCACHE=${GOCACHE:-/var/cache/turnstile/go-build}
whats=cmd/kube-apiserver
command -v kubectl >/dev/null 2>&1 || whats="$whats cmd/kubectl"
log "building $whats"
(cd .go/src/k8s.io/kubernetes && make WHAT="$whats" >&2)

mkdir -p "$out.tmp"
cp "$src/_output/bin/kube-apiserver" "$out.tmp/"
if [ -x "$src/_output/bin/kubectl" ]; then
  cp "$src/_output/bin/kubectl" "$out.tmp/"
else
  ln -sf "$(command -v kubectl)" "$out.tmp/kubectl"
fi
ln -sf "$(command -v etcd)" "$out.tmp/etcd"
rm -rf "$out"
mv "$out.tmp" "$out"
log "built into $out"
echo "$out"
