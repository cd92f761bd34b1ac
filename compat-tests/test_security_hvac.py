"""Security features with real clients against real kvseal processes: the Shamir seal with hvac and
the bao CLI, client certificates (hvac `auth.cert.login`, OKMS requests authenticated by the
certificate alone), `tls_require_client_cert`, and certificate reload on SIGHUP.

The shared `server` fixture is a plain dev server, so every test here starts its own kvseal
(`server --config FILE`) in a temporary directory. Certificates are made with the openssl CLI.
Skipped against OpenBao (the servers are kvseal configurations, and OKMS is kvseal's).
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import uuid

import hvac
import pytest
import requests

from conftest import (
    CAT_AUTHENTICATION,
    TARGET,
    assert_okms_error,
    bao_binary,
)

pytestmark = pytest.mark.skipif(TARGET == "bao", reason="starts kvseal processes with kvseal configs")

CAT_AUTHORIZATION = 4
D1 = "11111111-2222-4333-8444-555555555555"
D2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
APP_POLICY = (
    'path "secret/data/*" { capabilities = ["create","read","update"] }\n'
    'path "secret/metadata/*" { capabilities = ["read","list"] }'
)


# ------------------------------------------------------------------ certificates


def _openssl(cwd, *args):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout


def make_ca(d, name):
    _openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN=kvseal test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(d, ca, name, subj, ext, serial, reuse_key=None):
    (d / f"{name}.ext").write_text(ext)
    if reuse_key:
        _openssl(d, "req", "-new", "-key", reuse_key, "-out", f"{name}.csr", "-subj", subj)
    else:
        _openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subj)
    _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
             "-set_serial", serial, "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")


SERVER_EXT = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")


def client_ext(domain=None):
    s = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    if domain:
        s += f"subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:okms.domain:{domain}\n"
    return s


def pem_serial(pem: str) -> str:
    p = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().split("=", 1)[1].upper()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "evil")
    make_leaf(d, "ca", "server", "/CN=localhost", SERVER_EXT, "0x1001")
    make_leaf(d, "ca", "server2", "/CN=localhost", SERVER_EXT, "0x1002")
    make_leaf(d, "ca", "app1", "/CN=app1", client_ext(D1), "0x2001")          # restricted to D1
    make_leaf(d, "ca", "app2", "/CN=app2", client_ext(D2), "0x2002")          # restricted to D2
    make_leaf(d, "ca", "app1any", "/CN=app1", client_ext(None), "0x2003")     # no domain restriction
    make_leaf(d, "ca", "nobody", "/CN=nobody", client_ext(None), "0x2004")    # trusted, no identity
    make_leaf(d, "evil", "evil-app1", "/CN=app1", client_ext(D1), "0x3001")   # untrusted CA
    make_leaf(d, "ca", "badupn", "/CN=app1",                                   # malformed domain UPN
              client_ext() + "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:okms.domain:not-a-uuid\n",
              "0x2005")
    return d


def cert(pki, name):
    return (str(pki / f"{name}.pem"), str(pki / f"{name}-key.pem"))


# ------------------------------------------------------------------ kvseal processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kvseal:
    """One `kvseal server --config FILE` process, on a fresh port, in `workdir`."""

    def __init__(self, workdir, seal="file", tls=None, extra=""):
        binary = os.environ.get("KVSEAL_BIN")
        if not binary or not os.path.exists(binary):
            pytest.skip("KVSEAL_BIN is not set")
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.tls = tls  # dict(cert, key, client_ca, require, ca)
        scheme = "https" if tls else "http"
        self.addr = f"{scheme}://127.0.0.1:{self.port}"
        (workdir / "storage").mkdir(exist_ok=True)
        lines = ["[listener]", f'address = "127.0.0.1:{self.port}"']
        if tls:
            lines += [f'tls_cert_file = "{tls["cert"]}"', f'tls_key_file = "{tls["key"]}"']
            if tls.get("client_ca"):
                lines.append(f'tls_client_ca_file = "{tls["client_ca"]}"')
            if tls.get("require"):
                lines.append("tls_require_client_cert = true")
        else:
            lines.append("tls_disable = true")
        lines += ["", "[storage]", f'path = "{workdir / "storage"}"', "", "[seal]", f'type = "{seal}"']
        if seal == "file":
            lines.append(f'key_file = "{workdir / "seal.key"}"')
        self.config = workdir / "kvseal.toml"
        self.config.write_text("\n".join(lines) + "\n" + extra)
        self.proc = None
        self.spawns = 0
        self.start()

    def start(self):
        self.spawns += 1
        self.log = self.workdir / f"kvseal.{self.spawns}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "server", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def logs(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def session_kw(self, cert=None):
        kw = {"timeout": 5}
        if self.tls:
            kw["verify"] = self.tls["ca"]
            if cert:
                kw["cert"] = cert
        return kw

    def wait(self, accept, cert=None, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            assert self.proc.poll() is None, f"kvseal exited rc={self.proc.returncode}:\n{self.logs()}"
            try:
                r = requests.get(f"{self.addr}/v1/sys/health", **self.session_kw(cert))
                last = r.status_code
                if r.status_code in accept:
                    return
            except requests.RequestException as e:
                last = repr(e)
            assert time.monotonic() < deadline, f"not ready: {last}\n{self.logs()}"
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def restart(self):
        self.stop()
        self.start()

    def init_file_seal(self, cert=None) -> str:
        """sys/init on a file-seal server; returns the root token."""
        self.wait({501}, cert=cert)
        r = requests.put(f"{self.addr}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1},
                         **self.session_kw(cert))
        assert r.status_code == 200, r.text
        self.wait({200}, cert=cert)
        return r.json()["root_token"]


@pytest.fixture
def spawn(tmp_path):
    started = []

    def make(**kw):
        n = len(started)
        wd = tmp_path / f"kvseal{n}"
        wd.mkdir()
        k = Kvseal(wd, **kw)
        started.append(k)
        return k

    yield make
    for k in started:
        k.stop()


# ------------------------------------------------------------------ 5. Shamir with hvac


def test_hvac_shamir_lifecycle(spawn):
    k = spawn(seal="shamir")
    k.wait({501})
    client = hvac.Client(url=k.addr)
    assert client.sys.is_initialized() is False
    assert client.sys.is_sealed() is True

    result = client.sys.initialize(5, 3)
    keys, keys_b64, root = result["keys"], result["keys_base64"], result["root_token"]
    assert len(keys) == 5 and len(set(keys)) == 5
    assert len(keys_b64) == 5
    assert root
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is True
    st = client.sys.read_seal_status()
    assert (st["type"], st["sealed"], st["t"], st["n"], st["progress"]) == ("shamir", True, 3, 5, 0), st

    client.token = root
    with pytest.raises(hvac.exceptions.VaultDown):
        client.secrets.kv.v2.read_secret_version("x", mount_point="secret", raise_on_deleted_version=True)

    st = client.sys.submit_unseal_key(keys[0])
    assert (st["sealed"], st["progress"]) == (True, 1), st
    st = client.sys.submit_unseal_key(reset=True)
    assert (st["sealed"], st["progress"]) == (True, 0), st
    st = client.sys.submit_unseal_keys(keys[:3])
    assert st["sealed"] is False and st["progress"] == 0, st
    assert client.sys.is_sealed() is False

    client.secrets.kv.v2.create_or_update_secret("shamir/app", secret={"pw": "one"}, mount_point="secret")
    got = client.secrets.kv.v2.read_secret_version("shamir/app", mount_point="secret",
                                                   raise_on_deleted_version=True)
    assert got["data"]["data"] == {"pw": "one"}

    client.sys.seal()
    assert client.sys.is_sealed() is True
    with pytest.raises(hvac.exceptions.VaultDown):
        client.secrets.kv.v2.read_secret_version("shamir/app", mount_point="secret",
                                                 raise_on_deleted_version=True)

    # Restart: sealed; unseal one share at a time with base64 shares.
    k.restart()
    k.wait({503})
    assert client.sys.is_sealed() is True
    assert client.sys.read_seal_status()["progress"] == 0
    for i, key in enumerate(keys_b64[2:5]):
        st = client.sys.submit_unseal_key(key)
        assert st["progress"] == (i + 1) % 3 and st["sealed"] is (i < 2), st
    got = client.secrets.kv.v2.read_secret_version("shamir/app", mount_point="secret",
                                                   raise_on_deleted_version=True)
    assert got["data"]["data"] == {"pw": "one"}
    # A second initialize is refused.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.initialize(5, 3)


def _bao(addr, *args, token=None, home=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update({"BAO_ADDR": addr, "HOME": str(home), "NO_COLOR": "1", "BAO_CLI_NO_COLOR": "1"})
    if token:
        env["BAO_TOKEN"] = token
    p = subprocess.run([bao_binary(), *args], env=env, capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    return p


def test_bao_cli_shamir_lifecycle(spawn, tmp_path):
    k = spawn(seal="shamir")
    k.wait({501})
    p = _bao(k.addr, "status", home=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)

    p = _bao(k.addr, "operator", "init", "-key-shares=5", "-key-threshold=3", "-format=json", home=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out["unseal_keys_b64"]) == 5, out
    assert len(out["unseal_keys_hex"]) == 5, out
    assert out["unseal_shares"] == 5 and out["unseal_threshold"] == 3, out
    root = out["root_token"]
    assert root

    p = _bao(k.addr, "status", "-format=json", home=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    st = json.loads(p.stdout)
    assert (st["initialized"], st["sealed"], st["t"], st["n"], st["progress"]) == (True, True, 3, 5, 0), st

    # Unseal with three shares, mixing base64 and hex.
    shares = [out["unseal_keys_b64"][0], out["unseal_keys_hex"][3], out["unseal_keys_b64"][4]]
    for i, share in enumerate(shares):
        p = _bao(k.addr, "operator", "unseal", "-format=json", share, home=tmp_path)
        assert p.returncode == 0, (p.stdout, p.stderr)
        st = json.loads(p.stdout)
        if i < 2:
            assert (st["sealed"], st["progress"]) == (True, i + 1), st
        else:
            assert st["sealed"] is False, st
    p = _bao(k.addr, "status", home=tmp_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Sealed" in p.stdout and "false" in p.stdout, p.stdout

    p = _bao(k.addr, "kv", "put", "secret/cli/app", "pw=cli", token=root, home=tmp_path)
    assert p.returncode == 0, p.stderr

    # Sealing needs a token.
    p = _bao(k.addr, "operator", "seal", home=tmp_path)
    assert p.returncode != 0, p.stdout
    p = _bao(k.addr, "operator", "seal", token=root, home=tmp_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Success" in p.stdout, p.stdout
    p = _bao(k.addr, "status", home=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    p = _bao(k.addr, "kv", "get", "secret/cli/app", token=root, home=tmp_path)
    assert p.returncode == 2 and "sealed" in p.stderr.lower(), (p.returncode, p.stderr)

    # `operator unseal -reset`, then unseal again.
    p = _bao(k.addr, "operator", "unseal", "-format=json", out["unseal_keys_hex"][1], home=tmp_path)
    assert json.loads(p.stdout)["progress"] == 1, p.stdout
    p = _bao(k.addr, "operator", "unseal", "-reset", "-format=json", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["progress"] == 0, p.stdout
    for share in out["unseal_keys_hex"][1:4]:
        p = _bao(k.addr, "operator", "unseal", share, home=tmp_path)
        assert p.returncode == 0, p.stderr
    p = _bao(k.addr, "kv", "get", "-format=json", "secret/cli/app", token=root, home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["data"]["data"] == {"pw": "cli"}


# ------------------------------------------------------------------ 6/7. client certificates


@pytest.fixture(scope="module")
def mtls(pki, tmp_path_factory):
    """A TLS server that verifies client certificates against ca.pem, with two OKMS domains on
    the same mount and two certificate identities with the `app` policy."""
    wd = tmp_path_factory.mktemp("mtls")
    extra = f"""
[[okms.domains]]
id = "{D1}"
mount = "secret"

[[okms.domains]]
id = "{D2}"
mount = "secret"

[[auth.cert]]
name = "app1"
subject = "CN=app1"
policies = ["app"]
ttl = "1h"

[[auth.cert]]
name = "app2"
subject = "CN=app2"
policies = ["app"]
"""
    tls = {"cert": pki / "server.pem", "key": pki / "server-key.pem",
           "client_ca": pki / "ca.pem", "ca": str(pki / "ca.pem")}
    k = Kvseal(wd, seal="file", tls=tls, extra=extra)
    try:
        root = k.init_file_seal()
        admin = hvac.Client(url=k.addr, token=root, verify=str(pki / "ca.pem"))
        admin.sys.create_or_update_acl_policy("app", APP_POLICY)
        yield {"k": k, "root": root, "addr": k.addr, "ca": str(pki / "ca.pem")}
    finally:
        k.stop()


def test_hvac_cert_login_and_kv_within_policy(mtls, pki):
    addr, ca = mtls["addr"], mtls["ca"]
    client = hvac.Client(url=addr, verify=ca, cert=cert(pki, "app1"))
    resp = client.auth.cert.login(cert_pem=cert(pki, "app1")[0], key_pem=cert(pki, "app1")[1])
    auth = resp["auth"]
    assert auth["policies"] == ["app", "default"], auth
    assert auth["token_policies"] == ["app", "default"], auth
    assert auth["lease_duration"] == 3600, auth
    assert auth["metadata"] == {"cert_name": "app1"}, auth
    assert client.token == auth["client_token"]
    assert client.is_authenticated()
    me = client.auth.token.lookup_self()["data"]
    assert me["policies"] == ["app", "default"], me

    # Within the policy.
    path = f"cert/{uuid.uuid4().hex[:8]}"
    w = client.secrets.kv.v2.create_or_update_secret(path, secret={"pw": "via-cert"}, mount_point="secret")
    assert w["data"]["version"] == 1
    r = client.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=True)
    assert r["data"]["data"] == {"pw": "via-cert"}
    w = client.secrets.kv.v2.create_or_update_secret(path, secret={"pw": "v2"}, mount_point="secret")
    assert w["data"]["version"] == 2
    # Outside it.
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.delete_metadata_and_all_versions(path, mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.read_acl_policy("app")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.enable_secrets_engine("kv", path=f"kv-{uuid.uuid4().hex[:6]}")

    # login() with the adapter's certificate, and with a role name.
    c2 = hvac.Client(url=addr, verify=ca, cert=cert(pki, "app1any"))
    assert c2.auth.cert.login()["auth"]["metadata"] == {"cert_name": "app1"}
    c3 = hvac.Client(url=addr, verify=ca, cert=cert(pki, "app2"))
    a3 = c3.auth.cert.login(name="app2")["auth"]
    assert a3["metadata"] == {"cert_name": "app2"} and a3["policies"] == ["app", "default"], a3
    assert a3["lease_duration"] == 768 * 3600, a3  # no ttl in the identity: the 768h default
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c3.auth.cert.login(name="app1")  # CN=app2 does not match the app1 identity
    # A trusted certificate matching no identity, and no certificate at all.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=addr, verify=ca, cert=cert(pki, "nobody")).auth.cert.login()
    r = requests.post(f"{addr}/v1/auth/cert/login", json={}, verify=ca, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["errors"], r.text
    # On the Vault API the certificate alone is not a token: it must be exchanged at login.
    r = requests.get(f"{addr}/v1/secret/data/{path}", verify=ca, cert=cert(pki, "app1"), timeout=10)
    assert r.status_code == 403, r.text


def _okms(method, addr, domain, rest, ca, cert_=None, **kw):
    kw.setdefault("timeout", 10)
    return requests.request(method, f"{addr}/api/{domain}/v2/{rest}", verify=ca, cert=cert_, **kw)


def test_okms_with_client_certificate_only(mtls, pki):
    addr, ca = mtls["addr"], mtls["ca"]
    app1, app2 = cert(pki, "app1"), cert(pki, "app2")
    path = f"okms-{uuid.uuid4().hex[:8]}/db"
    enc = path.replace("/", "%2F")

    r = _okms("POST", addr, D1, "secret", ca, app1,
              json={"path": path, "version": {"data": {"user": "u", "pw": "cert-only"}}})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == path
    assert r.json()["metadata"]["currentVersion"] == 1
    r = _okms("GET", addr, D1, f"secret/{enc}", ca, app1, params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["version"]["data"] == {"user": "u", "pw": "cert-only"}
    r = _okms("POST", addr, D1, f"secret/{enc}/version", ca, app1, json={"data": {"pw": "v2"}})
    assert r.status_code in (200, 201), r.text
    assert r.json()["id"] == 2, r.text
    r = _okms("GET", addr, D1, "secret", ca, app1)
    assert r.status_code == 200, r.text
    assert path in [s["path"] for s in r.json()], r.text

    # The D1 certificate on D2 (same mount, same policy): refused because of its okms.domain UPN.
    for method, rest, kw in [("GET", f"secret/{enc}", {"params": {"includeData": "true"}}),
                             ("GET", "secret", {}),
                             ("POST", "secret", {"json": {"path": path + "x", "version": {"data": {"a": "b"}}}})]:
        r = _okms(method, addr, D2, rest, ca, app1, **kw)
        assert_okms_error(r, 403, CAT_AUTHORIZATION)
    # The D2 certificate works on D2 (and sees the same secret), not on D1.
    r = _okms("GET", addr, D2, f"secret/{enc}", ca, app2, params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["version"]["data"] == {"pw": "v2"}
    assert_okms_error(_okms("GET", addr, D1, f"secret/{enc}", ca, app2), 403, CAT_AUTHORIZATION)
    # A certificate with no okms.domain works on both domains.
    for d in (D1, D2):
        r = _okms("GET", addr, d, f"secret/{enc}", ca, cert(pki, "app1any"))
        assert r.status_code == 200, (d, r.text)
    # Outside the policy: 403 even with a valid certificate.
    r = _okms("DELETE", addr, D1, f"secret/{enc}", ca, app1)
    assert_okms_error(r, 403, CAT_AUTHORIZATION)

    # No certificate and no token: 401. A trusted certificate that maps to no identity: 401.
    assert_okms_error(_okms("GET", addr, D1, "secret", ca), 401, CAT_AUTHENTICATION)
    assert_okms_error(_okms("GET", addr, D1, "secret", ca, cert(pki, "nobody")), 401, CAT_AUTHENTICATION)

    # A certificate from an untrusted CA: the server verifies client certificates
    # (SSL_VERIFY_PEER) and aborts the handshake. Observed: requests.exceptions.SSLError
    # "EOF occurred in violation of protocol" (the server closes without sending an alert), never
    # an HTTP answer (so never a 401).
    with pytest.raises(requests.exceptions.SSLError):
        _okms("GET", addr, D1, "secret", ca, cert(pki, "evil-app1"))
    # The server is unaffected.
    assert _okms("GET", addr, D1, "secret", ca, app1).status_code == 200


# ------------------------------------------------------------------ 8. required client certificates


def test_require_client_cert_fails_handshake_without_one(spawn, pki):
    tls = {"cert": pki / "server.pem", "key": pki / "server-key.pem",
           "client_ca": pki / "ca.pem", "require": True, "ca": str(pki / "ca.pem")}
    k = spawn(seal="file", tls=tls)
    k.wait({501}, cert=cert(pki, "nobody"))
    ca = str(pki / "ca.pem")
    # Observed: SSLError "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required".
    with pytest.raises(requests.exceptions.SSLError) as ei:
        requests.get(f"{k.addr}/v1/sys/health", verify=ca, timeout=10)
    assert "certificate" in str(ei.value).lower() or "eof" in str(ei.value).lower(), str(ei.value)
    # Raw TLS: the server's alert arrives at the latest at the first read.
    ctx = ssl.create_default_context(cafile=ca)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", k.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = s.recv(100)
                assert not data.startswith(b"HTTP/"), data
                raise ConnectionResetError("closed without an answer")
    # An untrusted certificate fails too; a trusted one gets an answer.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{k.addr}/v1/sys/health", verify=ca, cert=cert(pki, "evil-app1"), timeout=10)
    r = requests.get(f"{k.addr}/v1/sys/health", verify=ca, cert=cert(pki, "nobody"), timeout=10)
    assert r.status_code == 501, r.text
    assert r.json()["initialized"] is False


# ------------------------------------------------------------------ 9. SIGHUP reload


def test_sighup_reloads_server_certificate(spawn, pki, tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    (d / "cert.pem").write_bytes((pki / "server.pem").read_bytes())
    (d / "key.pem").write_bytes((pki / "server-key.pem").read_bytes())
    ca = str(pki / "ca.pem")
    tls = {"cert": d / "cert.pem", "key": d / "key.pem", "ca": ca}
    k = spawn(seal="file", tls=tls)
    root = k.init_file_seal()

    def serial():
        return pem_serial(ssl.get_server_certificate(("127.0.0.1", k.port), ca_certs=ca, timeout=5))

    assert serial() == "1001"
    # A connection kept open across the reload.
    sess = requests.Session()
    assert sess.get(f"{k.addr}/v1/sys/health", verify=ca, timeout=5).status_code == 200

    def install(name):
        for src, dst in ((f"{name}.pem", "cert.pem"), (f"{name}-key.pem", "key.pem")):
            tmp = d / (dst + ".tmp")
            tmp.write_bytes((pki / src).read_bytes())
            os.replace(tmp, d / dst)

    install("server2")
    assert serial() == "1001", "the certificate must not change before SIGHUP"
    os.kill(k.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while serial() != "1002":
        assert time.monotonic() < deadline, f"certificate not reloaded:\n{k.logs()}"
        time.sleep(0.1)
    assert k.proc.poll() is None, k.logs()
    r = requests.get(f"{k.addr}/v1/sys/health", verify=ca, timeout=5)
    assert r.status_code == 200
    r = sess.get(f"{k.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": root}, verify=ca, timeout=5)
    assert r.status_code == 200, r.text

    # A broken certificate file: the reload fails, the old certificate stays, the server runs.
    (d / "cert.pem").write_text("not a certificate\n")
    os.kill(k.proc.pid, signal.SIGHUP)
    time.sleep(0.5)
    assert k.proc.poll() is None, k.logs()
    assert serial() == "1002"
    assert "reload" in k.logs().lower(), k.logs()

    # Back to the first certificate.
    install("server")
    os.kill(k.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while serial() != "1001":
        assert time.monotonic() < deadline, f"certificate not reloaded:\n{k.logs()}"
        time.sleep(0.1)
    assert requests.get(f"{k.addr}/v1/sys/health", verify=ca, timeout=5).status_code == 200


# A malformed okms.domain restriction fails closed (it restricts to no domain at all).
def test_okms_malformed_domain_upn_fails_closed(mtls, pki):
    """A certificate that names an OKMS domain in a form the server cannot read must not be valid on
    every domain: it should be refused (403) like a certificate for another domain."""
    addr, ca = mtls["addr"], mtls["ca"]
    r = _okms("GET", addr, D1, "secret", ca, cert(pki, "badupn"))
    assert_okms_error(r, 403, CAT_AUTHORIZATION)


def test_sighup_reloads_client_ca(spawn, pki, tmp_path):
    """SIGHUP re-reads tls_client_ca_file too: a client certificate from a CA added to the file is
    accepted by new connections afterwards."""
    d = tmp_path / "live"
    d.mkdir()
    (d / "clients.pem").write_bytes((pki / "ca.pem").read_bytes())
    ca = str(pki / "ca.pem")
    tls = {"cert": pki / "server.pem", "key": pki / "server-key.pem", "client_ca": d / "clients.pem",
           "ca": ca}
    k = spawn(seal="file", tls=tls)
    k.wait({501})
    evil = cert(pki, "evil-app1")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{k.addr}/v1/sys/health", verify=ca, cert=evil, timeout=5)
    (d / "clients.pem").write_bytes((pki / "ca.pem").read_bytes() + (pki / "evil.pem").read_bytes())
    os.kill(k.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:
        try:
            r = requests.get(f"{k.addr}/v1/sys/health", verify=ca, cert=evil, timeout=5)
            break
        except requests.exceptions.SSLError:
            assert time.monotonic() < deadline, f"client CA not reloaded:\n{k.logs()}"
            time.sleep(0.1)
    assert r.status_code == 501, r.text
    # The original CA's certificates still work.
    r = requests.get(f"{k.addr}/v1/sys/health", verify=ca, cert=cert(pki, "app1"), timeout=5)
    assert r.status_code == 501
    assert k.proc.poll() is None
