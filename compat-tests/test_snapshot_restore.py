"""Online snapshot restore through the real `bao` CLI: `bao operator raft snapshot save` -> change
the data -> `bao operator raft snapshot restore` -> the data of the snapshot is back at once, and a
token created after the snapshot no longer exists; a damaged snapshot is refused with nothing
changed; a snapshot of another store is refused unless forced, and forced (Shamir seal) the server
seals itself until that store's unseal keys unseal it.

A restore replaces the whole store, so these tests never touch the session's server: each starts
servers of its own. OpenBao's dev mode has no raft storage, so the reference is `bao server
-config` with raft storage in a temporary directory, initialised with one share and unsealed
(`SealedServer` below; compat-tests/sealed_server.py is to replace it). kvseal is its dev server
(file seal) for the restore itself, and a Shamir-sealed `kvseal server --config` where the seal
matters (another store's snapshot).

Where the two differ on purpose: OpenBao answers 500 to a damaged archive (its reader's error),
kvseal 400 (the client sent a bad archive); OpenBao installs the snapshot after answering (so a
forced restore seals a moment later), kvseal before (so it is sealed when the answer comes).
"""

import gzip
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import ROOT_TOKEN, TARGET, bao_binary

OTHER_KEYS = (
    "could not verify hash file, possibly the snapshot is using a different set of unseal keys; "
    "use the snapshot-force API to bypass this check"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> tuple[int, int]:
    """An API port and a cluster port (bao's raft listener) that differ."""
    api = _free_port()
    cluster = _free_port()
    while cluster == api:
        cluster = _free_port()
    return api, cluster


class SealedServer:
    """A server of its own for one test. `shamir`: initialised with one unseal key share and
    unsealed (bao: always, raft storage; kvseal: `server --config` with the Shamir seal);
    otherwise kvseal's dev server (file seal, root token `root`). Every store has a kv-v2 mount at
    `secret/` (bao's non-dev server gets one enabled)."""

    def __init__(self, workdir, shamir: bool):
        self.workdir = workdir
        self.port, cluster = _ports()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.token = ROOT_TOKEN
        self.unseal_key = None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(workdir)
        if TARGET == "bao":
            (workdir / "raft").mkdir()
            (workdir / "server.hcl").write_text(
                f'storage "raft" {{\n  path = "{workdir / "raft"}"\n  node_id = "node1"\n}}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n'
                f'  cluster_address = "127.0.0.1:{cluster}"\n}}\n'
                f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{cluster}"\n'
            )
            cmd = [bao_binary(), "server", f"-config={workdir / 'server.hcl'}"]
        elif shamir:
            (workdir / "storage").mkdir()
            (workdir / "kvseal.toml").write_text(
                f'[listener]\naddress = "127.0.0.1:{self.port}"\ntls_disable = true\n\n'
                f'[storage]\npath = "{workdir / "storage"}"\n\n[seal]\ntype = "shamir"\n'
            )
            cmd = [os.environ["KVSEAL_BIN"], "server", "--config", str(workdir / "kvseal.toml")]
        else:
            cmd = [os.environ["KVSEAL_BIN"], "server", "--dev", f"--dev-root-token-id={ROOT_TOKEN}",
                   f"--dev-listen-address=127.0.0.1:{self.port}"]
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self._wait_health((200, 501, 503))
        if TARGET == "bao" or shamir:
            r = requests.put(f"{self.addr}/v1/sys/init",
                             json={"secret_shares": 1, "secret_threshold": 1}, timeout=30)
            assert r.status_code == 200, (r.status_code, r.text, self.logs())
            init = r.json()
            self.token, self.unseal_key = init["root_token"], init["keys_base64"][0]
            r = requests.put(f"{self.addr}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=30)
            assert r.status_code == 200 and r.json()["sealed"] is False, (r.status_code, r.text)
        self._wait_health((200,))
        if TARGET == "bao":
            r = self.http("POST", "sys/mounts/secret", json={"type": "kv", "options": {"version": "2"}})
            assert r.status_code == 204, r.text
        self._wait_kv2()

    def logs(self) -> str:
        try:
            return (self.workdir / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _wait_health(self, accept):
        deadline = time.monotonic() + 60
        last = None
        while True:
            assert self.proc.poll() is None, f"server exited:\n{self.logs()}"
            try:
                last = requests.get(f"{self.addr}/v1/sys/health", timeout=2).status_code
                if last in accept:
                    return
            except requests.RequestException as e:
                last = repr(e)
            assert time.monotonic() < deadline, f"health {last}, want {accept}:\n{self.logs()}"
            time.sleep(0.1)

    def _wait_kv2(self):
        """OpenBao answers 400 on a new kv-v2 mount until its upgrade step is done."""
        deadline = time.monotonic() + 30
        while True:
            r = self.http("POST", "secret/data/__ready_probe", json={"data": {"x": "y"}})
            if r.status_code == 200:
                assert self.http("DELETE", "secret/metadata/__ready_probe").status_code == 204
                return
            assert time.monotonic() < deadline, (r.status_code, r.text)
            time.sleep(0.1)

    def http(self, method, path, token="default", **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        tok = self.token if token == "default" else token
        if tok is not None:
            headers["X-Vault-Token"] = tok
        return requests.request(method, f"{self.addr}/v1/{path}", headers=headers, timeout=60, **kw)

    def cli(self, *args, token="default"):
        """Runs the real `bao` CLI against this server: (rc, stdout, stderr)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update({"HOME": str(self.workdir), "BAO_ADDR": self.addr, "NO_COLOR": "1"})
        env["BAO_TOKEN"] = self.token if token == "default" else token
        p = subprocess.run([bao_binary(), *[str(a) for a in args]], env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def value(self, key):
        """`v` of secret/<key>'s current version through the CLI, None when there is none."""
        rc, out, err = self.cli("kv", "get", "-format=json", f"secret/{key}")
        if rc == 2 and "No value found" in (out + err):
            return None
        assert rc == 0, (key, rc, out, err)
        return json.loads(out)["data"]["data"]["v"]

    def put(self, key, v):
        rc, out, err = self.cli("kv", "put", f"secret/{key}", f"v={v}")
        assert rc == 0, (key, rc, out, err)

    def sealed(self) -> bool:
        r = requests.get(f"{self.addr}/v1/sys/seal-status", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["sealed"]

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture
def store(tmp_path):
    """A server for one test: bao with raft storage, kvseal's dev server."""
    (tmp_path / "store").mkdir()
    s = SealedServer(tmp_path / "store", shamir=False)
    yield s
    s.stop()


@pytest.fixture
def two_shamir_stores(tmp_path):
    """Two Shamir-sealed servers (separate stores, separate unseal keys)."""
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        servers.append(SealedServer(tmp_path / name, shamir=True))
    yield servers
    for s in servers:
        s.stop()


def _save(s: SealedServer, path) -> bytes:
    rc, out, err = s.cli("operator", "raft", "snapshot", "save", path)
    assert rc == 0, (rc, out, err)
    data = path.read_bytes()
    assert data[:2] == b"\x1f\x8b", "a gzip archive"
    return data


def test_restore_brings_back_the_snapshot_at_once(store, tmp_path):
    store.put("keep", "1")
    store.put("old", "1")
    snap = tmp_path / "before.snap"
    _save(store, snap)

    store.put("keep", "2")
    store.put("new", "1")
    rc, out, err = store.cli("kv", "metadata", "delete", "secret/old")
    assert rc == 0, (rc, out, err)
    r = store.http("POST", "auth/token/create", json={"policies": ["default"]})
    assert r.status_code == 200, r.text
    late = r.json()["auth"]["client_token"]
    assert store.http("GET", "auth/token/lookup-self", token=late).status_code == 200

    rc, out, err = store.cli("operator", "raft", "snapshot", "restore", snap)
    assert (rc, out, err) == (0, "", ""), "the CLI prints nothing on success"

    # At once: no polling.
    assert store.value("keep") == "1"
    assert store.value("old") == "1"
    assert store.value("new") is None
    rc, out, err = store.cli("kv", "metadata", "get", "-format=json", "secret/keep")
    assert rc == 0 and json.loads(out)["data"]["current_version"] == 1, (rc, out, err)
    # The snapshot's tokens are the ones that exist: one created after it is gone.
    r = store.http("GET", "auth/token/lookup-self", token=late)
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    assert store.http("GET", "auth/token/lookup-self").status_code == 200
    # The restored store takes writes.
    store.put("after", "1")
    assert store.value("after") == "1"


def _tampered(archive: bytes) -> dict:
    """Damaged copies of `archive`, by name."""
    flipped = bytearray(archive)
    flipped[len(flipped) // 2] ^= 0x01
    # The archive's own content, recompressed with one byte of the database changed: the gzip
    # stream is sound, the snapshot's checksum is not.
    raw = bytearray(gzip.decompress(archive))
    raw[512 + 50] ^= 0x01  # inside the first entry's data (bao's meta.json, kvseal's database)
    return {
        "compressed byte flipped": bytes(flipped),
        "truncated": archive[: len(archive) // 2],
        "content byte flipped": gzip.compress(bytes(raw)),
        "not gzip": b"hello world",
    }


def test_damaged_snapshot_is_refused_and_nothing_changes(store, tmp_path):
    store.put("keep", "1")
    archive = _save(store, tmp_path / "good.snap")
    store.put("keep", "2")
    store.put("new", "1")

    for name, data in _tampered(archive).items():
        f = tmp_path / "bad.snap"
        f.write_bytes(data)
        rc, out, err = store.cli("operator", "raft", "snapshot", "restore", f)
        assert rc == 2 and "Error installing the snapshot" in err, (name, rc, out, err)
        # The same refusal through the API: OpenBao's snapshot reader fails with 500, kvseal
        # answers 400 (the archive is the client's error).
        r = store.http("POST", "sys/storage/raft/snapshot", data=data)
        assert r.status_code == {"bao": 500, "kvseal": 400}[TARGET], (name, r.status_code, r.text)
        assert r.json()["errors"], (name, r.text)
        # Nothing was replaced.
        assert (store.value("keep"), store.value("new")) == ("2", "1"), name
        assert store.sealed() is False, name

    # And the good archive still restores after all that.
    rc, out, err = store.cli("operator", "raft", "snapshot", "restore", tmp_path / "good.snap")
    assert rc == 0, (rc, out, err)
    assert (store.value("keep"), store.value("new")) == ("1", None)


def test_another_stores_snapshot_needs_force_then_its_unseal_keys(two_shamir_stores, tmp_path):
    a, b = two_shamir_stores
    a.put("app", "a")
    b.put("app", "b")
    theirs = tmp_path / "b.snap"
    _save(b, theirs)

    rc, out, err = a.cli("operator", "raft", "snapshot", "restore", theirs)
    assert rc == 2 and OTHER_KEYS in err, (rc, out, err)
    r = a.http("POST", "sys/storage/raft/snapshot", data=theirs.read_bytes())
    assert (r.status_code, r.json()) == (400, {"errors": [OTHER_KEYS]})
    assert a.value("app") == "a" and a.sealed() is False

    rc, out, err = a.cli("operator", "raft", "snapshot", "restore", "-force", theirs)
    assert rc == 0, (rc, out, err)
    # OpenBao installs the snapshot after answering: it seals a moment later.
    deadline = time.monotonic() + 20
    while not a.sealed():
        assert time.monotonic() < deadline, f"not sealed after a forced restore:\n{a.logs()}"
        time.sleep(0.1)
    assert a.http("GET", "secret/data/app").status_code == 503

    # A's own unseal key no longer opens it; B's does.
    r = requests.put(f"{a.addr}/v1/sys/unseal", json={"key": a.unseal_key}, timeout=30)
    assert r.status_code == 400, r.text
    assert a.sealed() is True
    r = requests.put(f"{a.addr}/v1/sys/unseal", json={"key": b.unseal_key}, timeout=30)
    assert r.status_code == 200 and r.json()["sealed"] is False, r.text
    deadline = time.monotonic() + 20
    while a.http("GET", "secret/data/app", token=b.token).status_code != 200:
        assert time.monotonic() < deadline, a.logs()
        time.sleep(0.1)
    r = a.http("GET", "secret/data/app", token=b.token)
    assert r.json()["data"]["data"] == {"v": "b"}, r.text
    # B's tokens are the ones that exist now.
    assert a.http("GET", "auth/token/lookup-self", token=a.token).status_code == 403
