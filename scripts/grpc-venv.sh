#!/usr/bin/env bash
# Prints the path of a Python that has grpcio and xds-protos (the gRPC project's generated
# Python code of Envoy's data-plane API): an ext_authz client that is not Turnstile's own code,
# for tests/grpc.rs. Creates the virtualenv in $TURNSTILE_GRPC_VENV (default
# /var/cache/turnstile/grpc-venv) when it is missing.
set -euo pipefail
venv=${TURNSTILE_GRPC_VENV:-/var/cache/turnstile/grpc-venv}
probe='import grpc; from envoy.service.auth.v3 import external_auth_pb2_grpc'
if ! "$venv/bin/python" -c "$probe" >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q grpcio==1.85.3 xds-protos==1.85.0 >&2
fi
echo "$venv/bin/python"
