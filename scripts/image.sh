#!/usr/bin/env bash
# Builds the container image localhost/turnstile:<version> with buildah (FROM scratch; see
# Containerfile), then smoke-tests it the way this machine allows (podman cannot run
# containers here): exports it as an OCI layout, unpacks it with umoci, and runs the
# entrypoint chrooted as the image's user: `--version`, then `serve` on the examples until
# the image's own `healthcheck` finds /readyz answering.
# Needs root, buildah, skopeo and umoci (apt-get install buildah skopeo umoci).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in buildah skopeo umoci; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is missing (apt-get install buildah skopeo umoci)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag="localhost/turnstile:$version"
work=$(mktemp -d /var/tmp/turnstile-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release --locked --bin turnstile
binary=target/release/turnstile

# The build context: the binary, exactly the libraries it loads, CA certificates, a user.
root="$work/context/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp"
cp "$binary" "$root/turnstile"
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
echo 'nonroot:x:65532:65532:nonroot:/:/sbin/nologin' >"$root/etc/passwd"
echo 'nonroot:x:65532:' >"$root/etc/group"
chmod 1777 "$root/tmp"
cp Containerfile "$work/context/"

storage='vfs@/var/lib/containers/storage+/run/containers/storage'
buildah --storage-driver vfs bud --quiet -t "$tag" -f "$work/context/Containerfile" "$work/context" >/dev/null
skopeo copy --quiet "containers-storage:[$storage]$tag" "oci:$work/oci:$version"
umoci unpack --image "$work/oci:$version" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
entry=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["process"]["user"]["uid"], c["process"]["args"][0])' "$work/bundle/config.json")
read -r uid entrypoint <<<"$entry"
[ "$uid" != 0 ] || { echo "image.sh: the image runs as root" >&2; exit 1; }
run() { chroot --userspec="$uid:$uid" "$rootfs" "$entrypoint" "$@"; }

echo "smoke test: $(run --version)"
# The examples are not part of the image: copied into the unpacked tree for this test only.
cp -r examples "$rootfs/tmp/examples"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# `exec`, so that $! is the server itself and the kill below reaches it.
(exec chroot --userspec="$uid:$uid" "$rootfs" "$entrypoint" serve --manifests /tmp/examples \
  --listen "127.0.0.1:$port" --api-listen 127.0.0.1:0 --log-format json >"$work/serve.log" 2>&1) &
server=$!
ok=""
for _ in $(seq 1 100); do
  if run healthcheck --url "http://127.0.0.1:$port/readyz" 2>/dev/null; then ok=1; break; fi
  sleep 0.1
done
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
if [ -z "$ok" ]; then
  echo "image.sh: the image's server did not become ready; its log:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
size=$(du -sh "$rootfs" | cut -f1)
echo "smoke test: serve on the examples answered /readyz (image $tag, $size unpacked, uid $uid)"
