#!/usr/bin/env bash
# Runs hvac 2.4.0's own integration tests (test_kv_v1, test_token, test_mount, test_wrapping,
# test_key) against kvseal or real OpenBao; see README.md beside this file.
#
#   KVSEAL_BIN=/path/to/kvseal compat-tests/hvac_upstream/run.sh   # against kvseal
#   COMPAT_TARGET=bao compat-tests/hvac_upstream/run.sh            # against OpenBao (the reference)
#
# Extra arguments go to pytest (e.g. -k rekey -x). Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/../ensure_requirements.sh"
exec "${PYTHON:-python3}" "$here/run.py" "$@"
