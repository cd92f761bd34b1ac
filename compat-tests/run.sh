#!/usr/bin/env bash
# Run the client-compatibility suite.
#
#   KVSEAL_BIN=/path/to/kvseal compat-tests/run.sh     # against kvseal (default when KVSEAL_BIN is set)
#   COMPAT_TARGET=bao compat-tests/run.sh              # against real OpenBao (`bao server -dev`)
#
# Extra arguments go to pytest (e.g. -k cas -x). Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"

# Install the pinned clients only when something is missing or at another version.
bash "$here/ensure_requirements.sh"

if [[ -z "${COMPAT_TARGET:-}" ]]; then
    if [[ -n "${KVSEAL_BIN:-}" ]]; then COMPAT_TARGET=kvseal; else COMPAT_TARGET=bao; fi
fi
export COMPAT_TARGET
if [[ "$COMPAT_TARGET" == kvseal ]]; then
    if [[ -z "${KVSEAL_BIN:-}" || ! -x "$KVSEAL_BIN" ]]; then
        echo "run.sh: COMPAT_TARGET=kvseal needs KVSEAL_BIN pointing at the built binary (got '${KVSEAL_BIN:-}')" >&2
        exit 2
    fi
    KVSEAL_BIN="$(cd "$(dirname "$KVSEAL_BIN")" && pwd)/$(basename "$KVSEAL_BIN")"
    export KVSEAL_BIN
fi
echo "compat-tests: target=$COMPAT_TARGET ${KVSEAL_BIN:+KVSEAL_BIN=$KVSEAL_BIN}"

cd "$here"
exec "$PY" -m pytest -q -rfEs "$@" .
