"""hvac: client.sys mount management, health, init and seal status.

hvac sends enable_secrets_engine(options={"version": 2}) with an *int* and
nulls for unset fields; the server must coerce options to strings (the Go
CLI type-asserts options.version as a string).
"""

import pytest
from hvac import exceptions

from conftest import wait_kv2_ready


@pytest.mark.parametrize("how", ["kv-int-version", "kv-v2-type"])
def test_enable_list_tune_disable_kv2(client, http, uid, how):
    mount = f"m-{how}-{uid}"
    if how == "kv-int-version":
        r = client.sys.enable_secrets_engine("kv", path=mount, options={"version": 2}, description="int opt")
    else:
        r = client.sys.enable_secrets_engine("kv-v2", path=mount, description="int opt")
    assert r.status_code == 204
    try:
        mounts = client.sys.list_mounted_secrets_engines()
        m = mounts["data"][f"{mount}/"]
        assert m["type"] == "kv"
        assert m["options"] == {"version": "2"}  # string, not int
        assert m["description"] == "int opt"
        assert isinstance(m["accessor"], str) and m["accessor"].startswith("kv_")
        assert m["local"] is False and m["seal_wrap"] is False
        # sys/mounts also injects the mounts at the top level of the body
        assert mounts[f"{mount}/"]["type"] == "kv"
        assert "secret/" in mounts["data"]
        assert client.sys.retrieve_mount_option(mount, "version") == "2"

        wait_kv2_ready(http, mount)
        w = client.secrets.kv.v2.create_or_update_secret(path="x", secret={"a": "1"}, mount_point=mount)
        assert w["data"]["version"] == 1

        cfg = client.sys.read_mount_configuration(mount)
        assert cfg["data"]["default_lease_ttl"] == 2764800  # system default 768h, in seconds
        assert cfg["data"]["max_lease_ttl"] == 2764800
        assert cfg["data"]["options"] == {"version": "2"}

        assert client.sys.tune_mount_configuration(mount, default_lease_ttl="1h", max_lease_ttl="2h",
                                                   description="tuned").status_code == 204
        cfg = client.sys.read_mount_configuration(mount)
        assert cfg["data"]["default_lease_ttl"] == 3600
        assert cfg["data"]["max_lease_ttl"] == 7200
        assert cfg["data"]["description"] == "tuned"
        assert client.sys.list_mounted_secrets_engines()["data"][f"{mount}/"]["description"] == "tuned"
    finally:
        assert client.sys.disable_secrets_engine(mount).status_code == 204
    assert f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]
    # data is gone with the mount
    with pytest.raises((exceptions.InvalidPath, exceptions.Forbidden)):
        client.secrets.kv.v2.read_secret_version(path="x", mount_point=mount, raise_on_deleted_version=True)


def test_enable_conflicting_path(client, uid):
    mount = f"dup-{uid}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    try:
        with pytest.raises(exceptions.InvalidRequest) as ei:
            client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        assert any("path is already in use at" in e for e in ei.value.errors), ei.value.errors
        # nested inside an existing mount also conflicts
        with pytest.raises(exceptions.InvalidRequest):
            client.sys.enable_secrets_engine("kv", path=f"{mount}/inner", options={"version": "2"})
        with pytest.raises(exceptions.InvalidRequest):
            client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    finally:
        client.sys.disable_secrets_engine(mount)


def test_disable_nonexistent_mount_is_ok(client, uid):
    assert client.sys.disable_secrets_engine(f"never-{uid}").status_code == 204


def test_default_secret_mount_is_kv2(client):
    mounts = client.sys.list_mounted_secrets_engines()
    m = mounts["data"]["secret/"]
    assert m["type"] == "kv"
    assert m["options"] == {"version": "2"}
    # `bao secrets list` mapstructure-decodes data into map[string]*MountOutput:
    # every value must be a mount object with these typed fields
    for path, info in mounts["data"].items():
        assert path.endswith("/"), path
        assert isinstance(info, dict) and isinstance(info["type"], str), (path, info)
        assert isinstance(info["accessor"], str) and isinstance(info["description"], str)
        assert isinstance(info["config"]["default_lease_ttl"], int)
        assert isinstance(info["config"]["max_lease_ttl"], int)
        assert info["options"] is None or all(isinstance(v, str) for v in info["options"].values())


def test_is_initialized_and_health(client):
    assert client.sys.is_initialized() is True
    assert client.sys.read_init_status() == {"initialized": True}
    # hvac defaults to HEAD for health: a Response with status 200
    head = client.sys.read_health_status()
    assert head.status_code == 200
    h = client.sys.read_health_status(method="GET")
    assert h["initialized"] is True
    assert h["sealed"] is False
    assert h["standby"] is False
    assert isinstance(h["server_time_utc"], int)
    assert isinstance(h["version"], str) and h["version"]


def test_seal_status(client):
    assert client.sys.is_sealed() is False
    s = client.sys.read_seal_status()
    assert s["sealed"] is False
    assert s["initialized"] is True
    # OpenBao says "shamir"; no client acts on the seal type, so any non-empty string
    assert isinstance(s["type"], str) and s["type"]
    assert isinstance(s["t"], int) and isinstance(s["n"], int)
    assert s["progress"] == 0
    # raw JSON: no envelope
    assert "data" not in s and "request_id" not in s


def test_token_lookup_self(client, token):
    d = client.auth.token.lookup_self()["data"]
    assert d["id"] == token
    assert d["policies"] == ["root"]
    assert d["ttl"] == 0
    assert d["expire_time"] is None
    assert isinstance(d["accessor"], str)
    assert client.is_authenticated() is True
