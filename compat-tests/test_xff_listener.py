"""Vault's X-Forwarded-For listener options (security review finding 16), one table of requests
checked against both targets: OpenBao (`bao server -dev` plus a config-file listener carrying the
options) proves the table, kvseal (`server --config` with the same options) must match it.

The client address a server settled on is read from its file audit log (`request.remote_address`).
Trusted and untrusted peers are two loopback source addresses: 127.0.0.3 (named in
x_forwarded_for_authorized_addrs) and 127.0.0.1.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT_TOKEN, TARGET, bao_binary

TRUSTED = "127.0.0.3"
STRANGER = "127.0.0.1"
CLIENT = "198.51.100.7"
PATH = "/v1/auth/token/lookup-self"

NOT_PRESENT = "missing x-forwarded-for header and configured to reject when not present"
NOT_AUTHORIZED = "client address not authorized for x-forwarded-for and configured to reject connection"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, source, xff, token):
    """GET PATH from `source`, with X-Forwarded-For `xff` (None: no header). (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    headers = {"X-Vault-Token": token} if token else {}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    c.request("GET", PATH, headers=headers)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    try:
        return r.status, json.loads(body) if body else None
    except ValueError:
        return r.status, body


class XffServer:
    """A target server whose API listener has the given x_forwarded_for_* options."""

    def __init__(self, workdir, options):
        self.workdir = workdir
        self.audit = workdir / "audit.log"
        self.port = _free_port()
        self.token = ROOT_TOKEN
        env = dict(os.environ, HOME=str(workdir))
        for k in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN"):
            env.pop(k, None)
        if TARGET == "bao":
            dev_port = _free_port()
            while abs(dev_port - self.port) <= 1:  # each listener also takes port+1 for clustering
                dev_port = _free_port()
            lines = [f'  address = "127.0.0.1:{self.port}"', "  tls_disable = true"]
            lines += [f"  {k} = {json.dumps(v)}" for k, v in options.items()]
            (workdir / "xff.hcl").write_text(
                'listener "tcp" {\n' + "\n".join(lines) + "\n}\n"
                f'audit "file" "xff" {{\n  options {{\n    file_path = "{self.audit}"\n  }}\n}}\n'
            )
            cmd = [bao_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
                   f"-dev-listen-address=127.0.0.1:{dev_port}", f"-config={workdir / 'xff.hcl'}"]
        else:
            (workdir / "storage").mkdir()
            lines = [f'address = "127.0.0.1:{self.port}"', "tls_disable = true"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
            (workdir / "kvseal.toml").write_text(
                "[listener]\n" + "\n".join(lines) + "\n\n"
                f'[storage]\npath = "{workdir / "storage"}"\n\n'
                f'[seal]\ntype = "file"\nkey_file = "{workdir / "seal.key"}"\n\n'
                f'[audit]\nallowed_dir = "{workdir}"\n'
            )
            cmd = [os.environ["KVSEAL_BIN"], "server", "--config", str(workdir / "kvseal.toml")]
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self._wait_ready()
        if TARGET == "kvseal":
            self._init_and_enable_audit()

    def _request(self, method, path, body=None, token=None):
        """From the trusted peer with a forwarded client, which every option set accepts."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(TRUSTED, 0))
        headers = {"X-Forwarded-For": f"{CLIENT}, {CLIENT}"}  # any hop_skips here is 0 or 1
        if token:
            headers["X-Vault-Token"] = token
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r.status, text

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.logs()
            try:
                status, _ = self._request("GET", "/v1/sys/health")
                if status in (200, 501):
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{self.logs()}"
            time.sleep(0.1)

    def _init_and_enable_audit(self):
        status, text = self._request("PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
        assert status == 200, text
        self.token = json.loads(text)["root_token"]
        deadline = time.monotonic() + 20
        while self._request("GET", "/v1/sys/health")[0] != 200:
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.1)
        status, text = self._request("PUT", "/v1/sys/audit/xff",
                                     {"type": "file", "options": {"file_path": str(self.audit)}},
                                     token=self.token)
        assert status == 204, text

    def last_remote_address(self):
        """`remote_address` of the last audited request to PATH."""
        found = None
        for line in self.audit.read_text().splitlines():
            e = json.loads(line)
            if e.get("type") == "request" and e["request"].get("path") == PATH.removeprefix("/v1/"):
                found = e["request"].get("remote_address")
        return found

    def logs(self):
        try:
            return (self.workdir / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()


AUTHORIZED = {"x_forwarded_for_authorized_addrs": f"{TRUSTED}/32"}
REJECTING = dict(AUTHORIZED, x_forwarded_for_reject_not_authorized=True,
                 x_forwarded_for_reject_not_present=True)

# (listener options, source, X-Forwarded-For, expected status, expected error or remote_address)
CASES = [
    # Only the authorized CIDR: both reject options default to false (Vault's code; its docs say
    # true): a missing header falls back to the peer, an untrusted peer's header is ignored.
    ("defaults", AUTHORIZED, STRANGER, None, 200, STRANGER),
    ("defaults", AUTHORIZED, STRANGER, CLIENT, 200, STRANGER),
    ("defaults", AUTHORIZED, TRUSTED, None, 200, TRUSTED),
    ("defaults", AUTHORIZED, TRUSTED, CLIENT, 200, CLIENT),
    ("defaults", AUTHORIZED, TRUSTED, f"203.0.113.9, {CLIENT}", 200, CLIENT),
    ("rejecting", REJECTING, STRANGER, None, 400, NOT_PRESENT),
    ("rejecting", REJECTING, STRANGER, CLIENT, 400, NOT_AUTHORIZED),
    ("rejecting", REJECTING, TRUSTED, None, 400, NOT_PRESENT),
    ("rejecting", REJECTING, TRUSTED, CLIENT, 200, CLIENT),
    ("one hop skipped", dict(REJECTING, x_forwarded_for_hop_skips=1), TRUSTED,
     f"203.0.113.9, {CLIENT}", 200, "203.0.113.9"),
    ("one hop skipped", dict(REJECTING, x_forwarded_for_hop_skips=1), TRUSTED, CLIENT, 400,
     "malformed x-forwarded-for configuration or request, hops to skip (1) would skip before "
     "earliest chain link (chain length 1)"),
]


@pytest.mark.parametrize("name,options,source,xff,status,expected", CASES,
                         ids=[f"{c[0]}-{'trusted' if c[2] == TRUSTED else 'stranger'}-{c[3]}" for c in CASES])
def test_forwarded_for_options(tmp_path, name, options, source, xff, status, expected):
    s = XffServer(tmp_path, options)
    try:
        got_status, body = _get(s.port, source, xff, s.token)
        assert got_status == status, (body, s.logs())
        if status == 200:
            assert s.last_remote_address() == expected
        else:
            assert body == {"errors": [expected]}
    finally:
        s.stop()


def test_a_forwarded_entry_that_is_not_an_address(tmp_path):
    """Vault takes any string as the client address; kvseal refuses it (stricter on bad input)."""
    s = XffServer(tmp_path, REJECTING)
    try:
        got_status, body = _get(s.port, TRUSTED, "not-an-ip", s.token)
        if TARGET == "bao":
            assert got_status == 200, body
            assert s.last_remote_address() == "not-an-ip"
        else:
            assert got_status == 400, body
            assert body == {"errors": ['x-forwarded-for entry "not-an-ip" is not an IP address']}
    finally:
        s.stop()
