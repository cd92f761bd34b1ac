"""KV version 1 mounts (`bao secrets enable kv`, `generic`) and their upgrade by
`bao kv enable-versioning`, through the real `bao` CLI, hvac's KV v1 API and raw
HTTP for the exact envelopes. Every test passes against `bao server -dev` and
kvseal alike.

The kv CLI sends the preflight GET sys/internal/ui/mounts/<path> first: a mount
whose options carry no version (or "1") is KV v1, and the CLI then uses the plain
paths (<mount>/<key>) and refuses v2-only subcommands itself.
"""

import pytest

from conftest import wait_kv2_ready

DEFAULT_TTL = 768 * 3600  # Vault's system default lease TTL: a v1 read's lease_duration

UPGRADE_WARNING_END = (
    ". This mount will be unavailable for a brief period and will resume service shortly."
)


@pytest.fixture
def v1(bao, uid):
    """A fresh KV v1 mount, enabled the way most deployments did it: `secrets enable kv`."""
    mount = f"kv1-{uid}"
    r = bao("secrets", "enable", f"-path={mount}", "kv")
    assert r.rc == 0 and f"Success! Enabled the kv secrets engine at: {mount}/" in r.stdout, r
    yield mount
    bao("secrets", "disable", mount)


def body_of(r):
    """A JSON answer without the fields that differ by server: the random request_id,
    and mount_type (Vault sends it, OpenBao 2.7 does not)."""
    b = r.json()
    b.pop("request_id", None)
    b.pop("mount_type", None)
    return b


def envelope(data, lease_duration=0, warnings=None):
    return {
        "lease_id": "",
        "renewable": False,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": None,
        "warnings": warnings,
        "auth": None,
    }


# ---------------------------------------------------------------- the bao CLI


def test_cli_put_get_list_delete_on_a_v1_mount(bao, v1):
    r = bao("kv", "put", f"{v1}/app", "user=alice", "pw=s3cr3t")
    assert r.rc == 0 and f"Success! Data written to: {v1}/app" in r.stdout, r
    assert bao("kv", "put", f"{v1}/dir/inner", "x=1").rc == 0
    r = bao("kv", "get", "-format=json", f"{v1}/app")
    assert r.rc == 0, r
    r.out.pop("request_id")
    assert r.out == {
        "lease_id": "",
        "lease_duration": DEFAULT_TTL,
        "renewable": False,
        "data": {"user": "alice", "pw": "s3cr3t"},
        "warnings": None,
    }, r
    r = bao("kv", "get", f"{v1}/app")
    assert r.rc == 0 and "== Data ==" in r.stdout and "alice" in r.stdout, r
    assert "== Metadata ==" not in r.stdout, r
    r = bao("kv", "get", "-field=pw", f"{v1}/app")
    assert (r.rc, r.stdout) == (0, "s3cr3t"), r
    # A put replaces the whole value: no versions, no merge.
    assert bao("kv", "put", f"{v1}/app", "user=bob").rc == 0
    r = bao("kv", "get", "-format=json", f"{v1}/app")
    assert r.out["data"] == {"user": "bob"}, r
    r = bao("kv", "list", "-format=json", f"{v1}/")
    assert (r.rc, r.out) == (0, ["app", "dir/"]), r
    r = bao("kv", "list", "-format=json", f"{v1}/dir")
    assert (r.rc, r.out) == (0, ["inner"]), r
    r = bao("kv", "list", f"{v1}/nothing")
    assert r.rc == 2 and f"No value found at {v1}/nothing" in r.err, r
    r = bao("kv", "delete", f"{v1}/app")
    assert r.rc == 0 and f"Success! Data deleted (if it existed) at: {v1}/app" in r.stdout, r
    r = bao("kv", "get", f"{v1}/app")
    assert r.rc == 2 and f"No value found at {v1}/app" in r.err, r
    # -mount= form, and the generic commands on the same plain paths
    assert bao("kv", "put", f"-mount={v1}", "m", "k=v").rc == 0
    r = bao("read", "-format=json", f"{v1}/m")
    assert r.rc == 0 and r.out["data"] == {"k": "v"} and r.out["lease_duration"] == DEFAULT_TTL, r
    r = bao("write", f"{v1}/w", "a=1")
    assert r.rc == 0 and f"Success! Data written to: {v1}/w" in r.stdout, r
    r = bao("kv", "get", "-format=json", f"-mount={v1}", "w")
    assert r.out["data"] == {"a": "1"}, r


def test_cli_v2_only_commands_refuse_a_v1_mount(bao, v1):
    assert bao("kv", "put", f"{v1}/k", "a=1").rc == 0
    # (arguments, exit code, message): the CLI decides from the preflight's version.
    table = [
        (["kv", "metadata", "get", f"{v1}/k"], 1, "Metadata not supported on KV Version 1"),
        (["kv", "metadata", "put", f"{v1}/k"], 1, "Metadata not supported on KV Version 1"),
        (["kv", "metadata", "delete", f"{v1}/k"], 1, "Metadata not supported on KV Version 1"),
        (["kv", "undelete", "-versions=1", f"{v1}/k"], 1, "Undelete not supported on KV Version 1"),
        (["kv", "destroy", "-versions=1", f"{v1}/k"], 1, "Destroy not supported on KV Version 1"),
        (["kv", "patch", f"{v1}/k", "a=2"], 2, "K/V engine mount must be version 2 for patch support"),
        (["kv", "rollback", "-version=1", f"{v1}/k"], 2,
         "K/V engine mount must be version 2 for rollback support"),
    ]
    for args, rc, message in table:
        r = bao(*args)
        assert (r.rc, message in r.err + r.stdout) == (rc, True), (args, r)
    r = bao("kv", "get", "-format=json", f"{v1}/k")
    assert r.out["data"] == {"a": "1"}, "nothing changed"


def test_cli_enable_versioning_keeps_each_value_as_version_1(bao, http, v1):
    assert bao("kv", "put", f"{v1}/app", "pw=one").rc == 0
    assert bao("kv", "put", f"{v1}/dir/b", "y=2").rc == 0
    r = bao("kv", "enable-versioning", v1)
    assert r.rc == 0 and f"Success! Tuned the secrets engine at: {v1}/" in r.stdout, r
    m = bao("secrets", "list", "-format=json").out[f"{v1}/"]
    assert (m["type"], m["options"]) == ("kv", {"version": "2"}), m
    wait_kv2_ready(http, v1)  # OpenBao converts in the background; kvseal at once
    r = bao("kv", "get", "-format=json", "-version=1", f"{v1}/app")
    assert r.rc == 0, r
    assert r.out["data"]["data"] == {"pw": "one"}, r
    assert r.out["data"]["metadata"]["version"] == 1, r
    assert r.out["lease_duration"] == 0, r
    r = bao("kv", "metadata", "get", "-format=json", f"{v1}/app")
    assert r.rc == 0, r
    md = r.out["data"]
    assert (md["current_version"], md["oldest_version"], list(md["versions"])) == (1, 1, ["1"]), md
    assert md["versions"]["1"]["deletion_time"] == "" and md["versions"]["1"]["destroyed"] is False
    r = bao("kv", "get", "-format=json", f"{v1}/dir/b")
    assert r.rc == 0 and r.out["data"]["data"] == {"y": "2"}, r
    r = bao("kv", "list", "-format=json", f"{v1}/")
    assert (r.rc, r.out) == (0, ["app", "dir/"]), r
    # versioned from now on
    r = bao("kv", "put", "-format=json", f"{v1}/app", "pw=two")
    assert r.rc == 0 and r.out["data"]["version"] == 2, r
    r = bao("kv", "get", "-format=json", "-version=1", f"{v1}/app")
    assert r.out["data"]["data"] == {"pw": "one"}, r
    # and no way back
    r = bao("secrets", "tune", "-options=version=1", f"{v1}/")
    assert r.rc == 2 and "cannot downgrade mount from version 2" in r.err, r


def test_cli_generic_mount_is_kv_v1_listed_as_generic(bao, uid):
    mount = f"gen-{uid}"
    r = bao("secrets", "enable", f"-path={mount}", "generic")
    assert r.rc == 0 and f"Success! Enabled the generic secrets engine at: {mount}/" in r.stdout, r
    try:
        m = bao("secrets", "list", "-format=json").out[f"{mount}/"]
        assert m["type"] == "generic" and not m["options"], m
        assert m["accessor"].startswith("generic_"), m
        assert bao("kv", "put", f"{mount}/k", "a=1").rc == 0
        r = bao("kv", "get", "-format=json", f"{mount}/k")
        assert r.rc == 0 and r.out["data"] == {"a": "1"}, r
        r = bao("secrets", "enable", f"-path={mount}-2", "-version=2", "generic")
        assert r.rc == 2 and 'secrets engine "generic" does not allow setting a version' in r.err, r
    finally:
        bao("secrets", "disable", mount)


# ---------------------------------------------------------------- raw HTTP


def test_http_write_read_list_delete_envelopes(http, v1):
    r = http.put(f"{v1}/foo", json={"a": "b"})
    assert (r.status_code, r.text) == (204, ""), r.text
    r = http.get(f"{v1}/foo")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert body_of(r) == envelope({"a": "b"}, DEFAULT_TTL)
    assert http.post(f"{v1}/dir/x", json={"n": {"deep": [1, None]}}).status_code == 204
    assert body_of(http.get(f"{v1}/dir/x")) == envelope({"n": {"deep": [1, None]}}, DEFAULT_TTL)
    for r in (http.list(f"{v1}/"), http.get(f"{v1}/", params={"list": "true"}), http.list(v1)):
        assert r.status_code == 200 and body_of(r) == envelope({"keys": ["dir/", "foo"]}), r.text
    # (method, path, status, body) for what is not there
    for method, path in [("GET", f"{v1}/missing"), ("GET", f"{v1}/"), ("GET", f"{v1}/dir/"),
                         ("LIST", f"{v1}/foo"), ("LIST", f"{v1}/nothing/")]:
        r = http.request(method, path)
        assert (r.status_code, r.json()) == (404, {"errors": []}), (method, path, r.text)
    for path in (f"{v1}/foo", f"{v1}/foo", f"{v1}/dir/", f"{v1}/"):
        r = http.delete(path)
        assert (r.status_code, r.text) == (204, ""), (path, r.text)
    assert http.get(f"{v1}/foo").status_code == 404
    assert body_of(http.list(f"{v1}/")) == envelope({"keys": ["dir/"]})


def test_http_ttl_in_the_data_is_the_lease_duration(http, v1):
    # (stored value, lease_duration): Vault's parseutil.ParseDurationSecond of `ttl`, else
    # `lease`, else the mount's default TTL.
    table = [
        ({"a": "b", "ttl": "1h"}, 3600),
        ({"ttl": 30}, 30),
        ({"lease": "2m"}, 120),
        ({"ttl": "30", "lease": "2m"}, 30),
        ({"ttl": "abc"}, DEFAULT_TTL),
        ({"ttl": 1.5}, DEFAULT_TTL),
        ({"ttl": True}, DEFAULT_TTL),
        ({"ttl": None}, 0),
        ({"ttl": -5}, -5),
        ({"ttl": "2d"}, 2 * 86400),
    ]
    for data, ttl in table:
        assert http.put(f"{v1}/t", json=data).status_code == 204, data
        assert body_of(http.get(f"{v1}/t")) == envelope(data, ttl), data
    # the mount's tuned default applies where the data names none
    assert http.post(f"sys/mounts/{v1}/tune",
                     json={"default_lease_ttl": "1h", "max_lease_ttl": "2h"}).status_code == 204
    assert http.put(f"{v1}/plain", json={"a": 1}).status_code == 204
    assert body_of(http.get(f"{v1}/plain")) == envelope({"a": 1}, 3600)


def test_http_write_errors(http, v1):
    table = [
        ("PUT", f"{v1}/x/", {"a": 1}, 400, ["cannot write to a path ending in '/'"]),
        ("PUT", f"{v1}/", {"a": 1}, 400, ["cannot write to a path ending in '/'"]),
        ("PUT", v1, {"a": 1}, 400, ["missing path"]),
        ("PUT", f"{v1}/x", {}, 400, ["missing data fields"]),
    ]
    for method, path, body, status, errors in table:
        r = http.request(method, path, json=body)
        assert (r.status_code, r.json()) == (status, {"errors": errors}), (method, path, r.text)
    # no PATCH on KV v1 (OpenBao wraps the message in a multierror)
    r = http.patch(f"{v1}/x", json={"a": 1}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 405 and "unsupported operation" in r.json()["errors"][0], r.text
    assert http.get(f"{v1}/x").status_code == 404, "nothing was stored"


def test_http_v2_paths_on_a_v1_mount_are_plain_names(http, v1):
    assert http.put(f"{v1}/data/x", json={"data": {"a": 1}}).status_code == 204
    assert body_of(http.get(f"{v1}/data/x")) == envelope({"data": {"a": 1}}, DEFAULT_TTL)
    assert http.get(f"{v1}/metadata/x").status_code == 404
    assert http.get(f"{v1}/config").status_code == 404
    assert body_of(http.list(f"{v1}/")) == envelope({"keys": ["data/"]})


def test_http_query_parameters_of_a_read_are_warned_about(http, v1):
    assert http.put(f"{v1}/zz", json={"a": 1}).status_code == 204
    ignored = "Endpoint ignored these unrecognized parameters: [{}]".format
    # `bao kv get -version=1` on a v1 mount sends ?version=1
    table = [
        ({"version": "1"}, [ignored("version")]),
        ({"b": "1", "a": "2"}, [ignored("a b")]),
    ]
    for params, warnings in table:
        assert body_of(http.get(f"{v1}/zz", params=params)) == envelope({"a": 1}, DEFAULT_TTL, warnings)
    r = http.list(f"{v1}/", params={"after": "a"})
    assert body_of(r) == envelope({"keys": ["zz"]}, 0, [ignored("after")])


def test_http_mount_options_and_the_preflight(http, uid):
    # (type and options sent, options and type then listed): kept as given, as Vault keeps them
    table = [
        ({"type": "kv"}, {}, "kv"),
        ({"type": "kv", "options": {"version": 1}}, {"version": "1"}, "kv"),
        ({"type": "kv-v1"}, {"version": "1"}, "kv"),
        ({"type": "generic"}, {}, "generic"),
    ]
    for i, (body, options, kind) in enumerate(table):
        mount = f"opt{i}-{uid}"
        r = http.post(f"sys/mounts/{mount}", json=body)
        assert r.status_code == 204, r.text
        try:
            m = http.get(f"sys/mounts/{mount}").json()["data"]
            assert (m["options"], m["type"]) == (options, kind), (body, m)
            p = http.get(f"sys/internal/ui/mounts/{mount}/some/key").json()["data"]
            assert (p["path"], p["options"], p["type"]) == (f"{mount}/", options, kind), (body, p)
        finally:
            http.delete(f"sys/mounts/{mount}")


def test_http_tune_version_rules(http, v1):
    def tune(options):
        return http.post(f"sys/mounts/{v1}/tune", json={"options": options})

    for options, errors in [
        ({"version": "3"}, ["invalid version provided: 3"]),
        ({"version": ""}, ["invalid version provided: 0"]),
        ({"version": "abc"}, ['unable to parse options: strconv.ParseInt: parsing "abc": invalid syntax']),
    ]:
        r = tune(options)
        assert (r.status_code, r.json()) == (400, {"errors": errors}), (options, r.text)
    assert http.put(f"{v1}/s", json={"v": 1}).status_code == 204
    # An upgrade answers 200 with Vault's warning (OpenBao 2.7 prints wrong numbers in it).
    r = tune({"version": "2"})
    assert r.status_code == 200, r.text
    b = body_of(r)
    assert b == envelope(None, 0, b["warnings"]), b
    (w,) = b["warnings"]
    assert w.startswith("Upgrading mount from version ") and w.endswith(UPGRADE_WARNING_END), w
    wait_kv2_ready(http, v1)
    r = tune({"version": "2"})
    assert (r.status_code, r.text) == (204, ""), r.text
    r = tune({"version": "1"})
    assert (r.status_code, r.json()) == (400, {"errors": ["cannot downgrade mount from version 2"]})
    d = http.get(f"{v1}/data/s").json()["data"]
    assert (d["data"], d["metadata"]["version"]) == ({"v": 1}, 1)


# ---------------------------------------------------------------- hvac


def test_hvac_kv_v1_create_read_list_delete(client, uid):
    """hvac 2.4.0's own tests/integration_tests/api/secrets_engines/test_kv_v1.py, in short."""
    mount = f"kvv1-{uid}"
    client.sys.enable_secrets_engine(backend_type="kv", path=mount, options=dict(version=1))
    try:
        kv1 = client.secrets.kv.v1
        # no method: hvac reads first, then POSTs (create) or PUTs (update)
        r = kv1.create_or_update_secret(path="hvac/top-secret", secret={"pssst": "hi"}, mount_point=mount)
        assert r.status_code == 204
        r = kv1.create_or_update_secret(path="hvac/top-secret", secret={"pssst": "hi"}, mount_point=mount)
        assert r.status_code == 204
        for method in ("POST", "PUT"):
            r = kv1.create_or_update_secret(path="hvac/m", secret={"m": method}, method=method,
                                            mount_point=mount)
            assert r.status_code == 204
        assert kv1.read_secret(path="hvac/top-secret", mount_point=mount)["data"] == {"pssst": "hi"}
        assert kv1.list_secrets(path="hvac", mount_point=mount)["data"] == {"keys": ["m", "top-secret"]}
        with pytest.raises(Exception) as e:
            kv1.read_secret(path="no-secret-here", mount_point=mount)
        assert type(e.value).__name__ == "InvalidPath"
        with pytest.raises(Exception) as e:
            kv1.list_secrets(path="nothing", mount_point=mount)
        assert type(e.value).__name__ == "InvalidPath"
        assert kv1.delete_secret(path="hvac/top-secret", mount_point=mount).status_code == 204
        assert kv1.delete_secret(path="hvac/no-secret-here", mount_point=mount).status_code == 204
    finally:
        client.sys.disable_secrets_engine(path=mount)


def test_hvac_generic_mount_tune_move_disable(client, uid):
    """The generic-mount case of hvac 2.4.0's tests/integration_tests/api/system_backend/test_mount.py."""
    path, moved = f"test-{uid}", f"foobar-{uid}"
    assert f"{path}/" not in client.sys.list_mounted_secrets_engines()["data"]
    client.sys.enable_secrets_engine(backend_type="generic", path=path)
    try:
        assert client.sys.list_mounted_secrets_engines()["data"][f"{path}/"]["type"] == "generic"
        t = client.sys.read_mount_configuration(path=path)["data"]
        assert (t["default_lease_ttl"], t["max_lease_ttl"]) == (2764800, 2764800)
        client.sys.tune_mount_configuration(path=path, default_lease_ttl="3600s", max_lease_ttl="8600s")
        t = client.sys.read_mount_configuration(path=path)["data"]
        assert (t["default_lease_ttl"], t["max_lease_ttl"]) == (3600, 8600)
        client.secrets.kv.v1.create_or_update_secret(path="k", secret={"a": "1"}, mount_point=path)
        client.sys.move_backend(from_path=path, to_path=moved)
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        assert f"{path}/" not in mounts and mounts[f"{moved}/"]["type"] == "generic"
        r = client.secrets.kv.v1.read_secret(path="k", mount_point=moved)
        assert (r["data"], r["lease_duration"]) == ({"a": "1"}, 3600)
        client.sys.disable_secrets_engine(path=moved)
        assert f"{moved}/" not in client.sys.list_mounted_secrets_engines()["data"]
    finally:
        client.sys.disable_secrets_engine(path=path)
        client.sys.disable_secrets_engine(path=moved)
