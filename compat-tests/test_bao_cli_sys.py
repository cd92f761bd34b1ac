"""The real `bao` CLI: secrets enable/list/disable, kv enable-versioning,
status and login, and mounts whose path contains '/' and a space.
"""



from conftest import wait_kv2_ready


def test_secrets_enable_version2_list_disable(bao, http, uid):
    mount = f"cli-v2-{uid}"
    r = bao("secrets", "enable", f"-path={mount}", "-version=2", "-description=cli test", "kv")
    assert r.rc == 0, r
    assert f"Success! Enabled the kv secrets engine at: {mount}/" in r.stdout
    try:
        r = bao("secrets", "list", "-format=json")
        assert r.rc == 0, r
        m = r.out[f"{mount}/"]
        assert m["type"] == "kv"
        assert m["options"] == {"version": "2"}
        assert m["description"] == "cli test"
        assert r.out["secret/"]["options"] == {"version": "2"}
        # table and -detailed forms decode every mount object
        r = bao("secrets", "list", "-detailed")
        assert r.rc == 0 and f"{mount}/" in r.stdout, r

        wait_kv2_ready(http, mount)
        r = bao("kv", "put", "-format=json", f"{mount}/a/b", "x=1")
        assert r.rc == 0 and r.out["data"]["version"] == 1, r
        r = bao("kv", "get", "-format=json", f"{mount}/a/b")
        assert r.rc == 0 and r.out["data"]["data"] == {"x": "1"}, r

        # enabling again at the same path fails
        r = bao("secrets", "enable", f"-path={mount}", "kv-v2")
        assert r.rc == 2 and "path is already in use" in r.err, r
    finally:
        r = bao("secrets", "disable", mount)
        assert r.rc == 0 and f"Success! Disabled the secrets engine (if it existed) at: {mount}/" in r.stdout, r
    r = bao("secrets", "list", "-format=json")
    assert f"{mount}/" not in r.out
    # disabling a non-existent mount is fine
    assert bao("secrets", "disable", f"never-{uid}").rc == 0


def test_secrets_tune(bao, uid):
    mount = f"cli-tune-{uid}"
    assert bao("secrets", "enable", f"-path={mount}", "kv-v2").rc == 0
    try:
        r = bao("secrets", "tune", "-default-lease-ttl=1h", "-max-lease-ttl=2h", "-description=tuned by cli", mount)
        assert r.rc == 0 and f"Success! Tuned the secrets engine at: {mount}/" in r.stdout, r
        r = bao("read", "-format=json", f"sys/mounts/{mount}/tune")
        assert r.rc == 0, r
        d = r.out["data"]
        assert (d["default_lease_ttl"], d["max_lease_ttl"], d["description"]) == (3600, 7200, "tuned by cli")
        assert d["options"] == {"version": "2"}
        m = bao("secrets", "list", "-format=json").out[f"{mount}/"]
        assert m["config"]["default_lease_ttl"] == 3600 and m["config"]["max_lease_ttl"] == 7200
        assert m["description"] == "tuned by cli"
    finally:
        bao("secrets", "disable", mount)


def test_secrets_enable_kv_v2_type(bao, http, uid):
    mount = f"cli-kvv2-{uid}"
    r = bao("secrets", "enable", f"-path={mount}", "kv-v2")
    assert r.rc == 0, r
    try:
        m = bao("secrets", "list", "-format=json").out[f"{mount}/"]
        assert (m["type"], m["options"]) == ("kv", {"version": "2"})
    finally:
        bao("secrets", "disable", mount)


def test_enable_versioning_upgrade(bao, http, uid):
    # `bao kv enable-versioning` = POST sys/mounts/<m>/tune {"options":{"version":"2"},...}, no preflight
    mount = f"cli-v1-{uid}"
    r = bao("secrets", "enable", f"-path={mount}", "kv")
    assert r.rc == 0, r
    try:
        m = bao("secrets", "list", "-format=json").out[f"{mount}/"]
        assert m["type"] == "kv"
        assert (m["options"] or {}).get("version", "1") in ("", "1")
        # v1 data written before the upgrade (test_kv_v1.py has the v1 API itself)
        r = bao("kv", "put", f"{mount}/old", "v=1")
        assert r.rc == 0, r
        r = bao("kv", "enable-versioning", mount)
        assert r.rc == 0 and f"Success! Tuned the secrets engine at: {mount}/" in r.stdout, r
        m = bao("secrets", "list", "-format=json").out[f"{mount}/"]
        assert m["options"] == {"version": "2"}
        wait_kv2_ready(http, mount)
        r = bao("kv", "put", "-format=json", f"{mount}/new", "v=2")
        assert r.rc == 0 and r.out["data"]["version"] == 1, r
        r = bao("kv", "get", "-format=json", f"{mount}/new")
        assert r.rc == 0 and r.out["data"]["data"] == {"v": "2"}
        r = bao("kv", "metadata", "get", "-format=json", f"{mount}/new")
        assert r.rc == 0 and r.out["data"]["current_version"] == 1, r
        # the v1 key was upgraded to version 1
        r = bao("kv", "get", "-format=json", f"{mount}/old")
        assert r.rc == 0 and r.out["data"]["data"] == {"v": "1"}, r
        assert r.out["data"]["metadata"]["version"] == 1
    finally:
        bao("secrets", "disable", mount)


def test_kv_v1_mount_cli(bao, uid):
    mount = f"cli-plain-{uid}"
    assert bao("secrets", "enable", f"-path={mount}", "-version=1", "kv").rc == 0
    try:
        # v1 mounts use plain paths; v2-only commands are refused by the CLI itself
        r = bao("kv", "put", f"{mount}/k", "a=1")
        assert r.rc == 0, r
        r = bao("kv", "get", "-format=json", f"{mount}/k")
        assert r.rc == 0 and r.out["data"] == {"a": "1"}, r
        assert bao("kv", "undelete", "-versions=1", f"{mount}/k").rc != 0
    finally:
        bao("secrets", "disable", mount)


def test_mount_with_slash_and_space(bao, http, uid):
    mount = f"team a/kv-{uid}"
    r = bao("secrets", "enable", f"-path={mount}", "-version=2", "kv")
    assert r.rc == 0, r
    try:
        assert f"{mount}/" in bao("secrets", "list", "-format=json").out
        wait_kv2_ready(http, mount.replace(" ", "%20"))
        r = bao("kv", "put", "-format=json", f"-mount={mount}", "some secret/pw name", "k=v v")
        assert r.rc == 0 and r.out["data"]["version"] == 1, r
        r = bao("kv", "get", "-format=json", f"-mount={mount}", "some secret/pw name")
        assert r.rc == 0 and r.out["data"]["data"] == {"k": "v v"}, r
        r = bao("kv", "list", "-format=json", f"-mount={mount}", "some secret")
        assert (r.rc, r.out) == (0, ["pw name"]), r
        r = bao("kv", "get", "-format=json", f"{mount}/some secret/pw name")
        assert r.rc == 0 and r.out["data"]["data"] == {"k": "v v"}, r
        r = bao("kv", "metadata", "get", "-format=json", f"-mount={mount}", "some secret/pw name")
        assert r.rc == 0 and r.out["data"]["current_version"] == 1, r
        # same thing over raw HTTP, percent-encoded
        b = http.get(f"team%20a/kv-{uid}/data/some%20secret/pw%20name").json()
        assert b["data"]["data"] == {"k": "v v"}
    finally:
        r = bao("secrets", "disable", mount)
        assert r.rc == 0, r


def test_status(bao):
    r = bao("status", "-format=json")
    assert r.rc == 0, r
    assert r.out["sealed"] is False
    assert r.out["initialized"] is True
    assert isinstance(r.out["type"], str) and r.out["type"]  # seal type is informational only
    assert isinstance(r.out["t"], int) and isinstance(r.out["n"], int)
    r = bao("status")
    assert r.rc == 0 and "Sealed" in r.stdout and "false" in r.stdout, r


def test_login_root(bao, tmp_path, token):
    # a private HOME so the token helper writes there, not to the real ~/.vault-token
    home = tmp_path / "home"
    home.mkdir()
    r = bao("login", "-format=json", token, token=None, env={"HOME": str(home)})
    assert r.rc == 0, r
    assert r.out["auth"]["client_token"] == token
    assert r.out["auth"]["policies"] == ["root"]
    assert (home / ".vault-token").read_text() == token
    # the stored token is then used by later commands (no BAO_TOKEN in env)
    r = bao("kv", "list", "-format=json", "secret/", token=None, env={"HOME": str(home)})
    assert r.rc in (0, 2), r  # 2 only if secret/ is empty; but never 403
    assert "permission denied" not in r.err

    r = bao("login", "bogus-token", token=None, env={"HOME": str(tmp_path)})
    assert r.rc == 2, r
    assert "permission denied" in r.err or "invalid token" in r.err


def test_token_lookup(bao, token):
    r = bao("token", "lookup", "-format=json")
    assert r.rc == 0, r
    assert r.out["data"]["id"] == token
    assert r.out["data"]["policies"] == ["root"]


def test_no_token_is_denied(bao, uid, tmp_path):
    r = bao("kv", "get", f"secret/{uid}", token=None, env={"HOME": str(tmp_path)})
    assert r.rc == 2
    assert "403" in r.err or "permission denied" in r.err
