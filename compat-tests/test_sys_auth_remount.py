"""`bao auth list` / hvac's `sys.list_auth_methods` (sys/auth, read-only in kvseal) and
`bao secrets move` / hvac's `sys.move_backend` (sys/remount and its status endpoint).
"""

import time

import pytest

from conftest import wait_kv2_ready


def _token_method(m: dict) -> None:
    """The token method as OpenBao 2.7 lists it (ids and running version differ by server)."""
    assert m["type"] == "token", m
    assert m["description"] == "token based credentials", m
    assert m["accessor"].startswith("auth_token_"), m
    assert m["config"]["token_type"] == "default-service", m
    assert (m["config"]["default_lease_ttl"], m["config"]["max_lease_ttl"]) == (0, 0), m
    assert m["options"] is None and m["local"] is False and m["seal_wrap"] is False, m
    assert len(m["uuid"]) == 36, m


def test_bao_auth_list(bao, target):
    r = bao("auth", "list", "-format=json")
    assert r.rc == 0, r
    _token_method(r.out["token/"])
    if target == "kvseal":
        assert list(r.out) == ["token/"], "no [[auth.cert]] identities in dev mode"
    # the table and -detailed forms decode every field
    for args in (["auth", "list"], ["auth", "list", "-detailed"]):
        r = bao(*args)
        assert r.rc == 0 and "token/" in r.stdout and "token based credentials" in r.stdout, r


def test_hvac_list_auth_methods(client):
    methods = client.sys.list_auth_methods()
    _token_method(methods["data"]["token/"])
    assert methods["token/"] == methods["data"]["token/"], "injected at the top level too"


def test_bao_auth_disable_token_is_refused(bao):
    r = bao("auth", "disable", "token")
    assert r.rc == 2 and "token credential backend cannot be disabled" in r.err, r


def test_bao_auth_enable(bao, target, uid):
    r = bao("auth", "enable", f"-path=cert-{uid}", "cert")
    if target == "bao":
        assert r.rc == 0, r
        assert bao("auth", "disable", f"cert-{uid}").rc == 0
    else:
        assert r.rc == 2, r
        assert f"cannot enable an auth method at cert-{uid}/: kvseal's auth methods are fixed" in r.err, r
        assert f"cert-{uid}/" not in bao("auth", "list", "-format=json").out


def test_bao_secrets_move_keeps_data_and_versions(bao, http, uid, target):
    src, dst = f"mv-src-{uid}", f"mv-dst-{uid}/inner"
    assert bao("secrets", "enable", f"-path={src}", "kv-v2").rc == 0
    wait_kv2_ready(http, src)
    try:
        assert bao("kv", "put", f"{src}/app/db", "password=one").rc == 0
        assert bao("kv", "put", f"{src}/app/db", "password=two").rc == 0
        r = bao("secrets", "move", src, dst)
        assert r.rc == 0, r
        assert f"Success! Finished moving secrets engine {src}/ to {dst}/, with migration ID" in r.stdout, r
        if target == "kvseal":
            # the move is done when sys/remount answers: the CLI never waits (10 s per poll)
            assert "Waiting for terminal status" not in r.stdout, r
        migration_id = r.stdout.rsplit("with migration ID ", 1)[1].strip()

        r = bao("read", "-format=json", f"sys/remount/status/{migration_id}")
        assert r.rc == 0, r
        assert r.out["data"]["migration_info"] == {
            "source_mount": f"{src}/", "target_mount": f"{dst}/", "status": "success"}, r

        mounts = bao("secrets", "list", "-format=json").out
        assert f"{dst}/" in mounts and f"{src}/" not in mounts, mounts
        r = bao("kv", "get", "-format=json", f"{dst}/app/db")
        assert r.rc == 0 and r.out["data"]["data"] == {"password": "two"}, r
        assert r.out["data"]["metadata"]["version"] == 2, r
        r = bao("kv", "get", "-format=json", "-version=1", f"{dst}/app/db")
        assert r.rc == 0 and r.out["data"]["data"] == {"password": "one"}, r
        assert bao("kv", "get", f"{src}/app/db").rc == 2
    finally:
        bao("secrets", "disable", src)
        bao("secrets", "disable", dst)


def test_bao_secrets_move_refusals(bao, uid):
    src = f"mv-ref-{uid}"
    assert bao("secrets", "enable", f"-path={src}", "kv-v2").rc == 0
    try:
        for (frm, to), error in [
            ((src, "secret"), 'path already in use at "secret/"'),
            ((src, "secret/below"), 'path already in use at "secret/"'),
            ((f"nothere-{uid}", f"x-{uid}"), f'no matching mount at "nothere-{uid}/"'),
            ((src, "sys/x"), "cannot remount to destination sys/x/"),
        ]:
            r = bao("secrets", "move", frm, to)
            assert r.rc == 2 and error in r.err, (frm, to, r)
        assert f"{src}/" in bao("secrets", "list", "-format=json").out
    finally:
        bao("secrets", "disable", src)


def test_bao_secrets_move_refused_while_okms_domain_names_the_mount(bao, okms_id):
    # (the okms_id fixture skips on OpenBao, which has no OKMS domains)
    r = bao("secrets", "move", "secret", "secret-moved")
    assert r.rc == 2, r
    assert f"the OKMS domain {okms_id} is backed by it" in r.err and "[[okms.domains]]" in r.err, r
    assert "secret/" in bao("secrets", "list", "-format=json").out


def test_hvac_move_backend(client, http, uid, target):
    src, dst = f"hv-src-{uid}", f"hv-dst-{uid}"
    client.sys.enable_secrets_engine("kv", path=src, options={"version": "2"})
    wait_kv2_ready(http, src)
    try:
        client.secrets.kv.v2.create_or_update_secret("k", secret={"a": "1"}, mount_point=src)
        client.secrets.kv.v2.create_or_update_secret("k", secret={"a": "2"}, mount_point=src)
        resp = client.sys.move_backend(src, dst)
        migration_id = resp["migration_id"]
        assert resp["data"]["migration_id"] == migration_id, resp
        # OpenBao moves in the background: poll its status as the CLI does (kvseal is done already).
        status = client.read(f"sys/remount/status/{migration_id}")["data"]["migration_info"]
        if target == "kvseal":
            assert status["status"] == "success", status
        for _ in range(50):
            if status["status"] == "success":
                break
            time.sleep(0.2)
            status = client.read(f"sys/remount/status/{migration_id}")["data"]["migration_info"]
        assert status == {"source_mount": f"{src}/", "target_mount": f"{dst}/", "status": "success"}
        v = client.secrets.kv.v2.read_secret_version("k", mount_point=dst, raise_on_deleted_version=True)
        assert v["data"]["data"] == {"a": "2"} and v["data"]["metadata"]["version"] == 2
        v1 = client.secrets.kv.v2.read_secret_version("k", version=1, mount_point=dst,
                                                       raise_on_deleted_version=True)
        assert v1["data"]["data"] == {"a": "1"}
        assert f"{dst}/" in client.sys.list_mounted_secrets_engines()["data"]
    finally:
        for m in (src, dst):
            try:
                client.sys.disable_secrets_engine(m)
            except Exception:
                pass


@pytest.mark.parametrize("path", ["sys/remount/status/0b1c2d3e-0000-4000-8000-000000000000"])
def test_remount_status_of_an_unknown_id_is_404(http, path):
    r = http.get(path)
    assert r.status_code == 404 and r.json() == {"errors": []}, r.text
