#!/usr/bin/env bash
# Load benchmark: wrk against /authz/nginx on the examples, keep-alive HTTP/1.1, on this machine.
# Prints wrk's figures and the server's CPU time per decision.
#   bash benches/load.sh [seconds] [connections]
# Needs wrk (apt-get install wrk). Identity comes from oauth2-proxy's trusted headers, so the
# figure is the authorizer's own cost (a JWT signature check adds its own, see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
port=18080
cargo build --release --quiet
${PREFIX:-} ./target/release/turnstile serve --manifests examples --listen 127.0.0.1:$port \
  --trusted-headers --decision-log false 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:$port/readyz >/dev/null 2>&1 && break; sleep 0.1; done

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }   # utime + stime, in clock ticks
hz=$(getconf CLK_TCK)
before=$(cpu)
out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency \
  -H 'X-Original-Method: GET' \
  -H 'X-Original-URL: https://api.example.com/api/v1/policy-definitions/p-1?ou=accounting' \
  -H 'X-Auth-Request-User: bob@example.com' \
  http://127.0.0.1:$port/authz/nginx)
after=$(cpu)
echo "$out"
requests=$(echo "$out" | awk '/requests in/ {print $1}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
echo "non-2xx responses: ${non2xx:-0}"
awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" \
  'BEGIN { printf "server CPU: %.2f s for %d decisions = %.2f us per decision\n", t / hz, n, t / hz / n * 1e6 }'

# Baseline: the same server answering /healthz, i.e. the HTTP stack and the kernel's TCP alone.
before=$(cpu)
base=$(wrk -t1 -c"$conns" -d"${secs}s" http://127.0.0.1:$port/healthz)
after=$(cpu)
base_requests=$(echo "$base" | awk '/requests in/ {print $1}')
echo "$base" | grep 'Requests/sec' | sed 's/^/healthz baseline /'
awk -v t=$((after - before)) -v hz="$hz" -v n="$base_requests" \
  'BEGIN { printf "healthz baseline CPU: %.2f us per request\n", t / hz / n * 1e6 }'
