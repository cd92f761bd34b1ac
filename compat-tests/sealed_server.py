"""A Shamir-sealed server of either target, for tests of the seal itself (generate-root, rekey,
seal and unseal) and of what replaces a whole store (snapshot restore).

The session server of conftest.py is a dev server (file seal, already unsealed); tests that change
the unseal keys or the whole store need a server of their own, initialised with shares:

* ``kvseal`` -- ``$KVSEAL_BIN server --config kvseal.toml``: SQLite in the work directory, plain
  HTTP, ``[seal] type = "shamir"``.
* ``bao``    -- ``bao server -config=bao.hcl``: raft storage in the work directory, plain HTTP,
  ``disable_mlock``, a cluster address on a second free port. OpenBao 2.7 turns Vault's
  unauthenticated ``sys/generate-root/*`` and ``sys/rekey/*`` routes off by default; the listener
  turns them back on (``disable_unauthed_generate_root_endpoints = false``,
  ``disable_unauthed_rekey_endpoints = false``) so that they answer as Vault's do, which is what
  kvseal serves. Both ports are chosen once, so a restart keeps the raft node's addresses.

``kvseal_dev=True`` (kvseal only) starts ``$KVSEAL_BIN server --dev`` instead: file seal, already
unsealed, root token ``root``, no unseal keys -- the kvseal store a snapshot restore is tested on,
where OpenBao (whose dev mode has no raft storage) still needs the sealed raft server.

Both are initialised with ``PUT sys/init`` ({secret_shares, secret_threshold}), unsealed with the
first ``threshold`` keys, and given a kv-v2 mount at ``secret/`` (kvseal makes it at init; OpenBao
outside dev mode has none), so that a test can write and read a secret the same way on both.

Usage::

    from sealed_server import sealed_server

    def test_x(tmp_path):
        with sealed_server(tmp_path, shares=5, threshold=3) as s:
            s.keys, s.keys_base64, s.root_token, s.addr
            s.seal(); s.unseal(s.keys[:3]); s.http("GET", "sys/seal-status")
            s.bao("kv", "get", "-format=json", "secret/x")  # the real CLI, as conftest's `bao`
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from typing import Any, Iterator, List, Optional

import requests

from conftest import ROOT_TOKEN, TARGET, CliResult, bao_binary, run_bao


def _free_ports(n: int) -> List[int]:
    """``n`` distinct free ports: all are bound at once, so none is handed out twice (bao's API
    and cluster listeners on one port would fail to start)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class SealedServer:
    """A running Shamir-sealed server: its address, unseal keys and root token."""

    def __init__(self, target: str, workdir, shares: int, threshold: int, kvseal_dev: bool = False):
        if kvseal_dev and target != "kvseal":
            raise ValueError("kvseal_dev is a kvseal server; OpenBao's dev mode has no raft storage")
        self.target = target
        self.workdir = workdir
        self.shares = shares
        self.threshold = threshold
        self.kvseal_dev = kvseal_dev
        self.port, self.cluster_port = _free_ports(2)
        self.addr = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = workdir / "server.log"
        self.keys: List[str] = []
        self.keys_base64: List[str] = []
        self.root_token = ROOT_TOKEN if kvseal_dev else ""
        self.session = requests.Session()

    # ------------------------------------------------------------ process

    def _command(self) -> List[str]:
        if self.target == "kvseal":
            binary = os.environ.get("KVSEAL_BIN")
            if not binary or not os.path.exists(binary):
                raise RuntimeError(f"KVSEAL_BIN={binary!r} does not exist")
            if self.kvseal_dev:
                return [binary, "server", "--dev", f"--dev-root-token-id={ROOT_TOKEN}",
                        f"--dev-listen-address=127.0.0.1:{self.port}"]
            storage = self.workdir / "storage"
            cfg = self.workdir / "kvseal.toml"
            cfg.write_text(
                "[listener]\n"
                f'address = "127.0.0.1:{self.port}"\n'
                "tls_disable = true\n\n"
                "[storage]\n"
                f'path = "{storage}"\n\n'
                "[seal]\n"
                'type = "shamir"\n'
            )
            return [binary, "server", "--config", str(cfg)]
        data = self.workdir / "raft"
        data.mkdir(exist_ok=True)
        cluster_port = self.cluster_port
        cfg = self.workdir / "bao.hcl"
        cfg.write_text(
            'storage "raft" {\n'
            f'  path = "{data}"\n'
            '  node_id = "node1"\n'
            "}\n"
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{cluster_port}"\n'
            "  tls_disable = true\n"
            "  disable_unauthed_generate_root_endpoints = false\n"
            "  disable_unauthed_rekey_endpoints = false\n"
            "}\n"
            f'api_addr = "{self.addr}"\n'
            f'cluster_addr = "http://127.0.0.1:{cluster_port}"\n'
            "disable_mlock = true\n"
        )
        return [bao_binary(), "server", f"-config={cfg}"]

    def start(self) -> None:
        """Starts the process (uninitialised, or sealed after a restart) and waits until
        ``sys/seal-status`` answers."""
        assert self.proc is None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self._command(), cwd=self.workdir, env=env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self._wait(lambda: self.http("GET", "sys/seal-status", token=None).status_code == 200,
                   "sys/seal-status to answer")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        self._log.close()

    def restart(self) -> None:
        """Stops and starts the server on the same storage: it comes back sealed."""
        self.stop()
        self.start()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} exited (rc={self.proc.returncode}):\n{self.log_tail()}")
            try:
                if ready():
                    return
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(f"{self.target}: timed out waiting for {what} ({last}):\n{self.log_tail()}")

    # ------------------------------------------------------------ HTTP

    def http(self, method: str, path: str, token: Any = "root", **kw) -> requests.Response:
        """A request to ``/v1/<path>``; ``token="root"`` sends the root token, ``None`` none."""
        headers = dict(kw.pop("headers", {}) or {})
        tok = self.root_token if token == "root" else token
        if tok:
            headers["X-Vault-Token"] = tok
        kw.setdefault("timeout", 15)
        return self.session.request(method, f"{self.addr}/v1/{path}", headers=headers, **kw)

    def bao(self, *args, token: Any = "root", timeout: float = 30) -> CliResult:
        """Runs the real ``bao`` CLI against this server (``token="root"``: the root token, ``None``:
        no token). Returns conftest's ``CliResult`` (``out`` is parsed JSON when stdout is JSON)."""
        tok = self.root_token if token == "root" else token
        return run_bao(self.addr, tok or None, self.workdir, *args, timeout=timeout)

    # ------------------------------------------------------------ seal

    def init(self) -> None:
        r = self.http("PUT", "sys/init", token=None,
                      json={"secret_shares": self.shares, "secret_threshold": self.threshold})
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        self.keys, self.keys_base64 = body["keys"], body["keys_base64"]
        self.root_token = body["root_token"]
        assert len(self.keys) == self.shares, body

    def unseal(self, keys: List[str]) -> dict:
        """Gives ``keys`` to ``sys/unseal`` (each must be accepted) and returns the last status;
        once unsealed, waits until the server serves requests (OpenBao's raft node elects itself
        leader first)."""
        status: dict = {}
        for k in keys:
            r = self.http("PUT", "sys/unseal", token=None, json={"key": k})
            assert r.status_code == 200, (r.status_code, r.text)
            status = r.json()
        if status.get("sealed") is False:
            self.wait_active()
        return status

    def wait_active(self) -> None:
        self._wait(lambda: self.http("GET", "sys/health", token=None).status_code == 200,
                   "sys/health 200 (active)")

    def seal(self) -> None:
        r = self.http("PUT", "sys/seal")
        assert r.status_code == 204, (r.status_code, r.text)

    def seal_status(self) -> dict:
        r = self.http("GET", "sys/seal-status", token=None)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def ensure_secret_mount(self) -> None:
        """A kv-v2 mount at ``secret/`` on both targets (kvseal makes it at init)."""
        r = self.http("GET", "sys/mounts/secret")
        if r.status_code == 200:
            return
        r = self.http("POST", "sys/mounts/secret", json={"type": "kv", "options": {"version": "2"}})
        assert r.status_code == 204, (r.status_code, r.text)

        def writable() -> bool:
            w = self.http("POST", "secret/data/__ready_probe", json={"data": {"x": "y"}})
            return w.status_code == 200

        self._wait(writable, "secret/ to take writes")
        r = self.http("DELETE", "secret/metadata/__ready_probe")
        assert r.status_code == 204, (r.status_code, r.text)


@contextlib.contextmanager
def sealed_server(tmp_path, shares: int, threshold: int, target: str = TARGET,
                  name: Optional[str] = None, kvseal_dev: bool = False) -> Iterator[SealedServer]:
    """A server of ``target`` in ``tmp_path/<name>`` (default ``sealed-<target>``; name two servers
    of one test apart), initialised with ``shares`` unseal keys (``threshold`` of which unseal it),
    unsealed, with kv-v2 at ``secret/``; stopped on exit. ``kvseal_dev``: see the module text."""
    workdir = tmp_path / (name or f"sealed-{target}")
    workdir.mkdir()
    s = SealedServer(target, workdir, shares, threshold, kvseal_dev=kvseal_dev)
    s.start()
    try:
        if kvseal_dev:
            s.wait_active()
        else:
            s.init()
            s.unseal(s.keys[:threshold])
        s.ensure_secret_mount()
        yield s
    finally:
        s.stop()
