"""Response wrapping and cubbyholes (issue 13), through the real `bao` CLI and raw HTTP.

Every test passes against kvseal and against `bao server -dev` (COMPAT_TARGET=bao): the flows
a CI job or a new machine uses to receive a secret ("secret zero"), the error texts, policies
that require wrapping, and cubbyhole isolation between two tokens.
"""

import json
import time

import pytest

from conftest import RFC3339NANO_RE

INVALID = "wrapping token is not valid or does not exist"


def _new_token(http, policies=("default",), **extra) -> str:
    r = http.post("auth/token/create", json={"policies": list(policies), **extra})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def _put_secret(http, key: str, data: dict) -> None:
    r = http.post(f"secret/data/{key}", json={"data": data})
    assert r.status_code == 200, r.text


def _wrap_info(out: dict, creation_path: str, ttl: int) -> dict:
    """The wrapped answer: only `wrap_info`, no data, no auth, no request id."""
    assert out.get("data") is None and out.get("auth") is None, out
    assert out["request_id"] == "", out
    info = out["wrap_info"]
    assert info["creation_path"] == creation_path, info
    assert info["ttl"] == ttl, info
    assert RFC3339NANO_RE.match(info["creation_time"]), info
    assert info["token"] and info["accessor"], info
    return info


def _wrapped_get(http, path: str, ttl="60") -> str:
    r = http.get(path, headers={"X-Vault-Wrap-TTL": ttl})
    assert r.status_code == 200, r.text
    return r.json()["wrap_info"]["token"]


def _unwrap(http, wrapping: str):
    return http.post("sys/wrapping/unwrap", token=wrapping)


def _lookup(http, wrapping: str):
    return http.post("sys/wrapping/lookup", token=None, json={"token": wrapping})


# ---------------------------------------------------------------- the bao CLI


def test_bao_kv_get_wrapped_then_unwrap(bao, http, uid):
    _put_secret(http, f"{uid}/app", {"password": "hunter2"})
    r = bao("kv", "get", "-wrap-ttl=60s", "-format=json", f"secret/{uid}/app")
    assert r.rc == 0, r
    assert "hunter2" not in r.stdout
    info = _wrap_info(r.out, f"secret/data/{uid}/app", 60)
    assert info.get("wrapped_accessor", "") == "", info
    # `bao unwrap <token>`: the token in the body, the root token as the caller.
    u = bao("unwrap", "-format=json", info["token"])
    assert u.rc == 0, u
    assert u.out["data"]["data"] == {"password": "hunter2"}, u.out
    assert u.out["data"]["metadata"]["version"] == 1, u.out
    again = bao("unwrap", "-format=json", info["token"])
    assert again.rc == 2 and INVALID in again.err, again


def test_bao_unwrap_with_the_wrapping_token_as_the_cli_token(bao, http, uid):
    _put_secret(http, f"{uid}/app", {"k": "v"})
    w = bao("kv", "get", "-wrap-ttl=2m", "-format=json", f"secret/{uid}/app")
    assert w.rc == 0, w
    token = w.out["wrap_info"]["token"]
    u = bao("unwrap", "-format=json", token=token)
    assert u.rc == 0, u
    assert u.out["data"]["data"] == {"k": "v"}, u.out


def test_bao_token_create_wrapped(bao, http):
    r = bao("token", "create", "-wrap-ttl=60s", "-policy=default", "-format=json")
    assert r.rc == 0, r
    info = _wrap_info(r.out, "auth/token/create", 60)
    u = bao("unwrap", "-format=json", info["token"])
    assert u.rc == 0, u
    auth = u.out["auth"]
    assert info["wrapped_accessor"] == auth["accessor"], (info, auth)
    assert auth["policies"] == ["default"], auth
    me = bao("token", "lookup", "-format=json", token=auth["client_token"])
    assert me.rc == 0 and me.out["data"]["policies"] == ["default"], me


def test_bao_write_sys_wrapping_wrap(bao, http):
    r = bao("write", "-wrap-ttl=5m", "-format=json", "sys/wrapping/wrap", "k=v", "other=x")
    assert r.rc == 0, r
    info = _wrap_info(r.out, "sys/wrapping/wrap", 300)
    u = bao("unwrap", "-format=json", info["token"])
    assert u.rc == 0 and u.out["data"] == {"k": "v", "other": "x"}, u
    # Without -wrap-ttl the CLI wraps this one path for 5m by itself (api.DefaultWrappingLookupFunc).
    r = bao("write", "-format=json", "sys/wrapping/wrap", "k=v")
    assert r.rc == 0, r
    _wrap_info(r.out, "sys/wrapping/wrap", 300)
    # Without the header the endpoint refuses.
    r = http.post("sys/wrapping/wrap", json={"k": "v"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == ["endpoint requires response wrapping to be used"], r.text


def test_bao_cubbyhole_isolation_between_two_tokens(bao, http, uid):
    a, b = _new_token(http), _new_token(http)
    assert bao("write", f"cubbyhole/{uid}/cfg", "owner=a", "n=1", token=a).rc == 0
    r = bao("read", "-format=json", f"cubbyhole/{uid}/cfg", token=a)
    assert r.rc == 0 and r.out["data"] == {"owner": "a", "n": "1"}, r
    r = bao("list", "-format=json", "cubbyhole/", token=a)
    assert r.rc == 0 and r.out == [f"{uid}/"], r
    r = bao("list", "-format=json", f"cubbyhole/{uid}", token=a)
    assert r.rc == 0 and r.out == ["cfg"], r
    # b sees nothing of a's, and its own entry at the same path is its own.
    r = bao("read", f"cubbyhole/{uid}/cfg", token=b)
    assert r.rc == 2 and f"No value found at cubbyhole/{uid}/cfg" in r.err, r
    r = bao("list", "cubbyhole/", token=b)
    assert r.rc == 2, r
    assert bao("write", f"cubbyhole/{uid}/cfg", "owner=b", token=b).rc == 0
    assert bao("delete", f"cubbyhole/{uid}/cfg", token=b).rc == 0
    r = bao("read", "-format=json", f"cubbyhole/{uid}/cfg", token=a)
    assert r.rc == 0 and r.out["data"]["owner"] == "a", r
    # Revoked, a's cubbyhole is gone with it.
    assert bao("token", "revoke", a).rc == 0
    assert bao("read", f"cubbyhole/{uid}/cfg", token=a).rc == 2


def test_bao_secrets_list_shows_cubbyhole(bao):
    r = bao("secrets", "list", "-format=json")
    assert r.rc == 0, r
    c = r.out["cubbyhole/"]
    assert c["type"] == "cubbyhole" and c["description"] == "per-token private secret storage", c
    assert c["local"] is True, c
    r = bao("secrets", "disable", "cubbyhole")
    assert r.rc == 2 and 'cannot unmount "cubbyhole/"' in r.err, r


# ---------------------------------------------------------------- raw HTTP


@pytest.mark.parametrize(
    "ttl,status,want",
    [
        ("60", 200, 60),
        ("60s", 200, 60),
        ("1m", 200, 60),
        ("1d", 200, 86400),
        ("abc", 400, 'error parsing X-Vault-Wrap-TTL header: time: invalid duration "abc"'),
        ("-5", 400, "error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative"),
    ],
)
def test_wrap_ttl_header_values(http, uid, ttl, status, want):
    _put_secret(http, f"{uid}/x", {"password": "hunter2"})
    r = http.get(f"secret/data/{uid}/x", headers={"X-Vault-Wrap-TTL": ttl})
    assert r.status_code == status, r.text
    assert "hunter2" not in r.text
    if status == 200:
        _wrap_info(r.json(), f"secret/data/{uid}/x", want)
    else:
        assert r.json()["errors"] == [want], r.text


def test_wrap_ttl_zero_is_no_wrapping(http, uid):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    r = http.get(f"secret/data/{uid}/x", headers={"X-Vault-Wrap-TTL": "0"})
    assert r.status_code == 200 and r.json()["data"]["data"] == {"a": "b"}, r.text


def test_errors_and_204_are_not_wrapped(http, uid):
    r = http.get(f"secret/data/{uid}/missing", headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 404 and "wrap_info" not in r.json(), r.text
    policy = 'path "x" { capabilities = ["read"] }'
    r = http.put(f"sys/policies/acl/{uid}", json={"policy": policy}, headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 204 and r.text == "", r.text


def test_unwrap_answers_the_original_reply_once(http, uid):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    plain = http.get(f"secret/data/{uid}/x").json()
    w = _wrapped_get(http, f"secret/data/{uid}/x")
    r = _unwrap(http, w)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == plain["data"] and body["wrap_info"] is None, body
    assert body["request_id"] and body["request_id"] != plain["request_id"], body
    for again in (_unwrap(http, w), _lookup(http, w)):
        assert again.status_code == 400 and again.json()["errors"] == [INVALID], again.text


@pytest.mark.parametrize(
    "why,header,in_body,status,error",
    [
        ("unknown header token", "nope", False, 400, INVALID),
        ("a client token is no wrapping token", "root", False, 400, INVALID),
        ("unknown body token", "root", "nope", 400, INVALID),
        ("valid body token, bad client token", "nope", True, 403, None),
        ("no token at all", None, False, 403, None),
    ],
)
def test_unwrap_refusals(http, uid, why, header, in_body, status, error):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    w = _wrapped_get(http, f"secret/data/{uid}/x")
    body = {"token": w if in_body is True else in_body} if in_body else None
    r = http.post("sys/wrapping/unwrap", token=header, json=body)
    assert r.status_code == status, (why, r.text)
    if error:
        assert r.json()["errors"] == [error], (why, r.text)
    assert _lookup(http, w).status_code == 200, f"{why}: the wrapping token was used up"


@pytest.mark.parametrize("method,path", [("GET", "secret/data/{uid}/x"), ("GET", "auth/token/lookup-self"),
                                         ("POST", "sys/wrapping/rewrap")])
def test_a_wrapping_token_used_elsewhere_is_refused_and_burnt(http, uid, method, path):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    w = _wrapped_get(http, f"secret/data/{uid}/x")
    r = http.request(method, path.format(uid=uid), token=w)
    assert r.status_code == 403, r.text
    assert _lookup(http, w).status_code == 400
    assert _unwrap(http, w).status_code == 400


def test_lookup_needs_no_token_and_uses_nothing(http, uid):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    w = _wrapped_get(http, f"secret/data/{uid}/x", ttl="90")
    for r in (_lookup(http, w), http.get("sys/wrapping/lookup", token=w),
              http.get(f"sys/wrapping/lookup?token={w}", token=None)):
        assert r.status_code == 200, r.text
        d = r.json()["data"]
        assert set(d) == {"creation_path", "creation_time", "creation_ttl"}, d
        assert d["creation_path"] == f"secret/data/{uid}/x" and d["creation_ttl"] == 90, d
        assert RFC3339NANO_RE.match(d["creation_time"]), d
    assert _unwrap(http, w).status_code == 200
    assert http.post("sys/wrapping/lookup", token=None).status_code == 403


def test_rewrap_keeps_path_and_ttl(http, uid):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    w = _wrapped_get(http, f"secret/data/{uid}/x", ttl="120")
    r = http.post("sys/wrapping/rewrap", json={"token": w})
    assert r.status_code == 200, r.text
    info = _wrap_info(r.json(), f"secret/data/{uid}/x", 120)
    assert info["token"] != w
    assert _lookup(http, w).status_code == 400
    u = _unwrap(http, info["token"])
    assert u.status_code == 200 and u.json()["data"]["data"] == {"a": "b"}, u.text
    # The default policy grants wrap, lookup and unwrap, not rewrap.
    w2 = _wrapped_get(http, f"secret/data/{uid}/x")
    r = http.post("sys/wrapping/rewrap", token=_new_token(http), json={"token": w2})
    assert r.status_code == 403, r.text
    assert _lookup(http, w2).status_code == 200


def test_wrapping_token_expires(http, uid):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    w = _wrapped_get(http, f"secret/data/{uid}/x", ttl="1s")
    time.sleep(2.5)
    r = _unwrap(http, w)
    assert r.status_code == 400 and r.json()["errors"] == [INVALID], r.text


def test_policy_min_and_max_wrapping_ttl(http, uid):
    _put_secret(http, f"{uid}/x", {"a": "b"})
    policy = (f'path "secret/data/{uid}/x" {{\n capabilities = ["read"]\n'
              f' min_wrapping_ttl = "30s"\n max_wrapping_ttl = "2m"\n}}')
    assert http.put(f"sys/policies/acl/{uid}", json={"policy": policy}).status_code == 204
    tok = _new_token(http, policies=[uid])
    for ttl, status in [(None, 403), ("10", 403), ("300", 403), ("30", 200), ("2m", 200)]:
        headers = {"X-Vault-Wrap-TTL": ttl} if ttl else {}
        r = http.get(f"secret/data/{uid}/x", token=tok, headers=headers)
        assert r.status_code == status, (ttl, r.text)
        if status == 403:
            assert "permission denied" in r.json()["errors"][0], r.text
        else:
            assert _unwrap(http, r.json()["wrap_info"]["token"]).status_code == 200
    bad = 'path "a" {\n capabilities = ["read"]\n min_wrapping_ttl = "2m"\n max_wrapping_ttl = "1m"\n}'
    r = http.put(f"sys/policies/acl/{uid}-bad", json={"policy": bad})
    assert r.status_code == 400, r.text
    assert "max_wrapping_ttl cannot be less than min_wrapping_ttl" in r.json()["errors"][0], r.text


def test_response_wrapping_policy_is_built_in(http):
    r = http.put("sys/policies/acl/response-wrapping", json={"policy": 'path "x" { capabilities = ["read"] }'})
    assert r.status_code == 400 and r.json()["errors"] == ['cannot update "response-wrapping" policy'], r.text
    r = http.delete("sys/policies/acl/response-wrapping")
    assert r.status_code == 400 and r.json()["errors"] == ['cannot delete "response-wrapping" policy'], r.text
    r = http.post("auth/token/create", json={"policies": ["response-wrapping"]})
    assert r.status_code == 400 and r.json()["errors"] == ['cannot assign policy "response-wrapping"'], r.text
    assert "response-wrapping" not in http.list("sys/policies/acl").json()["data"]["keys"]


def test_cubbyhole_raw(http, uid):
    tok = _new_token(http)
    assert http.post(f"cubbyhole/{uid}/a", token=tok, json={"k": "v", "n": 1}).status_code == 204
    r = http.get(f"cubbyhole/{uid}/a", token=tok)
    assert r.status_code == 200 and r.json()["data"] == {"k": "v", "n": 1}, r.text
    assert http.get(f"cubbyhole/{uid}/a").status_code == 404, "not even root reads another's cubbyhole"
    r = http.post(f"cubbyhole/{uid}/", token=tok, json={"a": "b"})
    assert r.status_code == 400 and r.json()["errors"] == ["cannot write to a path ending in '/'"], r.text
    r = http.get(f"cubbyhole/{uid}/a", token=tok, headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 200, r.text
    u = _unwrap(http, r.json()["wrap_info"]["token"])
    assert u.json()["data"] == {"k": "v", "n": 1}, u.text


def test_hvac_wrapped_secret(client, http, uid):
    """What hvac sends: `wrap_ttl` on a read through `adapter.get`, then `sys.unwrap`; and
    `sys.wrap` (the header on `sys/wrapping/wrap`)."""
    _put_secret(http, f"{uid}/x", {"a": "b"})
    r = client.adapter.get(f"/v1/secret/data/{uid}/x", wrap_ttl="60s")
    token = r["wrap_info"]["token"]
    looked = client.adapter.post("/v1/sys/wrapping/lookup", json={"token": token})
    assert looked["data"]["creation_path"] == f"secret/data/{uid}/x", looked
    un = client.sys.unwrap(token=token)
    assert un["data"]["data"] == {"a": "b"}, un
    assert json.dumps(un).count("wrap_info") == 1
    w = client.sys.wrap(payload={"k": "v"}, ttl=120)
    assert w["wrap_info"]["ttl"] == 120, w
    assert client.sys.unwrap(token=w["wrap_info"]["token"])["data"] == {"k": "v"}
