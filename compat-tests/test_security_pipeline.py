"""Findings of the security review that the request pipeline closes, replayed with raw HTTP.

Run against kvseal and against `bao server -dev` (COMPAT_TARGET=bao): where both behave alike the
expectation is shared; where kvseal is deliberately stricter than OpenBao, the table says what
each answers and why. OKMS cases run against kvseal only (OpenBao has no OKMS API).
"""

import uuid

import pytest

from conftest import TARGET, assert_okms_error, wait_kv2_ready

CAT_AUTHORIZATION = 4


def make_token(http, name: str, policy: str) -> str:
    r = http.put(f"sys/policies/acl/{name}", json={"policy": policy})
    assert r.status_code == 204, r.text
    r = http.post("auth/token/create", json={"policies": [name], "no_default_policy": False})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def enable_kv2(http, mount: str) -> None:
    r = http.post(f"sys/mounts/{mount}", json={"type": "kv", "options": {"version": "2"}})
    assert r.status_code == 204, r.text
    wait_kv2_ready(http, mount)


def mounts(http) -> dict:
    r = http.get("sys/mounts")
    assert r.status_code == 200, r.text
    return r.json()["data"]


# --------------------------------------------------------------- finding 8: trailing slash


def test_a_trailing_slash_does_not_escape_a_deny_on_the_mount(http):
    """`DELETE sys/mounts/x/` is the same operation as `DELETE sys/mounts/x` to the handler, so the
    ACL sees the same path. OpenBao checks the ACL on the raw path and deletes the mount (204);
    kvseal canonicalises first and refuses (403): deliberately stricter."""
    mount = "m" + uuid.uuid4().hex[:10]
    enable_kv2(http, mount)
    tok = make_token(
        http,
        "p8-" + mount,
        'path "sys/mounts/*" { capabilities = ["create","read","update","delete","list","sudo"] }\n'
        f'path "sys/mounts/{mount}" {{ capabilities = ["deny"] }}',
    )
    cases = [
        (f"sys/mounts/{mount}", 403),
        (f"sys/mounts/{mount}/", 403 if TARGET == "kvseal" else 204),
    ]
    for path, want in cases:
        r = http.delete(path, token=tok)
        assert r.status_code == want, (path, r.status_code, r.text)
    if TARGET == "kvseal":
        assert f"{mount}/" in mounts(http), "the denied mount was deleted"


def test_a_list_still_uses_the_list_resolution(http):
    """Only a LIST takes the exact rule without its `/`: `list` on `sys/policies/acl` lists
    `sys/policies/acl/` on both servers."""
    tok = make_token(
        http,
        "p8list-" + uuid.uuid4().hex[:8],
        'path "sys/policies/acl" { capabilities = ["list"] }',
    )
    r = http.list("sys/policies/acl", token=tok)
    assert r.status_code == 200, r.text
    assert "default" in r.json()["data"]["keys"]


# --------------------------------------------------------------- finding 11: policy name case


def test_policy_name_case_does_not_escape_a_deny(http):
    name = "adm" + uuid.uuid4().hex[:8]
    tok = make_token(
        http,
        "p11-" + name,
        'path "sys/policies/acl/*" { capabilities = ["create","read","update","delete","list"] }\n'
        f'path "sys/policies/acl/{name}" {{ capabilities = ["deny"] }}',
    )
    body = {"policy": 'path "*" { capabilities = ["sudo","read","create","update","delete","list"] }'}
    for spelled in [name, name.upper(), name[:1].upper() + name[1:]]:
        r = http.put(f"sys/policies/acl/{spelled}", token=tok, json=body)
        assert r.status_code == 403, (spelled, r.status_code, r.text)
        r = http.put(f"sys/policy/{spelled}", token=tok, json=body)
        assert r.status_code == 403, (spelled, r.status_code, r.text)
    assert http.get(f"sys/policies/acl/{name}").status_code == 404


# --------------------------------------------------------------- finding 17: ignored headers


@pytest.mark.parametrize(
    "namespace,path,status,errors",
    [
        ("", "secret/data/nothere-ns", 404, []),
        ("root", "secret/data/nothere-ns", 404, []),
        ("/", "secret/data/nothere-ns", 404, []),
        ("team-a", "secret/data/nothere-ns", 404, ["namespace not found"]),
        ("team-a/", "sys/mounts", 404, ["namespace not found"]),
        ("team-a", "sys/health", 400, ["operation unavailable in namespaces"]),
    ],
)
def test_namespace_header(http, namespace, path, status, errors):
    r = http.get(path, headers={"X-Vault-Namespace": namespace})
    assert r.status_code == status, r.text
    assert r.json()["errors"] == errors


def test_a_namespace_write_stores_nothing(http):
    key = "ns-" + uuid.uuid4().hex[:8]
    r = http.post(f"secret/data/{key}", headers={"X-Vault-Namespace": "team-a"}, json={"data": {"a": "1"}})
    assert r.status_code == 404, r.text
    assert http.get(f"secret/data/{key}").status_code == 404


def test_wrap_ttl_header(http):
    """A caller that asks for response wrapping must never get the secret in clear: both wrap (200
    with `wrap_info` and no data). A TTL that does not parse is 400 on both; `0` asks for no
    wrapping on both."""
    key = "wrap-" + uuid.uuid4().hex[:8]
    r = http.post(f"secret/data/{key}", json={"data": {"password": "hunter2"}})
    assert r.status_code == 200, r.text
    r = http.get(f"secret/data/{key}", headers={"X-Vault-Wrap-TTL": "abc"})
    assert r.status_code == 400, r.text
    assert "hunter2" not in r.text
    r = http.get(f"secret/data/{key}", headers={"X-Vault-Wrap-TTL": "0"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["data"] == {"password": "hunter2"}
    r = http.get(f"secret/data/{key}", headers={"X-Vault-Wrap-TTL": "60s"})
    assert "hunter2" not in r.text
    assert r.status_code == 200, r.text
    assert r.json()["data"] is None
    assert r.json()["wrap_info"]["creation_path"] == f"secret/data/{key}"


# --------------------------------------------------------------- findings 6 and 7: OKMS


def test_okms_put_with_an_empty_body_needs_a_capability(okms, http):
    """`PUT /v2/secret/{path}` with `{}` changes nothing and answers the metadata: it once did so
    for any token. A token without `read` on the metadata gets 403 whether the secret exists."""
    base = "f6-" + uuid.uuid4().hex[:8]
    r = okms.post("v2/secret", json={"path": f"{base}/db", "version": {"data": {"a": "1"}}})
    assert r.status_code == 200, r.text
    tok = make_token(http, "p6-" + base, f'path "secret/data/{base}/*" {{ capabilities = ["read"] }}')
    for path in [f"{base}/db", f"{base}/missing"]:
        r = okms.put(f"v2/secret/{path.replace('/', '%2F')}", token=tok, json={})
        assert_okms_error(r, 403, CAT_AUTHORIZATION)
    reader = make_token(http, "p6r-" + base, f'path "secret/metadata/{base}/*" {{ capabilities = ["read"] }}')
    r = okms.put(f"v2/secret/{base}%2Fdb", token=reader, json={})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == f"{base}/db"


def okms_list_all(okms, tok, prefix: str) -> list:
    """Every path under `prefix` that `GET /v2/secret` shows `tok`, page by page."""
    seen, cursor = [], None
    for _ in range(1000):
        headers = {"X-Pagination-Size": "10"}
        if cursor:
            headers["X-Pagination-Cursor"] = cursor
        r = okms.get("v2/secret", token=tok, headers=headers)
        assert r.status_code == 200, r.text
        seen += [e["path"] for e in r.json() if e["path"].startswith(prefix)]
        cursor = r.headers.get("X-Pagination-Cursor-Next")
        if not cursor:
            return seen
    raise AssertionError("the listing never ended")


def test_okms_flat_list_shows_only_what_the_vault_api_would(okms, http):
    """`GET /v2/secret` lists an entry only when the token could reach it through the Vault API:
    `list` on every folder above it and `read` on its metadata; a deny on a subtree hides it."""
    base = "f7-" + uuid.uuid4().hex[:8]
    paths = [f"{base}/app/a", f"{base}/app/hidden/b", f"{base}/other/c", f"{base}/app/noread"]
    for p in paths:
        r = okms.post("v2/secret", json={"path": p, "version": {"data": {"v": "1"}}})
        assert r.status_code == 200, r.text
    tok = make_token(
        http,
        "p7-" + base,
        'path "secret/metadata/" { capabilities = ["list"] }\n'
        f'path "secret/metadata/{base}/*" {{ capabilities = ["list", "read"] }}\n'
        f'path "secret/metadata/{base}/app/hidden/*" {{ capabilities = ["deny"] }}\n'
        f'path "secret/metadata/{base}/other/*" {{ capabilities = ["deny"] }}\n'
        f'path "secret/metadata/{base}/app/noread" {{ capabilities = ["list"] }}',
    )
    assert okms_list_all(okms, tok, base) == [f"{base}/app/a"]
    # Root sees them all.
    assert okms_list_all(okms, "default", base) == sorted(paths)
    # Without `list` on the root folder, nothing.
    nolist = make_token(http, "p7n-" + base, f'path "secret/metadata/{base}/*" {{ capabilities = ["list","read"] }}')
    assert_okms_error(okms.get("v2/secret", token=nolist), 403, CAT_AUTHORIZATION)
