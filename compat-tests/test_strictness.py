"""Issue 13's strictness items, request by request against both targets where OpenBao has the
behaviour (COMPAT_TARGET=bao proves the expectation), kvseal-only where OpenBao has no OKMS API:

* a `+` in a policy path matches one segment, the empty one included (`team/+` allows LIST `team/`);
* an invalid percent-escape anywhere in the path is 400 before any routing, and stores nothing;
* plain HTTP sent to the TLS listener gets Go's exact 400 text answer, then the connection closes;
* OKMS bodies: a JSON array where an object is expected is 400; a 405 carries `Allow`.

Raw requests go through http.client / sockets: `requests` re-quotes `%zz` as `%25zz`.
"""

import http.client as httpclient
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse

import pytest

from conftest import CAT_ARGUMENT, OKMS_ID, ROOT_TOKEN, TARGET, assert_okms_error, bao_binary

PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def _raw(addr, method, path, body=None, token=ROOT_TOKEN, headers=None):
    """One request with `path` sent exactly as written. (status, headers, body text)."""
    u = urllib.parse.urlsplit(addr)
    c = httpclient.HTTPConnection(u.hostname, u.port, timeout=10)
    h = dict(headers or {})
    if token:
        h.setdefault("X-Vault-Token", token)
    data = json.dumps(body) if body is not None else None
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, r.headers, text


# ------------------------------------------------------------------ 1. `+` in a policy path


def _token_with_policy(http, uid, rules):
    name = f"plus-{uid}"
    r = http.put(f"sys/policies/acl/{name}", json={"policy": rules})
    assert r.status_code == 204, r.text
    r = http.post("auth/token/create", json={"policies": [name], "no_default_policy": True})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def test_plus_matches_the_empty_last_segment_of_a_list(http, bao, uid):
    """`secret/metadata/<team>/+` with `list` allows `bao kv list secret/<team>` (LIST
    `secret/metadata/<team>/`, whose last segment is empty), as on Vault and OpenBao."""
    tok = _token_with_policy(
        http, uid, f'path "secret/metadata/{uid}/+" {{ capabilities = ["list"] }}'
    )
    r = http.post(f"secret/data/{uid}/a", json={"data": {"k": "v"}})
    assert r.status_code == 200, r.text

    r = http.list(f"secret/metadata/{uid}/", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["keys"] == ["a"]

    res = bao("kv", "list", "-format=json", "secret/" + uid, token=tok)
    assert res.rc == 0, res.err
    assert res.out == ["a"]

    # One segment, not two, and not the parent: still denied.
    assert http.list("secret/metadata/", token=tok).status_code == 403
    assert http.get(f"secret/metadata/{uid}/a", token=tok).status_code == 403


def test_plus_in_the_middle_matches_one_segment(http, bao, uid):
    tok = _token_with_policy(
        http, uid, f'path "secret/data/{uid}/+/cfg" {{ capabilities = ["read"] }}'
    )
    for p in ("x/cfg", "y/cfg", "x/y/cfg"):
        r = http.post(f"secret/data/{uid}/{p}", json={"data": {"k": p}})
        assert r.status_code == 200, r.text
    for p, want in (("x/cfg", 200), ("y/cfg", 200), ("x/y/cfg", 403), ("x/other", 403)):
        assert http.get(f"secret/data/{uid}/{p}", token=tok).status_code == want, p


# ------------------------------------------------------------------ 2. invalid percent-escapes

ESCAPES = ["%zz", "%4", "%"]


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
def test_invalid_escape_in_a_vault_path_is_400_and_stores_nothing(addr, http, uid, method, escape):
    status, headers, text = _raw(addr, method, f"/v1/secret/data/{uid}{escape}", {"data": {"k": "v"}})
    assert status == 400, text
    if TARGET == "kvseal":
        # Vault's JSON error shape (OpenBao answers Go's plain-text "400 Bad Request").
        assert headers["Content-Type"] == "application/json"
        assert json.loads(text) == {"errors": [f'invalid URL escape "{escape}"']}
    r = http.list("secret/metadata/")
    keys = r.json()["data"]["keys"] if r.status_code == 200 else []
    assert not [k for k in keys if k.startswith(uid)], keys


@pytest.mark.parametrize("path", ["/v1/sys/health%zz", "/v1/sys/unseal%4", "/nowhere%", "/v1%zz"])
def test_invalid_escape_is_400_on_any_path_even_public(addr, path):
    status, _, text = _raw(addr, "GET", path, token=None)
    assert status == 400, text


def test_a_valid_escape_still_decodes(addr, http, uid):
    status, _, text = _raw(addr, "PUT", f"/v1/secret/data/{uid}%41", {"data": {"k": "v"}})
    assert status == 200, text
    r = http.get(f"secret/data/{uid}A")
    assert r.status_code == 200, r.text


@pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")
@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("method,tmpl", [
    ("PUT", "/api/{id}/v2/secret/{uid}{esc}"),
    ("GET", "/api/{id}/v2/secret/{uid}{esc}/version"),
    ("PUT", "/api/{id}/v1/secret/data/{uid}{esc}"),
])
def test_invalid_escape_in_an_okms_path_is_400_and_stores_nothing(addr, uid, method, tmpl, escape):
    path = tmpl.format(id=OKMS_ID, uid=uid, esc=escape)
    body = {"data": {"k": "v"}} if "/v1/" in path else {"version": {"data": {"k": "v"}}}
    u = urllib.parse.urlsplit(addr)
    c = httpclient.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request(method, path, body=json.dumps(body), headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
    r = c.getresponse()

    class R:  # the shape assert_okms_error reads
        status_code = r.status
        headers = r.headers
        text = r.read().decode()

        def json(self):
            return json.loads(self.text)

    c.close()
    b = assert_okms_error(R(), 400, CAT_ARGUMENT)
    quoted = path[path.index("%"):][:3]  # as Go's url.EscapeError quotes it: `%` and two bytes
    assert b["errors"] == [f'invalid URL escape "{quoted}"'], b
    status, _, text = _raw(addr, "GET", f"/v1/secret/metadata/{uid}")
    assert status == 404, text


# ------------------------------------------------------------------ 3. plain HTTP to TLS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory):
    """A dev server of the target with its listener on TLS (`-dev-tls` / `--dev-tls`)."""
    workdir = tmp_path_factory.mktemp("tls")
    port = _free_port()
    env = dict(os.environ, HOME=str(workdir))
    for k in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN"):
        env.pop(k, None)
    if TARGET == "bao":
        cmd = [bao_binary(), "server", "-dev", "-dev-tls", f"-dev-root-token-id={ROOT_TOKEN}",
               f"-dev-listen-address=127.0.0.1:{port}", f"-dev-tls-cert-dir={workdir}"]
    else:
        cmd = [os.environ["KVSEAL_BIN"], "server", "--dev", "--dev-tls",
               f"--dev-root-token-id={ROOT_TOKEN}", f"--dev-listen-address=127.0.0.1:{port}"]
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (workdir / "server.log").read_text(errors="replace")
        try:
            if _https_status(port, "/v1/sys/health") == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, (workdir / "server.log").read_text(errors="replace")
        time.sleep(0.1)
    yield port
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    log.close()


def _https_status(port, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = httpclient.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    c.request("GET", path)
    status = c.getresponse().status
    c.close()
    return status


def _send_plain(port, data: bytes) -> bytes:
    """Sends `data` in clear to the TLS port; returns everything read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


@pytest.mark.parametrize("request_bytes", [
    b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"PUT /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"HEAD /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["get", "get-1.0", "post", "put", "head", "options"])
def test_plain_http_to_the_tls_listener_gets_gos_400(tls_port, request_bytes):
    assert _send_plain(tls_port, request_bytes) == PLAIN_HTTP_ANSWER


def test_the_tls_listener_still_serves_tls_after_plain_http(tls_port):
    assert _send_plain(tls_port, b"GET / HTTP/1.1\r\n\r\n") == PLAIN_HTTP_ANSWER
    assert _https_status(tls_port, "/v1/sys/health") == 200


# ------------------------------------------------------------------ 4. OKMS arrays and 405 Allow

okms_only = pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")


@okms_only
@pytest.mark.parametrize("method,path,body", [
    ("POST", "v2/secret", [{"path": "{uid}", "version": {"data": {"k": "v"}}}]),
    ("POST", "v2/secret", {"path": "{uid}", "version": [{"data": {"k": "v"}}]}),
    ("POST", "v2/secret", {"path": "{uid}", "version": [{"k": "v"}]}),
    ("POST", "v2/secret", {"path": "{uid}", "version": {"data": {"k": "v"}}, "metadata": [True]}),
    ("PUT", "v2/secret/{uid}", {"version": [{"k": "v"}]}),
    ("PUT", "v2/secret/{uid}", [None, {"data": {"k": "v"}}]),
    ("POST", "v2/secret/{uid}/version", [{"k": "v"}]),
], ids=["body", "version", "version-short", "metadata", "put-version", "put-body", "post-version"])
def test_okms_array_where_an_object_is_expected_is_400(okms, uid, method, path, body):
    body = json.loads(json.dumps(body).replace("{uid}", uid))
    r = okms.request(method, path.format(uid=uid), json=body)
    b = assert_okms_error(r, 400, CAT_ARGUMENT)
    assert "expected a JSON object" in b["errors"][0], b
    assert okms.get(f"v2/secret/{uid}").status_code == 404


@okms_only
def test_okms_array_does_not_touch_an_existing_secret(okms, uid):
    r = okms.post("v2/secret", json={"path": uid, "version": {"data": {"k": "v"}}})
    assert r.status_code == 200, r.text
    for m, p, body in (("PUT", f"v2/secret/{uid}", {"version": [{"k": "w"}]}),
                       ("PUT", f"v2/secret/{uid}/version/1", ["deactivated"]),
                       ("POST", f"v2/secret/{uid}/version", [{"k": "w"}])):
        assert_okms_error(okms.request(m, p, json=body), 400, CAT_ARGUMENT)
    g = okms.get(f"v2/secret/{uid}?includeData=true").json()
    assert g["version"]["data"] == {"k": "v"}
    assert g["version"]["state"] == "active"
    assert g["metadata"]["currentVersion"] == 1


@okms_only
@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "v2/secretConfig", "GET, PUT"),
    ("PATCH", "v2/secret", "GET, POST"),
    ("POST", "v2/secret/{uid}", "GET, PUT, DELETE"),
    ("DELETE", "v2/secret/{uid}/version", "GET, POST, PUT"),
    ("DELETE", "v2/secret/{uid}/version/1", "GET, PUT"),
    ("TRACE", "v1/secret/data/{uid}", "GET, POST, PUT, PATCH, DELETE"),
    ("DELETE", "v1/secret/config", "GET, POST, PUT"),
    ("GET", "v1/secret/destroy/{uid}", "POST, PUT"),
])
def test_okms_405_carries_allow(okms, uid, method, path, allow):
    r = okms.request(method, path.format(uid=uid), json={})
    assert_okms_error(r, 405, CAT_ARGUMENT)
    assert r.headers.get("Allow") == allow, r.headers
