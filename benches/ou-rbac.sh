#!/usr/bin/env bash
# Generates the shared ou-rbac workload and converts it into Turnstile manifests and /v1/check
# requests, for `cargo bench --bench ou_rbac` and tests/ou_rbac.rs:
#   bash benches/ou-rbac.sh [SCALE...]     (S, M, L; default all three)
# writes target/ou-rbac/<SCALE>/manifests/all.yaml and requests.jsonl, and prints target/ou-rbac.
# OU_RBAC_GEN is the folder with the workload's gen.py and convert.py (default ../shared/bench,
# beside this repository). The generator has a fixed seed, so a scale already written is kept.
# Needs python3 (standard library only). L takes about half a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gen=${OU_RBAC_GEN:-$root/../shared/bench}
out=${CARGO_TARGET_DIR:-$root/target}/ou-rbac
[ $# -gt 0 ] || set -- S M L
for scale in "$@"; do
    [ -s "$out/$scale/requests.jsonl" ] && continue
    [ -f "$gen/gen.py" ] || { echo "no $gen/gen.py: set OU_RBAC_GEN to the ou-rbac workload's folder" >&2; exit 1; }
    mkdir -p "$out"
    work=$(mktemp -d "$out/.$scale.XXXXXX")
    python3 "$gen/gen.py" --out "$work" "$scale" >&2
    python3 "$gen/convert.py" "$work/workload-$scale.json" "$work/files" >&2
    rm -rf "${out:?}/$scale"
    mv "$work/files" "$out/$scale"
    rm -rf "$work"
done
echo "$out"
