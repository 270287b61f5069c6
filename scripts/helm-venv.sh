#!/usr/bin/env bash
# Prints the path of a Python that can `import helm_sdkpy` (Helm's Go library behind cffi, the
# way to run real Helm here: no Helm binary is packaged), creating the virtualenv in
# $TURNSTILE_HELM_VENV (default /var/cache/turnstile/helm-venv) when it is missing.
set -euo pipefail
venv=${TURNSTILE_HELM_VENV:-/var/cache/turnstile/helm-venv}
if ! "$venv/bin/python" -c 'import helm_sdkpy' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q cffi >&2
  # The wheel declares Python >= 3.12 but works on Debian's 3.11.
  "$venv/bin/pip" install -q --ignore-requires-python helm-sdkpy >&2
fi
echo "$venv/bin/python"
