#!/usr/bin/env bash
# Load benchmark: wrk against /authz/nginx on the examples, keep-alive HTTP/1.1, on this machine.
#   bash benches/load.sh [seconds] [connections] [rounds]
# Each round runs three servers in turn under the same wrk load and prints, for each, requests/s,
# p50, p99 and the server's CPU time per request (user + system):
#   decisions  turnstile deciding /authz/nginx (identity from oauth2-proxy's trusted headers, so the
#              figure is the authorizer's own cost; a JWT adds its check, cached per token);
#   jwt        the same, identity from an RS256 bearer token (checked once, then remembered);
#   healthz    the same server answering /healthz: its HTTP stack and the kernel's TCP alone;
#   nginx      Debian's nginx answering `return 200` (when installed): this machine's floor.
# With h2load (apt-get install nghttp2-client), two more, over HTTP/2 with one request in flight per
# connection, as wrk keeps one:
#   envoy-h2   the same decision through /authz/envoy (Envoy's HTTP ext_authz service);
#   grpc       the same decision through Envoy's gRPC ext_authz Check (benches/grpc-request.py
#              writes the request, under the Python of scripts/grpc-venv.sh).
# The last lines are the medians over the rounds. Needs wrk (apt-get install wrk) and openssl.
# TURNSTILE_BIN=path runs that binary instead of building this checkout (to compare builds).
# The server runs one worker thread (WORKERS=2 for two), leaving the other core to wrk, as nginx
# runs one worker process.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
rounds=${3:-3}
port=18080
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
bin=${TURNSTILE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=./target/release/turnstile
fi

# An RS256 key, its JWKS, an issuer configured with it, and a token for bob valid for an hour.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
openssl genrsa -out "$work/key.pem" 2048 2>/dev/null
n=$(openssl rsa -in "$work/key.pem" -noout -modulus | cut -d= -f2 | basenc --base16 -d | b64url)
echo "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"load\", \"n\": \"$n\", \"e\": \"AQAB\"}]}" >"$work/jwks.json"
cat >"$work/config.yaml" <<EOF
authn:
  issuers:
    - issuer: https://issuer.load
      audiences: [turnstile]
      algorithms: [RS256]
      jwksFile: $work/jwks.json
EOF
claims="{\"iss\": \"https://issuer.load\", \"aud\": \"turnstile\", \"sub\": \"bob@example.com\", \"exp\": $(($(date +%s) + 3600))}"
unsigned="$(printf '%s' '{"alg": "RS256", "kid": "load"}' | b64url).$(printf '%s' "$claims" | b64url)"
token="$unsigned.$(printf '%s' "$unsigned" | openssl dgst -sha256 -sign "$work/key.pem" | b64url)"

"$bin" serve --manifests examples --listen 127.0.0.1:$port --api-listen 127.0.0.1:0 --workers "${WORKERS:-1}" \
  --config "$work/config.yaml" --trusted-headers --decision-log false 2>/dev/null &
turnstile=$!
pids+=("$turnstile")
for _ in $(seq 50); do curl -fs http://127.0.0.1:$port/readyz >/dev/null 2>&1 && break; sleep 0.1; done

nginx_pid=
if command -v nginx >/dev/null; then
  cat >"$work/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 127.0.0.1:$((port + 1)); keepalive_requests 1000000000; location / { return 200; } }
}
EOF
  nginx -c "$work/nginx.conf" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  sleep 0.5
fi

# run NAME PID URL [wrk options]: one wrk run; prints "NAME rps p50 p99 cpu user sys" (times in
# microseconds).
run() {
  local name=$1 pid=$2 url=$3 u0 s0 u1 s1 out
  shift 3
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency \
    -H 'X-Original-Method: GET' \
    -H 'X-Original-URL: https://api.example.com/api/v1/policy-definitions/p-1?ou=accounting' \
    -H 'X-Auth-Request-User: bob@example.com' "$@" "$url")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  if echo "$out" | grep -q 'Non-2xx'; then
    echo "$name: some answers were not 200:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$out" | awk -v name="$name" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" '
    function us(v) { if (v ~ /ms$/) return v * 1000; if (v ~ /us$/) return v + 0; return v * 1e6 }
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    END { printf "%s %.0f %.0f %.0f %.2f %.2f %.2f\n", name, rps, p50, p99,
            (u + s) / hz / n * 1e6, u / hz / n * 1e6, s / hz / n * 1e6 }'
}

# run_h2 NAME PID URL [h2load options]: as `run`, with h2load over HTTP/2 (cleartext); the
# percentiles come from its per-request log.
run_h2() {
  local name=$1 pid=$2 url=$3 u0 s0 u1 s1 out log=$work/h2load.log
  shift 3
  rm -f "$log" # h2load appends to it
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  out=$(h2load -t1 -c"$conns" -m1 -D "$secs" --log-file="$log" -H 'x-auth-request-user: bob@example.com' "$@" "$url")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  # (No early exits in these pipelines: under pipefail, a writer cut short fails the round.)
  if ! echo "$out" | grep -E 'status codes: [1-9][0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' >/dev/null; then
    echo "$name: some answers were not 200:" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps n p50 p99
  rps=$(echo "$out" | awk '/^finished in/ { print $4 }')
  n=$(wc -l <"$log")
  p50=$(cut -f3 "$log" | sort -n | awk -v n="$n" 'NR == int(n * 0.50) + 1')
  p99=$(cut -f3 "$log" | sort -n | awk -v n="$n" 'NR == int(n * 0.99) + 1')
  awk -v name="$name" -v rps="$rps" -v n="$n" -v p50="$p50" -v p99="$p99" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%s %.0f %.0f %.0f %.2f %.2f %.2f\n", name, rps, p50, p99,
      (u + s) / hz / n * 1e6, u / hz / n * 1e6, s / hz / n * 1e6 }'
}

h2=
if command -v h2load >/dev/null; then
  h2=1
  python=$(bash scripts/grpc-venv.sh)
  "$python" benches/grpc-request.py "$work/check.bin" "127.0.0.1:$port"
fi

results=$work/results
for round in $(seq "$rounds"); do
  run decisions "$turnstile" "http://127.0.0.1:$port/authz/nginx" | tee -a "$results"
  run jwt "$turnstile" "http://127.0.0.1:$port/authz/nginx" -H "Authorization: Bearer $token" | tee -a "$results"
  run healthz "$turnstile" "http://127.0.0.1:$port/healthz" | tee -a "$results"
  [ -n "$nginx_pid" ] && run nginx "$nginx_pid" "http://127.0.0.1:$((port + 1))/" | tee -a "$results"
  if [ -n "$h2" ]; then
    run_h2 envoy-h2 "$turnstile" "http://127.0.0.1:$port/authz/envoy/api/v1/policy-definitions/p-1?ou=accounting" \
      -H ':authority: api.example.com' | tee -a "$results"
    run_h2 grpc "$turnstile" "http://127.0.0.1:$port/envoy.service.auth.v3.Authorization/Check" \
      -d "$work/check.bin" -H 'content-type: application/grpc' -H 'te: trailers' | tee -a "$results"
  fi
done | awk '{ printf "round: %-9s %7d req/s  p50 %5d us  p99 %5d us  CPU %6.2f us/request (user %.2f, system %.2f)\n",
                $1, $2, $3, $4, $5, $6, $7 }'

echo "median of $rounds rounds of ${secs}s, $conns connections:"
for name in decisions jwt healthz nginx envoy-h2 grpc; do
  grep "^$name " "$results" >/dev/null || continue
  for col in 2 3 4 5 6 7; do
    grep "^$name " "$results" | awk -v c=$col '{print $c}' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
  done | paste -sd' ' | awk -v name="$name" '{
    printf "  %-9s %7d req/s  p50 %5d us  p99 %5d us  CPU %6.2f us/request (user %.2f, system %.2f)\n",
      name, $1, $2, $3, $4, $5, $6 }'
done
