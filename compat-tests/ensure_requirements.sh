#!/usr/bin/env bash
# Installs compat-tests/requirements.txt with pip, only when a package is missing or at another
# version. Used by run.sh and hvac_upstream/run.sh. PYTHON picks the interpreter (default python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
# cargo test runs several compat runners at once: one pip at a time.
exec 9>"${TMPDIR:-/tmp}/kvseal-compat-requirements.lock"
flock 9
if ! "$PY" - "$here/requirements.txt" <<'PYEOF'
import sys
from importlib import metadata
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        if metadata.version(name) != want:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
PYEOF
then
    "$PY" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
