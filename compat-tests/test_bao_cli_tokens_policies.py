"""The real `bao` CLI: token create/lookup/renew/revoke/capabilities,
policy write/read/list/delete, `bao login` with a limited token, and the
`kv patch` fallback to read+write when the token lacks `patch`.

Contract: ../shared/spec/vault-kv2-wire.md §2 (CLI sequences) and §3.
`bao login` stores the token in $HOME/.vault-token: those tests run with a
HOME of their own (tmp_path) so the session's CLI home stays clean.
"""

import json

import pytest


def _policy_file(tmp_path, name: str, text: str):
    p = tmp_path / f"{name}.hcl"
    p.write_text(text)
    return p


def _app_hcl(uid: str, caps=("create", "read", "update", "delete", "list")) -> str:
    return (
        f'path "secret/data/{uid}/app/*" {{\n'
        f"  capabilities = {json.dumps(list(caps))}\n"
        "}\n"
        f'path "secret/metadata/{uid}/app/*" {{\n'
        '  capabilities = ["list"]\n'
        "}\n"
    )


@pytest.fixture
def app_policy(bao, uid, tmp_path):
    name = f"{uid}-cli"
    r = bao("policy", "write", name, _policy_file(tmp_path, name, _app_hcl(uid)))
    assert r.rc == 0, r
    yield name
    bao("policy", "delete", name)


def _create_token(bao, *flags) -> dict:
    r = bao("token", "create", "-format=json", *flags)
    assert r.rc == 0, r
    assert isinstance(r.out, dict), r
    return r.out["auth"]


# ---------------------------------------------------------------- policies


def test_policy_write_read_list_delete(bao, uid, tmp_path):
    name = f"{uid}-pol"
    hcl = _app_hcl(uid)
    r = bao("policy", "write", name, _policy_file(tmp_path, name, hcl))
    assert r.rc == 0, r
    assert f"Success! Uploaded policy: {name}" in r.stdout

    r = bao("policy", "read", name)
    assert r.rc == 0, r
    assert r.stdout.strip() == hcl.strip()
    r = bao("policy", "read", "-format=json", name)
    assert r.rc == 0, r
    assert r.out["policy"] == hcl, r.out

    r = bao("policy", "list")
    assert r.rc == 0, r
    lines = r.stdout.split()
    assert name in lines and "default" in lines and "root" in lines
    r = bao("policy", "list", "-format=json")
    assert r.rc == 0 and isinstance(r.out, list), r
    assert {name, "default", "root"} <= set(r.out)

    # overwrite from stdin
    hcl2 = f'path "secret/data/{uid}/only" {{ capabilities = ["read"] }}\n'
    r = bao("policy", "write", name, "-", stdin=hcl2)
    assert r.rc == 0, r
    assert bao("policy", "read", name).stdout.strip() == hcl2.strip()

    r = bao("policy", "delete", name)
    assert r.rc == 0, r
    assert f"Success! Deleted policy: {name}" in r.stdout
    r = bao("policy", "read", name)
    assert r.rc == 2, r
    assert f"No policy named: {name}" in r.err
    assert name not in bao("policy", "list", "-format=json").out


def test_policy_write_mixed_case_and_reserved(bao, uid, tmp_path):
    mixed = f"{uid}-CamelCase"
    r = bao("policy", "write", mixed, _policy_file(tmp_path, "m", _app_hcl(uid)))
    assert r.rc == 0, r
    try:
        assert mixed.lower() in bao("policy", "list", "-format=json").out
        assert bao("policy", "read", mixed.lower()).rc == 0
    finally:
        bao("policy", "delete", mixed.lower())

    r = bao("policy", "write", "root", _policy_file(tmp_path, "r", _app_hcl(uid)))
    assert r.rc == 2, r
    assert 'cannot update "root" policy' in r.err
    r = bao("policy", "delete", "default")
    assert r.rc == 2, r
    assert "cannot delete" in r.err


def test_policy_write_bad_hcl_fails(bao, uid, tmp_path):
    r = bao("policy", "write", f"{uid}-bad", _policy_file(tmp_path, "bad", 'path "x" { capabilities = '))
    assert r.rc != 0, r
    assert "Failed to parse policy" in r.err or "failed to parse policy" in r.err, r.err
    r = bao("policy", "read", f"{uid}-bad")
    assert r.rc == 2


# ---------------------------------------------------------------- tokens


def test_token_create_lookup_renew_revoke(bao, app_policy):
    a = _create_token(bao, f"-policy={app_policy}", "-ttl=1h", "-display-name=cli", "-metadata=team=blue")
    tok, acc = a["client_token"], a["accessor"]
    assert isinstance(tok, str) and tok
    assert a["policies"] == sorted([app_policy, "default"])
    assert a["token_policies"] == sorted([app_policy, "default"])
    assert a["lease_duration"] == 3600
    assert a["renewable"] is True
    assert a["orphan"] is False
    assert a["metadata"] == {"team": "blue"}

    # lookup by token (POST auth/token/lookup)
    r = bao("token", "lookup", "-format=json", tok)
    assert r.rc == 0, r
    d = r.out["data"]
    assert d["id"] == tok and d["accessor"] == acc
    assert d["policies"] == sorted([app_policy, "default"])
    assert d["display_name"] == "token-cli"
    assert d["meta"] == {"team": "blue"}
    assert 3590 <= d["ttl"] <= 3600 and d["creation_ttl"] == 3600
    assert d["type"] == "service"

    # lookup-self with the token itself
    r = bao("token", "lookup", "-format=json", token=tok)
    assert r.rc == 0 and r.out["data"]["id"] == tok, r

    # lookup by accessor: table output, id not revealed
    r = bao("token", "lookup", "-accessor", acc)
    assert r.rc == 0, r
    rows = dict(line.split(None, 1) for line in r.stdout.splitlines()[2:] if len(line.split(None, 1)) == 2)
    assert rows["accessor"] == acc
    assert rows["id"] == "n/a"
    assert rows["policies"] == f"[{' '.join(sorted([app_policy, 'default']))}]"
    assert rows["type"] == "service"
    r = bao("token", "lookup", "-format=json", "-accessor", acc)
    assert r.rc == 0 and r.out["data"]["accessor"] == acc and r.out["data"]["id"] == "", r

    # renew
    r = bao("token", "renew", tok)
    assert r.rc == 0, r
    assert tok in r.stdout
    r = bao("token", "renew", "-increment=2h", "-format=json", tok)
    assert r.rc == 0, r
    assert r.out["auth"]["client_token"] == tok
    assert r.out["auth"]["lease_duration"] == 7200
    assert 7190 <= bao("token", "lookup", "-format=json", tok).out["data"]["ttl"] <= 7200

    # capabilities
    r = bao("token", "capabilities", tok, "secret/data/x/y")
    assert r.rc == 0 and r.stdout.strip() == "deny", r
    r = bao("token", "capabilities", "-format=json", tok, "sys/mounts")
    assert r.rc == 0 and r.out == ["deny"], r

    # revoke
    r = bao("token", "revoke", tok)
    assert r.rc == 0, r
    assert "Success! Revoked token (if it existed)" in r.stdout
    r = bao("token", "lookup", tok)
    assert r.rc == 2, r
    assert "bad token" in r.err or "permission denied" in r.err, r.err
    r = bao("token", "lookup", token=tok)
    assert r.rc == 2 and "permission denied" in r.err, r


def test_token_capabilities_limited(bao, uid, app_policy):
    tok = _create_token(bao, f"-policy={app_policy}", "-ttl=1h")["client_token"]
    r = bao("token", "capabilities", tok, f"secret/data/{uid}/app/x")
    assert r.rc == 0, r
    assert r.stdout.strip() == "create, delete, list, read, update"
    r = bao("token", "capabilities", "-format=json", tok, f"secret/metadata/{uid}/app/x")
    assert r.rc == 0 and r.out == ["list"], r
    # no token argument: capabilities-self of the caller
    r = bao("token", "capabilities", f"secret/data/{uid}/app/x", token=tok)
    assert r.rc == 0 and r.stdout.strip() == "create, delete, list, read, update", r
    r = bao("token", "capabilities", f"secret/data/{uid}/x")
    assert r.rc == 0 and r.stdout.strip() == "root", r


def test_token_revoke_accessor_self_and_orphan(bao, app_policy):
    a = _create_token(bao, f"-policy={app_policy}", "-ttl=1h")
    r = bao("token", "revoke", "-accessor", a["accessor"])
    assert r.rc == 0, r
    assert bao("token", "lookup", token=a["client_token"]).rc == 2

    b = _create_token(bao, f"-policy={app_policy}", "-ttl=1h")
    r = bao("token", "revoke", "-self", token=b["client_token"])
    assert r.rc == 0, r
    assert bao("token", "lookup", token=b["client_token"]).rc == 2

    o = _create_token(bao, f"-policy={app_policy}", "-ttl=1h", "-orphan")
    assert o["orphan"] is True
    assert bao("token", "lookup", "-format=json", o["client_token"]).out["data"]["orphan"] is True

    u = _create_token(bao, f"-policy={app_policy}", "-ttl=1h", "-use-limit=3", "-renewable=false")
    assert u["renewable"] is False
    d = bao("token", "lookup", "-format=json", u["client_token"]).out["data"]
    assert d["num_uses"] == 3 and d["renewable"] is False
    r = bao("token", "renew", u["client_token"])
    assert r.rc == 2, r


def test_token_create_with_role(bao, uid, app_policy):
    role = f"{uid}-role"
    r = bao("write", f"auth/token/roles/{role}", f"allowed_policies={app_policy}", "orphan=true")
    assert r.rc == 0, r
    try:
        r = bao("read", "-format=json", f"auth/token/roles/{role}")
        assert r.rc == 0, r
        assert r.out["data"]["allowed_policies"] == [app_policy]
        assert r.out["data"]["orphan"] is True
        r = bao("list", "-format=json", "auth/token/roles")
        assert r.rc == 0 and role in r.out, r
        a = _create_token(bao, f"-role={role}", f"-policy={app_policy}", "-ttl=1h")
        assert a["orphan"] is True
        d = bao("token", "lookup", "-format=json", a["client_token"]).out["data"]
        assert d["path"] == f"auth/token/create/{role}"
    finally:
        assert bao("delete", f"auth/token/roles/{role}").rc == 0
    r = bao("read", f"auth/token/roles/{role}")
    assert r.rc == 2, r


# ---------------------------------------------------------------- login + kv with a limited token


def test_login_then_kv_with_limited_token(bao, uid, app_policy, tmp_path):
    assert bao("kv", "put", f"secret/{uid}/app/x", "a=1").rc == 0
    assert bao("kv", "put", f"secret/{uid}/other", "s=x").rc == 0
    tok = _create_token(bao, f"-policy={app_policy}", "-ttl=1h")["client_token"]

    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}

    r = bao("login", tok, env=env, token=None)
    assert r.rc == 0, r
    assert "Success! You are now authenticated." in r.stdout
    assert (home / ".vault-token").read_text().strip() == tok

    def as_user(*args, **kw):
        return bao(*args, env=env, token=None, **kw)

    r = as_user("token", "lookup", "-format=json")
    assert r.rc == 0 and r.out["data"]["id"] == tok, r

    r = as_user("kv", "get", "-format=json", f"secret/{uid}/app/x")
    assert r.rc == 0, r
    assert r.out["data"]["data"] == {"a": "1"}
    assert r.out["data"]["metadata"]["version"] == 1

    r = as_user("kv", "put", "-format=json", f"secret/{uid}/app/y", "b=2")
    assert r.rc == 0 and r.out["data"]["version"] == 1, r
    r = as_user("kv", "list", "-format=json", f"secret/{uid}/app")
    assert r.rc == 0 and r.out == ["x", "y"], r

    r = as_user("kv", "get", f"secret/{uid}/other")
    assert r.rc == 2, r
    assert "permission denied" in r.err
    assert "403" in r.err
    r = as_user("kv", "put", f"secret/{uid}/other", "s=y")
    assert r.rc == 2 and "permission denied" in r.err, r
    r = as_user("kv", "metadata", "get", f"secret/{uid}/app/x")
    assert r.rc == 2 and "permission denied" in r.err, r
    r = as_user("secrets", "list")
    assert r.rc == 2 and "permission denied" in r.err, r
    r = as_user("policy", "write", f"{uid}-evil", "-", stdin='path "*" { capabilities = ["sudo"] }')
    assert r.rc == 2 and "permission denied" in r.err, r

    r = as_user("kv", "delete", f"secret/{uid}/app/y")
    assert r.rc == 0, r
    # root still sees the untouched secret
    r = bao("kv", "get", "-format=json", f"secret/{uid}/other")
    assert r.rc == 0 and r.out["data"]["data"] == {"s": "x"}, r

    # revoke the stored token: the next call fails
    assert bao("token", "revoke", tok).rc == 0
    r = as_user("kv", "get", f"secret/{uid}/app/x")
    assert r.rc == 2 and "permission denied" in r.err, r


def test_login_with_root_and_json_output(bao, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = bao("login", "-format=json", "root", env={"HOME": str(home)}, token=None)
    assert r.rc == 0, r
    assert r.out["auth"]["client_token"] == "root"
    assert r.out["auth"]["policies"] == ["root"]
    r = bao("token", "lookup", "-format=json", env={"HOME": str(home)}, token=None)
    assert r.rc == 0 and r.out["data"]["policies"] == ["root"], r


@pytest.mark.parametrize("caps,expect", [
    (("read", "update"), "rw-fallback"),
    (("read", "update", "patch"), "patch"),
    (("read", "patch"), "patch"),
    (("read",), "fail"),
])
def test_kv_patch_fallback(bao, uid, tmp_path, caps, expect):
    name = f"{uid}-patch"
    hcl = f'path "secret/data/{uid}/*" {{ capabilities = {json.dumps(list(caps))} }}\n'
    assert bao("policy", "write", name, _policy_file(tmp_path, name, hcl)).rc == 0
    try:
        assert bao("kv", "put", f"secret/{uid}/p", "a=1").rc == 0
        tok = _create_token(bao, f"-policy={name}", "-ttl=1h")["client_token"]
        r = bao("kv", "patch", f"secret/{uid}/p", "b=2", token=tok)
        got = bao("kv", "get", "-format=json", f"secret/{uid}/p").out["data"]
        if expect == "fail":
            assert r.rc == 2, r
            assert "permission denied" in r.err
            assert got["data"] == {"a": "1"} and got["metadata"]["version"] == 1
            return
        assert r.rc == 0, r
        assert got["data"] == {"a": "1", "b": "2"}
        assert got["metadata"]["version"] == 2
        if expect == "rw-fallback":
            # the CLI got 403 on PATCH, warned, then did GET + PUT(cas)
            assert 'add the "patch" capability' in r.err + r.stdout, (r.err, r.stdout)
        else:
            assert 'add the "patch" capability' not in r.err + r.stdout, (r.err, r.stdout)
        # -method=patch never falls back
        r = bao("kv", "patch", "-method=patch", f"secret/{uid}/p", "c=3", token=tok)
        if "patch" in caps:
            assert r.rc == 0, r
        else:
            assert r.rc == 2 and "permission denied" in r.err, r
    finally:
        bao("policy", "delete", name)
