"""hvac: the token store (auth/token/*), ACL policies (sys/policies/acl,
legacy sys/policy), capabilities, and ACL enforcement on the kv-v2 mount.

Contract: ../shared/spec/vault-kv2-wire.md §2 and §3. Where Vault and
OpenBao differ, Vault wins; assertions that only hold for one target branch
on TARGET. OpenBao adds fields to some responses (policy reads, role reads):
their absence is never asserted.
"""

import datetime
import json
import re
import time

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import TARGET

KVS_TOKEN_RE = re.compile(r"^kvs\.[0-9A-Za-z]{32}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


# ---------------------------------------------------------------- helpers


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_time(s: str) -> datetime.datetime:
    """RFC3339(Nano) UTC -> aware datetime (nanoseconds cut to micro)."""
    assert isinstance(s, str) and RFC3339_RE.match(s), s
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$", s)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}+00:00")


def tok_client(addr: str, tok: str) -> hvac.Client:
    return hvac.Client(url=addr, token=tok)


def new_token(client, **kw) -> dict:
    kw.setdefault("ttl", "1h")
    return client.auth.token.create(**kw)["auth"]


def put_policy(client, name: str, hcl: str) -> None:
    r = client.sys.create_or_update_acl_policy(name, hcl)
    assert r.status_code == 204, (r.status_code, r.text)


APP_POLICY = """
path "secret/data/{p}/app/*" {{
  capabilities = ["create", "read", "update", "delete", "list"]
}}
path "secret/metadata/{p}/app/*" {{
  capabilities = ["list"]
}}
"""

# lets a (non-root) token create child tokens
TOKEN_CREATE_POLICY = """
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/create-orphan" { capabilities = ["update"] }
"""


@pytest.fixture
def app_policy(client, uid):
    name = f"{uid}-app"
    put_policy(client, name, APP_POLICY.format(p=uid))
    yield name
    client.sys.delete_acl_policy(name)


@pytest.fixture
def tokcreate_policy(client, uid):
    name = f"{uid}-tokc"
    put_policy(client, name, TOKEN_CREATE_POLICY)
    yield name
    client.sys.delete_acl_policy(name)


# ---------------------------------------------------------------- token create / lookup


def test_create_token_auth_fields(client, app_policy):
    now = time.time()
    r = client.auth.token.create(
        policies=[app_policy], ttl="1h", renewable=True, meta={"team": "blue", "env": "ci"},
        display_name="builder", num_uses=5,
    )
    assert r["data"] is None
    assert r["lease_id"] == "" and r["lease_duration"] == 0 and r["renewable"] is False
    a = r["auth"]
    tok = a["client_token"]
    assert isinstance(tok, str) and tok and tok != "root"
    if TARGET == "kvseal":
        assert KVS_TOKEN_RE.match(tok), tok
    assert isinstance(a["accessor"], str) and a["accessor"] and a["accessor"] != tok
    assert a["policies"] == sorted([app_policy, "default"])
    assert a["token_policies"] == sorted([app_policy, "default"])
    assert a["metadata"] == {"team": "blue", "env": "ci"}
    assert is_int(a["lease_duration"]) and a["lease_duration"] == 3600
    assert a["renewable"] is True
    assert a["entity_id"] == ""
    assert a["token_type"] == "service"
    assert a["orphan"] is False
    assert a["num_uses"] == 5

    d = client.auth.token.lookup(tok)["data"]
    assert d["id"] == tok
    assert d["accessor"] == a["accessor"]
    assert d["policies"] == sorted([app_policy, "default"])
    assert d["path"] == "auth/token/create"
    assert d["meta"] == {"team": "blue", "env": "ci"}
    assert d["display_name"] == "token-builder"
    assert d["num_uses"] == 5
    assert d["orphan"] is False
    assert d["renewable"] is True
    assert d["type"] == "service"
    assert d["entity_id"] == ""
    assert d["explicit_max_ttl"] == 0
    assert is_int(d["creation_ttl"]) and d["creation_ttl"] == 3600
    assert is_int(d["ttl"]) and 3590 <= d["ttl"] <= 3600, d["ttl"]
    assert is_int(d["creation_time"]) and abs(d["creation_time"] - now) < 30
    exp = parse_time(d["expire_time"]).timestamp()
    assert abs(exp - (now + 3600)) < 30, (d["expire_time"], now)
    assert abs(parse_time(d["issue_time"]).timestamp() - now) < 30


def test_create_no_default_policy_and_defaults(client, app_policy):
    a = new_token(client, policies=[app_policy], no_default_policy=True)
    assert a["policies"] == [app_policy]
    assert a["token_policies"] == [app_policy]
    assert a["metadata"] is None
    assert client.auth.token.lookup(a["client_token"])["data"]["policies"] == [app_policy]
    # hvac sends display_name="token" by default; the server prefixes "token-"
    d = client.auth.token.lookup(a["client_token"])["data"]
    assert d["display_name"] == "token-token"
    assert d["meta"] is None
    assert d["num_uses"] == 0


def test_lookup_self_with_new_token(addr, client, app_policy):
    a = new_token(client, policies=[app_policy], meta={"k": "v"})
    t = tok_client(addr, a["client_token"])
    r = t.auth.token.lookup_self()
    assert r["auth"] is None
    d = r["data"]
    assert d["id"] == a["client_token"]
    assert d["accessor"] == a["accessor"]
    assert isinstance(d["policies"], list) and d["policies"] == sorted([app_policy, "default"])
    assert d["meta"] == {"k": "v"}
    assert is_int(d["ttl"]) and 3590 <= d["ttl"] <= 3600
    assert d["creation_ttl"] == 3600
    assert d["renewable"] is True
    assert t.is_authenticated() is True


def test_lookup_self_root(client):
    d = client.auth.token.lookup_self()["data"]
    assert d["id"] == "root"
    assert d["policies"] == ["root"]
    assert d["ttl"] == 0
    assert d["expire_time"] is None
    assert d["orphan"] is True
    assert d["type"] == "service"
    assert isinstance(d["accessor"], str) and d["accessor"]


def test_lookup_accessor(client, app_policy):
    a = new_token(client, policies=[app_policy], display_name="acc")
    d = client.auth.token.lookup_accessor(a["accessor"])["data"]
    assert d["accessor"] == a["accessor"]
    assert d["id"] == ""  # lookup by accessor never reveals the token
    assert d["policies"] == sorted([app_policy, "default"])
    assert d["display_name"] == "token-acc"
    assert is_int(d["ttl"]) and 3590 <= d["ttl"] <= 3600
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.lookup_accessor("no-such-accessor-" + a["accessor"])


def test_invalid_token_is_forbidden(addr, http):
    r = http.get("auth/token/lookup-self", token="not-a-real-token")
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert any("permission denied" in e for e in r.json()["errors"]), r.text
    with pytest.raises(exceptions.Forbidden):
        tok_client(addr, "not-a-real-token").auth.token.lookup_self()
    assert tok_client(addr, "not-a-real-token").is_authenticated() is False


def test_batch_tokens_and_chosen_ids(addr, client, uid, app_policy):
    """kvseal issues only service tokens with ids it picks (400 otherwise); OpenBao has both."""
    if TARGET == "kvseal":
        with pytest.raises(exceptions.InvalidRequest):
            client.auth.token.create(policies=[app_policy], ttl="1h", type="batch")
        with pytest.raises(exceptions.InvalidRequest):
            client.auth.token.create(id=f"{uid}-chosen", policies=[app_policy], ttl="1h")
        with pytest.raises(exceptions.Forbidden):  # nothing was created under that id
            tok_client(addr, f"{uid}-chosen").auth.token.lookup_self()
    else:
        a = new_token(client, policies=[app_policy], type="batch", no_default_policy=True)
        assert a["token_type"] == "batch"
        a = new_token(client, id=f"{uid}-chosen", policies=[app_policy])
        assert a["client_token"] == f"{uid}-chosen"
    # "service" is accepted explicitly
    a = new_token(client, policies=[app_policy], type="service")
    assert a["token_type"] == "service"


# ---------------------------------------------------------------- renew


def test_renew_and_renew_self(addr, client, app_policy):
    a = new_token(client, policies=[app_policy])
    tok = a["client_token"]
    r = client.auth.token.renew(tok, increment="2h")
    ra = r["auth"]
    assert ra["client_token"] == tok
    assert ra["accessor"] == a["accessor"]
    assert is_int(ra["lease_duration"]) and ra["lease_duration"] == 7200
    assert ra["renewable"] is True
    assert ra["policies"] == sorted([app_policy, "default"])
    d = client.auth.token.lookup(tok)["data"]
    assert 7190 <= d["ttl"] <= 7200
    assert d["creation_ttl"] == 3600  # creation_ttl does not move on renew
    assert isinstance(d["last_renewal_time"], int) and d["last_renewal_time"] > 0

    t = tok_client(addr, tok)
    r = t.auth.token.renew_self(increment=10800)  # int seconds work too
    assert r["auth"]["client_token"] == tok
    assert r["auth"]["lease_duration"] == 10800
    assert 10790 <= t.auth.token.lookup_self()["data"]["ttl"] <= 10800


def test_renew_accessor_explicit_max_ttl_and_period(client, app_policy):
    a = new_token(client, policies=[app_policy])
    r = client.auth.token.renew_accessor(a["accessor"], increment="2h")
    assert r["auth"]["accessor"] == a["accessor"]
    assert r["auth"]["client_token"] == ""  # renewing by accessor does not reveal the token
    assert r["auth"]["lease_duration"] == 7200

    # explicit_max_ttl caps renewals, with a warning
    b = new_token(client, policies=[app_policy], explicit_max_ttl="90m")
    assert client.auth.token.lookup(b["client_token"])["data"]["explicit_max_ttl"] == 5400
    r = client.auth.token.renew(b["client_token"], increment="2h")
    assert r["auth"]["lease_duration"] == 5400
    assert r["warnings"] and any("capped" in w for w in r["warnings"]), r["warnings"]

    # periodic token: ttl = period, lookup reports it
    p = new_token(client, policies=[app_policy], period="30m", ttl=None)
    assert p["lease_duration"] == 1800
    d = client.auth.token.lookup(p["client_token"])["data"]
    assert d["period"] == 1800 and d["creation_ttl"] == 1800


def test_renew_non_renewable_token_fails(client, app_policy):
    a = new_token(client, policies=[app_policy], renewable=False)
    assert a["renewable"] is False
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.renew(a["client_token"], increment="2h")
    assert client.auth.token.lookup(a["client_token"])["data"]["renewable"] is False


# ---------------------------------------------------------------- revoke


def test_revoke(addr, client, app_policy):
    a = new_token(client, policies=[app_policy])
    t = tok_client(addr, a["client_token"])
    assert t.auth.token.lookup_self()["data"]["id"] == a["client_token"]
    r = client.auth.token.revoke(a["client_token"])
    assert r.status_code == 204
    with pytest.raises(exceptions.Forbidden):
        t.auth.token.lookup_self()
    # Vault: auth/token/lookup of an unknown token is 403 "bad token" (ErrPermissionDenied)
    with pytest.raises(exceptions.Forbidden):
        client.auth.token.lookup(a["client_token"])
    # revoking again (or an unknown token) is fine
    assert client.auth.token.revoke(a["client_token"]).status_code == 204


def test_revoke_self(addr, client, app_policy):
    a = new_token(client, policies=[app_policy])
    t = tok_client(addr, a["client_token"])
    assert t.auth.token.revoke_self().status_code == 204
    with pytest.raises(exceptions.Forbidden):
        t.auth.token.lookup_self()
    with pytest.raises(exceptions.Forbidden):
        t.secrets.kv.v2.list_secrets(path="x")


def test_revoke_accessor(addr, client, app_policy):
    a = new_token(client, policies=[app_policy])
    assert client.auth.token.revoke_accessor(a["accessor"]).status_code == 204
    with pytest.raises(exceptions.Forbidden):
        tok_client(addr, a["client_token"]).auth.token.lookup_self()
    assert a["accessor"] not in client.auth.token.list_accessors()["data"]["keys"]


def _wait_forbidden(c: hvac.Client, timeout: float = 3.0) -> None:
    """Child revocation may run just after the parent's revoke returns."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c.auth.token.lookup_self()
        except exceptions.Forbidden:
            return
        if time.monotonic() > deadline:
            raise AssertionError("token still valid")
        time.sleep(0.1)


def test_child_dies_with_parent(addr, client, app_policy, tokcreate_policy):
    parent = new_token(client, policies=[app_policy, tokcreate_policy])
    p = tok_client(addr, parent["client_token"])
    child = new_token(p, policies=[app_policy])
    assert child["orphan"] is False
    c = tok_client(addr, child["client_token"])
    assert c.auth.token.lookup_self()["data"]["policies"] == sorted([app_policy, "default"])
    # a child may not get policies its parent does not have
    with pytest.raises(exceptions.InvalidRequest):
        p.auth.token.create(policies=["root"], ttl="1h")

    assert client.auth.token.revoke(parent["client_token"]).status_code == 204
    with pytest.raises(exceptions.Forbidden):
        p.auth.token.lookup_self()
    _wait_forbidden(c)


def test_revoke_orphan_keeps_children(addr, client, app_policy, tokcreate_policy):
    parent = new_token(client, policies=[app_policy, tokcreate_policy])
    p = tok_client(addr, parent["client_token"])
    child = new_token(p, policies=[app_policy])
    assert client.auth.token.lookup(child["client_token"])["data"]["orphan"] is False

    r = client.auth.token.revoke_and_orphan_children(parent["client_token"])
    assert r.status_code == 204
    with pytest.raises(exceptions.Forbidden):
        p.auth.token.lookup_self()
    c = tok_client(addr, child["client_token"])
    d = c.auth.token.lookup_self()["data"]
    assert d["id"] == child["client_token"]
    assert d["orphan"] is True


def test_create_orphan(addr, client, app_policy, tokcreate_policy):
    a = client.auth.token.create_orphan(policies=[app_policy], ttl="1h")["auth"]
    assert a["orphan"] is True
    assert a["policies"] == sorted([app_policy, "default"])
    assert client.auth.token.lookup(a["client_token"])["data"]["orphan"] is True

    # a non-root token with update on auth/token/create-orphan may create orphans,
    # and those survive the revocation of their creator
    parent = new_token(client, policies=[app_policy, tokcreate_policy])
    p = tok_client(addr, parent["client_token"])
    o = p.auth.token.create_orphan(policies=[app_policy], ttl="1h")["auth"]
    assert o["orphan"] is True
    # no_parent on the plain create endpoint needs root or sudo
    with pytest.raises(exceptions.InvalidRequest):
        new_token(p, policies=[app_policy], no_parent=True)
    nc = new_token(p, policies=[app_policy])
    assert nc["orphan"] is False
    client.auth.token.revoke(parent["client_token"])
    o_client = tok_client(addr, o["client_token"])
    assert o_client.auth.token.lookup_self()["data"]["orphan"] is True
    _wait_forbidden(tok_client(addr, nc["client_token"]))

    # root + no_parent=True on create gives an orphan as well
    r = new_token(client, policies=[app_policy], no_parent=True)
    assert r["orphan"] is True


def test_list_accessors(client, app_policy):
    a = new_token(client, policies=[app_policy])
    b = new_token(client, policies=[app_policy])
    root_acc = client.auth.token.lookup_self()["data"]["accessor"]
    keys = client.auth.token.list_accessors()["data"]["keys"]
    assert isinstance(keys, list)
    assert {a["accessor"], b["accessor"], root_acc} <= set(keys)
    assert a["client_token"] not in keys


def test_list_accessors_needs_sudo(addr, client, app_policy):
    a = new_token(client, policies=[app_policy])
    with pytest.raises(exceptions.Forbidden):
        tok_client(addr, a["client_token"]).auth.token.list_accessors()


# ---------------------------------------------------------------- limits: num_uses and ttl


def test_num_uses(addr, client, http, uid, app_policy):
    client.secrets.kv.v2.create_or_update_secret(path=f"{uid}/app/x", secret={"a": "1"})
    a = new_token(client, policies=[app_policy], num_uses=2)
    t = tok_client(addr, a["client_token"])
    for _ in range(2):
        r = t.secrets.kv.v2.read_secret_version(path=f"{uid}/app/x", raise_on_deleted_version=True)
        assert r["data"]["data"] == {"a": "1"}
    with pytest.raises(exceptions.Forbidden):
        t.secrets.kv.v2.read_secret_version(path=f"{uid}/app/x", raise_on_deleted_version=True)
    # the token is gone once its uses are spent
    with pytest.raises(exceptions.Forbidden):
        client.auth.token.lookup(a["client_token"])


def test_short_ttl_expires(addr, client, app_policy):
    a = new_token(client, policies=[app_policy], ttl="2s")
    assert a["lease_duration"] == 2
    t = tok_client(addr, a["client_token"])
    d = t.auth.token.lookup_self()["data"]
    assert d["creation_ttl"] == 2 and 0 <= d["ttl"] <= 2
    time.sleep(3)
    with pytest.raises(exceptions.Forbidden):
        t.auth.token.lookup_self()


# ---------------------------------------------------------------- token roles


def test_token_roles(addr, client, uid, app_policy):
    role = f"{uid}-role"
    r = client.auth.token.create_or_update_role(role, allowed_policies=[app_policy], orphan=True, renewable=False)
    assert r.status_code == 204
    try:
        d = client.auth.token.read_role(role)["data"]
        assert d["name"] == role
        assert d["allowed_policies"] == [app_policy]
        assert d["orphan"] is True
        assert d["renewable"] is False
        assert d["path_suffix"] == ""
        assert d["token_type"] in ("service", "default-service")
        assert role in client.auth.token.list_roles()["data"]["keys"]

        a = client.auth.token.create(role_name=role, policies=[app_policy], ttl="1h")["auth"]
        assert a["orphan"] is True
        assert a["renewable"] is False
        assert a["policies"] == sorted([app_policy, "default"])
        assert a["lease_duration"] == 3600
        lk = client.auth.token.lookup(a["client_token"])["data"]
        assert lk["path"] == f"auth/token/create/{role}"
        assert lk["orphan"] is True

        # a policy outside allowed_policies is refused
        with pytest.raises(exceptions.InvalidRequest):
            client.auth.token.create(role_name=role, policies=["root"], ttl="1h")

        # update the role
        client.auth.token.create_or_update_role(role, allowed_policies=[app_policy], orphan=False, renewable=True)
        d = client.auth.token.read_role(role)["data"]
        assert d["orphan"] is False and d["renewable"] is True
    finally:
        assert client.auth.token.delete_role(role).status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        client.auth.token.read_role(role)
    try:
        keys = client.auth.token.list_roles()["data"]["keys"]
    except exceptions.InvalidPath:  # empty list is 404
        keys = []
    assert role not in keys
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.create(role_name=role, policies=[app_policy], ttl="1h")


# ---------------------------------------------------------------- policies: CRUD


def test_acl_policy_crud(client, uid):
    name = f"{uid}-crud"
    hcl = 'path "secret/data/crud/*" {\n  capabilities = ["read", "list"]\n}\n'
    assert client.sys.create_or_update_acl_policy(name, hcl).status_code == 204
    d = client.sys.read_acl_policy(name)["data"]
    assert d["name"] == name
    assert d["policy"] == hcl  # stored verbatim
    keys = client.sys.list_acl_policies()["data"]["keys"]
    assert {name, "default", "root"} <= set(keys)

    hcl2 = 'path "secret/data/crud/*" { capabilities = ["read"] }'
    assert client.sys.create_or_update_acl_policy(name, hcl2).status_code == 204
    assert client.sys.read_acl_policy(name)["data"]["policy"] == hcl2

    assert client.sys.delete_acl_policy(name).status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_acl_policy(name)
    assert name not in client.sys.list_acl_policies()["data"]["keys"]
    # deleting a missing policy is fine
    assert client.sys.delete_acl_policy(name).status_code == 204


def test_acl_policy_json_document(addr, client, uid):
    name = f"{uid}-json"
    doc = {"path": {f"secret/data/{uid}/j/*": {"capabilities": ["create", "read"]}}}
    assert client.sys.create_or_update_acl_policy(name, doc).status_code == 204
    try:
        stored = client.sys.read_acl_policy(name)["data"]["policy"]
        assert json.loads(stored) == doc
        t = tok_client(addr, new_token(client, policies=[name])["client_token"])
        t.secrets.kv.v2.create_or_update_secret(path=f"{uid}/j/a", secret={"v": "1"})
        assert t.secrets.kv.v2.read_secret_version(path=f"{uid}/j/a", raise_on_deleted_version=True)["data"]["data"] == {"v": "1"}
        with pytest.raises(exceptions.Forbidden):
            t.secrets.kv.v2.read_secret_version(path=f"{uid}/other", raise_on_deleted_version=True)
    finally:
        client.sys.delete_acl_policy(name)


def test_legacy_sys_policy(client, uid):
    name = f"{uid}-legacy"
    hcl = 'path "secret/data/legacy/*" {\n  policy = "write"\n}\n'
    assert client.sys.create_or_update_policy(name, hcl).status_code == 204
    r = client.sys.read_policy(name)
    assert r["data"]["name"] == name
    assert r["data"]["rules"] == hcl
    # sys/policy is an "injector" route: data is also at the top level
    assert r["rules"] == hcl and r["name"] == name
    lst = client.sys.list_policies()
    assert {name, "default", "root"} <= set(lst["data"]["policies"])
    assert {name, "default", "root"} <= set(lst["data"]["keys"])
    assert name in lst["policies"]
    # the same policy is visible through the new API
    assert client.sys.read_acl_policy(name)["data"]["policy"] == hcl
    assert client.sys.delete_policy(name).status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_policy(name)
    assert name not in client.sys.list_policies()["data"]["policies"]


def test_policy_name_is_lowercased(client, http, uid):
    mixed = f"{uid}-MiXeD"
    lower = mixed.lower()
    hcl = 'path "secret/data/mixed" { capabilities = ["read"] }'
    r = http.put(f"sys/policies/acl/{mixed}", json={"policy": hcl})
    if TARGET == "kvseal":
        # Vault answers 200 with a warning; OpenBao dropped the warning (204)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.json()["warnings"] == [f"policy name was converted to {lower}"], r.text
    else:
        assert r.status_code in (200, 204), (r.status_code, r.text)
        if r.status_code == 200:
            assert f"policy name was converted to {lower}" in r.json()["warnings"]
    try:
        keys = client.sys.list_acl_policies()["data"]["keys"]
        assert lower in keys and mixed not in keys
        assert client.sys.read_acl_policy(lower)["data"]["name"] == lower
        # reads are case-insensitive too
        assert client.sys.read_acl_policy(mixed)["data"]["name"] == lower
        assert client.sys.read_acl_policy(mixed)["data"]["policy"] == hcl
    finally:
        client.sys.delete_acl_policy(lower)


def test_default_policy_cannot_be_deleted(client):
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.sys.delete_acl_policy("default")
    assert any("cannot delete" in e and "default" in e for e in ei.value.errors), ei.value.errors
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.delete_policy("default")
    d = client.sys.read_acl_policy("default")["data"]
    assert d["name"] == "default"
    assert 'path "auth/token/lookup-self"' in d["policy"]


def test_root_policy_cannot_be_changed(client):
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.sys.create_or_update_acl_policy("root", 'path "*" { capabilities = ["read"] }')
    assert any('cannot update "root" policy' in e for e in ei.value.errors), ei.value.errors
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.sys.delete_acl_policy("root")
    assert any('cannot delete "root" policy' in e for e in ei.value.errors), ei.value.errors
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_policy("root", 'path "*" { capabilities = ["read"] }')
    assert "root" in client.sys.list_acl_policies()["data"]["keys"]


def test_bad_policy_documents(client, http, uid):
    r = http.put(f"sys/policies/acl/{uid}-empty", json={"policy": ""})
    assert r.status_code == 400
    assert r.json() == {"errors": ["'policy' parameter not supplied or empty"]}
    for bad in (
        "path {",
        'path "x" { capabilities = ["fly"] }',
        'path "secret/data/+*" { capabilities = ["read"] }',
        'path "x" { capabilities = ["read"]\n  foo = "bar" }',
    ):
        r = http.put(f"sys/policies/acl/{uid}-bad", json={"policy": bad})
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["errors"][0].startswith("failed to parse policy"), r.text
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_acl_policy(f"{uid}-bad")


# HCL layouts that Vault's HCL1 parser accepts: `vault policy write` sends the
# file as is, so each must be stored verbatim and enforced.
HCL_LAYOUTS = {
    "one-line": 'path "secret/data/{p}/*" {{ capabilities = ["read", "list"] }}',
    "multi-line": 'path "secret/data/{p}/*" {{\n  capabilities = ["read", "list"]\n}}\n',
    "attr-on-brace-line": 'path "secret/data/{p}/*" {{ capabilities = ["read", "list"]\n}}\n',
    "comments": '# hash\n// slashes\n/* block */\npath "secret/data/{p}/*" {{\n  capabilities = ["read", "list"] # trailing\n}}\n',
    "trailing-comma": 'path "secret/data/{p}/*" {{\n  capabilities = [\n    "read",\n    "list",\n  ]\n}}\n',
    "legacy-read": 'path "secret/data/{p}/*" {{\n  policy = "read"\n}}\n',
    "two-blocks-one-line": 'path "secret/data/{p}/*" {{ capabilities = ["read", "list"] }} path "secret/data/{p}-2/*" {{ capabilities = ["read"] }}',
    "json": '{{"path": {{"secret/data/{p}/*": {{"capabilities": ["read", "list"]}}}}}}',
}


@pytest.mark.parametrize("layout", sorted(HCL_LAYOUTS))
def test_policy_layouts_accepted_and_enforced(client, uid, layout):
    name = f"{uid}-{layout}"
    doc = HCL_LAYOUTS[layout].format(p=uid)
    r = client.sys.create_or_update_acl_policy(name, doc)
    assert r.status_code == 204
    try:
        assert client.sys.read_acl_policy(name)["data"]["policy"] == doc
        tok = new_token(client, policies=[name])["client_token"]
        caps = client.sys.get_capabilities(paths=[f"secret/data/{uid}/x", f"secret/data/{uid}x"], token=tok)["data"]
        assert caps == {f"secret/data/{uid}/x": ["list", "read"], f"secret/data/{uid}x": ["deny"]}
    finally:
        client.sys.delete_acl_policy(name)


def test_unenforceable_policy_keys(client, http, uid):
    """kvseal refuses keys it cannot enforce (400); OpenBao accepts them. (Wrapping TTLs are
    enforced: test_wrapping_cubbyhole.py.)"""
    docs = {
        "allowed_parameters": 'path "secret/data/x" {\n  capabilities = ["update"]\n  allowed_parameters = { "a" = [] }\n}\n',
        "denied_parameters": 'path "secret/data/x" {\n  capabilities = ["update"]\n  denied_parameters = { "a" = [] }\n}\n',
        "required_parameters": 'path "secret/data/x" {\n  capabilities = ["update"]\n  required_parameters = ["a"]\n}\n',
        "mfa_methods": 'path "secret/data/x" {\n  capabilities = ["update"]\n  mfa_methods = ["m"]\n}\n',
        "json-allowed_parameters": '{"path": {"secret/data/x": {"capabilities": ["update"], "allowed_parameters": {"a": []}}}}',
    }
    for key, doc in docs.items():
        name = f"{uid}-unenf"
        r = http.put(f"sys/policies/acl/{name}", json={"policy": doc})
        if TARGET == "kvseal":
            assert r.status_code == 400, (key, r.status_code, r.text)
            msg = r.json()["errors"][0]
            assert key.replace("json-", "") in msg, (key, msg)
            with pytest.raises(exceptions.InvalidPath):
                client.sys.read_acl_policy(name)
        else:
            assert r.status_code == 204, (key, r.status_code, r.text)
            client.sys.delete_acl_policy(name)


# ---------------------------------------------------------------- ACL enforcement


def test_limited_token_kv_access(addr, client, uid, app_policy):
    client.secrets.kv.v2.create_or_update_secret(path=f"{uid}/other", secret={"s": "x"})
    tok = new_token(client, policies=[app_policy])["client_token"]
    t = tok_client(addr, tok)
    kv = t.secrets.kv.v2

    w = kv.create_or_update_secret(path=f"{uid}/app/x", secret={"a": "1"})
    assert w["data"]["version"] == 1
    w = kv.create_or_update_secret(path=f"{uid}/app/x", secret={"a": "2"})  # update
    assert w["data"]["version"] == 2
    kv.create_or_update_secret(path=f"{uid}/app/sub/y", secret={"b": "1"})
    r = kv.read_secret_version(path=f"{uid}/app/x", raise_on_deleted_version=True)
    assert r["data"]["data"] == {"a": "2"}
    assert kv.list_secrets(path=f"{uid}/app")["data"]["keys"] == ["sub/", "x"]
    assert kv.list_secrets(path=f"{uid}/app/")["data"]["keys"] == ["sub/", "x"]
    assert kv.list_secrets(path=f"{uid}/app/sub")["data"]["keys"] == ["y"]

    F = exceptions.Forbidden
    with pytest.raises(F):
        kv.read_secret_version(path=f"{uid}/other", raise_on_deleted_version=True)
    with pytest.raises(F):
        kv.create_or_update_secret(path=f"{uid}/other", secret={"s": "y"})
    with pytest.raises(F):
        kv.read_secret_metadata(path=f"{uid}/other")
    with pytest.raises(F):
        kv.read_secret_metadata(path=f"{uid}/app/x")  # only list on metadata/
    with pytest.raises(F):
        kv.list_secrets(path=uid)
    with pytest.raises(F):
        kv.delete_metadata_and_all_versions(path=f"{uid}/app/x")
    with pytest.raises(F):
        kv.delete_secret_versions(path=f"{uid}/app/x", versions=[1])  # needs secret/delete/
    with pytest.raises(F):
        t.sys.list_mounted_secrets_engines()
    with pytest.raises(F):
        t.sys.read_mount_configuration("secret")
    with pytest.raises(F):
        t.sys.create_or_update_acl_policy(f"{uid}-evil", 'path "*" { capabilities = ["sudo"] }')
    with pytest.raises(F):
        t.sys.read_acl_policy(app_policy)
    with pytest.raises(F):
        t.auth.token.create(policies=[app_policy])

    # the 403 body: JSON, "permission denied"
    r = requests.get(f"{addr}/v1/secret/data/{uid}/other", headers={"X-Vault-Token": tok}, timeout=10)
    assert r.status_code == 403
    assert r.headers["Content-Type"] == "application/json"
    assert any("permission denied" in e for e in r.json()["errors"]), r.text

    # the default policy lets a token look itself up and renew itself
    assert t.auth.token.lookup_self()["data"]["id"] == tok
    assert t.auth.token.renew_self()["auth"]["client_token"] == tok

    # delete latest version works (delete on data/)
    assert kv.delete_latest_version_of_secret(path=f"{uid}/app/x").status_code == 204
    r = client.secrets.kv.v2.read_secret_version(path=f"{uid}/app/x", raise_on_deleted_version=False)
    assert r["data"]["metadata"]["deletion_time"] != ""
    # root's secret at other/ is untouched
    assert client.secrets.kv.v2.read_secret_version(path=f"{uid}/other", raise_on_deleted_version=True)["data"]["data"] == {"s": "x"}


def test_policy_change_applies_to_live_tokens(addr, client, uid):
    name = f"{uid}-live"
    put_policy(client, name, f'path "secret/data/{uid}/*" {{ capabilities = ["read"] }}')
    try:
        client.secrets.kv.v2.create_or_update_secret(path=f"{uid}/a", secret={"v": "1"})
        t = tok_client(addr, new_token(client, policies=[name])["client_token"])
        assert t.secrets.kv.v2.read_secret_version(path=f"{uid}/a", raise_on_deleted_version=True)["data"]["data"] == {"v": "1"}
        put_policy(client, name, f'path "secret/data/{uid}/*" {{ capabilities = ["list"] }}')
        with pytest.raises(exceptions.Forbidden):
            t.secrets.kv.v2.read_secret_version(path=f"{uid}/a", raise_on_deleted_version=True)
        client.sys.delete_acl_policy(name)
        with pytest.raises(exceptions.Forbidden):
            t.secrets.kv.v2.read_secret_version(path=f"{uid}/a", raise_on_deleted_version=True)
        # the token itself still exists with the (now missing) policy name
        assert name in t.auth.token.lookup_self()["data"]["policies"]
    finally:
        client.sys.delete_acl_policy(name)


def test_create_vs_update(addr, client, uid):
    c_pol, u_pol = f"{uid}-conly", f"{uid}-uonly"
    put_policy(client, c_pol, f'path "secret/data/{uid}/c/*" {{ capabilities = ["create"] }}')
    put_policy(client, u_pol, f'path "secret/data/{uid}/u/*" {{ capabilities = ["update"] }}')
    try:
        tc = tok_client(addr, new_token(client, policies=[c_pol])["client_token"]).secrets.kv.v2
        tu = tok_client(addr, new_token(client, policies=[u_pol])["client_token"]).secrets.kv.v2

        assert tc.create_or_update_secret(path=f"{uid}/c/new", secret={"a": "1"})["data"]["version"] == 1
        with pytest.raises(exceptions.Forbidden):
            tc.create_or_update_secret(path=f"{uid}/c/new", secret={"a": "2"})
        with pytest.raises(exceptions.Forbidden):
            tc.read_secret_version(path=f"{uid}/c/new", raise_on_deleted_version=True)

        with pytest.raises(exceptions.Forbidden):
            tu.create_or_update_secret(path=f"{uid}/u/new", secret={"a": "1"})
        client.secrets.kv.v2.create_or_update_secret(path=f"{uid}/u/old", secret={"a": "1"})
        assert tu.create_or_update_secret(path=f"{uid}/u/old", secret={"a": "2"})["data"]["version"] == 2
        r = client.secrets.kv.v2.read_secret_version(path=f"{uid}/u/old", raise_on_deleted_version=True)
        assert r["data"]["data"] == {"a": "2"}
        # the key u/new was never created
        with pytest.raises(exceptions.InvalidPath):
            client.secrets.kv.v2.read_secret_version(path=f"{uid}/u/new", raise_on_deleted_version=True)
    finally:
        client.sys.delete_acl_policy(c_pol)
        client.sys.delete_acl_policy(u_pol)


def test_patch_capability(addr, client, http, uid):
    ru, rup = f"{uid}-ru", f"{uid}-rup"
    put_policy(client, ru, f'path "secret/data/{uid}/*" {{ capabilities = ["read", "update"] }}')
    put_policy(client, rup, f'path "secret/data/{uid}/*" {{ capabilities = ["read", "update", "patch"] }}')
    try:
        client.secrets.kv.v2.create_or_update_secret(path=f"{uid}/p", secret={"a": "1"})
        hdr = {"Content-Type": "application/merge-patch+json"}
        t_ru = new_token(client, policies=[ru])["client_token"]
        t_rup = new_token(client, policies=[rup])["client_token"]

        r = http.patch(f"secret/data/{uid}/p", token=t_ru, headers=hdr, json={"data": {"b": "2"}})
        assert r.status_code == 403, (r.status_code, r.text)
        assert any("permission denied" in e for e in r.json()["errors"]), r.text

        r = http.patch(f"secret/data/{uid}/p", token=t_rup, headers=hdr, json={"data": {"b": "2"}})
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.json()["data"]["version"] == 2
        got = client.secrets.kv.v2.read_secret_version(path=f"{uid}/p", raise_on_deleted_version=True)
        assert got["data"]["data"] == {"a": "1", "b": "2"}

        # hvac's patch() is client-side read+write: works with read+update only
        tok_client(addr, t_ru).secrets.kv.v2.patch(path=f"{uid}/p", secret={"c": "3"})
        got = client.secrets.kv.v2.read_secret_version(path=f"{uid}/p", raise_on_deleted_version=True)
        assert got["data"]["data"] == {"a": "1", "b": "2", "c": "3"}
        assert got["data"]["metadata"]["version"] == 3
    finally:
        client.sys.delete_acl_policy(ru)
        client.sys.delete_acl_policy(rup)


def test_deny_and_most_specific_rule(addr, client, uid):
    name = f"{uid}-deny"
    put_policy(client, name, (
        f'path "secret/data/{uid}/*" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{uid}/secret" {{ capabilities = ["deny"] }}\n'
        f'path "secret/data/{uid}/+/leaf" {{ capabilities = ["read", "update"] }}\n'
    ))
    other = f"{uid}-grant"
    put_policy(client, other, f'path "secret/data/{uid}/secret" {{ capabilities = ["read", "update"] }}')
    try:
        for k in ("open", "secret", "mid/leaf"):
            client.secrets.kv.v2.create_or_update_secret(path=f"{uid}/{k}", secret={"k": k})
        t = tok_client(addr, new_token(client, policies=[name, other])["client_token"])
        kv = t.secrets.kv.v2
        assert kv.read_secret_version(path=f"{uid}/open", raise_on_deleted_version=True)["data"]["data"] == {"k": "open"}
        with pytest.raises(exceptions.Forbidden):  # deny wins over the other policy's grant
            kv.read_secret_version(path=f"{uid}/secret", raise_on_deleted_version=True)
        assert kv.create_or_update_secret(path=f"{uid}/mid/leaf", secret={"k": "2"})["data"]["version"] == 2
        with pytest.raises(exceptions.Forbidden):
            kv.create_or_update_secret(path=f"{uid}/open", secret={"k": "2"})
        caps = t.sys.get_capabilities(paths=[f"secret/data/{uid}/secret", f"secret/data/{uid}/mid/leaf",
                                             f"secret/data/{uid}/a/b/leaf"])["data"]
        assert caps == {
            f"secret/data/{uid}/secret": ["deny"],
            f"secret/data/{uid}/mid/leaf": ["read", "update"],
            f"secret/data/{uid}/a/b/leaf": ["read"],
        }
    finally:
        client.sys.delete_acl_policy(name)
        client.sys.delete_acl_policy(other)


# ---------------------------------------------------------------- capabilities


def test_capabilities(addr, client, http, uid, app_policy):
    paths = [f"secret/data/{uid}/app/x", f"secret/metadata/{uid}/app/x", "sys/mounts", f"secret/data/{uid}/zzz"]
    root = client.sys.get_capabilities(paths=paths)
    assert root["data"] == {p: ["root"] for p in paths}
    assert root[paths[0]] == ["root"]  # injected at the top level too

    a = new_token(client, policies=[app_policy])
    want = {
        paths[0]: ["create", "delete", "list", "read", "update"],
        paths[1]: ["list"],
        paths[2]: ["deny"],
        paths[3]: ["deny"],
    }
    # sys/capabilities (token in the body)
    assert client.sys.get_capabilities(paths=paths, token=a["client_token"])["data"] == want
    # sys/capabilities-accessor
    assert client.sys.get_capabilities(paths=paths, accessor=a["accessor"])["data"] == want
    # sys/capabilities-self with the token itself, via hvac and raw
    t = tok_client(addr, a["client_token"])
    assert t.sys.get_capabilities(paths=paths)["data"] == want
    r = http.post("sys/capabilities-self", token=a["client_token"], json={"paths": paths})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == want
    for p in paths:
        assert body[p] == want[p]
    # single "path": also answered under "capabilities"
    r = http.post("sys/capabilities-self", token=a["client_token"], json={"path": paths[0]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["capabilities"] == want[paths[0]]
    assert r.json()["data"][paths[0]] == want[paths[0]]
    # default-policy paths; with exactly one path the answer is also under "capabilities"
    d = t.sys.get_capabilities(paths=["auth/token/lookup-self"])["data"]
    assert d == {"auth/token/lookup-self": ["read"], "capabilities": ["read"]}
