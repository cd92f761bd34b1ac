"""Edge cases that real clients hit: concurrency under CAS, odd path
characters, unicode and large payloads, custom_metadata limits."""

import threading

import pytest


def test_concurrent_cas_single_winner(http, uid):
    # KV v2 CAS is a per-key read-modify-write under a lock: with N writers
    # racing on cas=1 exactly one may win.
    http.post(f"secret/data/{uid}", json={"data": {"w": -1}})
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def writer(i):
        import requests
        barrier.wait()
        r = requests.post(f"{http.addr}/v1/secret/data/{uid}", headers={"X-Vault-Token": http.token},
                          json={"data": {"w": i}, "options": {"cas": 1}}, timeout=20)
        with lock:
            results.append((r.status_code, r.json()))

    ts = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ok = [b for s, b in results if s == 200]
    bad = [b for s, b in results if s != 200]
    assert len(ok) == 1, results
    assert ok[0]["data"]["version"] == 2
    assert all(b == {"errors": ["check-and-set parameter did not match the current version"]} for b in bad), bad
    md = http.get(f"secret/metadata/{uid}").json()["data"]
    assert md["current_version"] == 2 and set(md["versions"]) == {"1", "2"}


def test_concurrent_plain_writes_get_distinct_versions(http, uid):
    got = []
    lock = threading.Lock()

    def writer(i):
        import requests
        r = requests.post(f"{http.addr}/v1/secret/data/{uid}", headers={"X-Vault-Token": http.token},
                          json={"data": {"w": i}}, timeout=20)
        with lock:
            got.append((r.status_code, r.json()["data"]["version"]))

    ts = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(s == 200 for s, _ in got), got
    assert sorted(v for _, v in got) == list(range(1, 9))


def test_hvac_paths_with_spaces_and_unicode(client, uid):
    kv = client.secrets.kv.v2
    path = f"{uid}/dir with space/naïve ключ"
    secret = {"ünï": "välue ✓", "emoji": "🔐", "empty": "", "zero": 0, "f": 1.5, "b": False, "nil": None}
    assert kv.create_or_update_secret(path=path, secret=secret)["data"]["version"] == 1
    assert kv.read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == secret
    assert kv.list_secrets(path=uid)["data"] == {"keys": ["dir with space/"]}
    assert kv.list_secrets(path=f"{uid}/dir with space")["data"] == {"keys": ["naïve ключ"]}


def test_large_secret(client, uid):
    kv = client.secrets.kv.v2
    big = {"blob": "x" * 200_000, "items": [{"i": i, "s": str(i) * 5} for i in range(200)]}  # OpenBao caps JSON string count per request
    assert kv.create_or_update_secret(path=uid, secret=big)["data"]["version"] == 1
    assert kv.read_secret_version(path=uid, raise_on_deleted_version=True)["data"]["data"] == big


def test_empty_secret_object(client, uid):
    kv = client.secrets.kv.v2
    assert kv.create_or_update_secret(path=uid, secret={})["data"]["version"] == 1
    got = kv.read_secret_version(path=uid, raise_on_deleted_version=True)
    assert got["data"]["data"] == {}
    assert got["data"]["metadata"]["version"] == 1


@pytest.mark.parametrize("cm,why", [
    ({f"k{i}": "v" for i in range(65)}, "more than 64 keys"),
    ({"k" * 129: "v"}, "key longer than 128"),
    ({"k": "v" * 513}, "value longer than 512"),
    ({"": "v"}, "empty key"),
])
def test_custom_metadata_limits(http, uid, cm, why):
    r = http.post(f"secret/metadata/{uid}", json={"custom_metadata": cm})
    assert r.status_code == 400, why
    assert r.headers["Content-Type"] == "application/json"
    assert "custom_metadata validation failed" in r.json()["errors"][0], (why, r.json())


def test_custom_metadata_at_limits_ok(http, uid):
    cm = {f"k{i:02d}": "v" * 512 for i in range(63)}
    cm["K" * 128] = "w"
    r = http.post(f"secret/metadata/{uid}", json={"custom_metadata": cm})
    assert r.status_code == 204, r.text
    assert http.get(f"secret/metadata/{uid}").json()["data"]["custom_metadata"] == cm


def test_sys_mount_read_single(http):
    r = http.get("sys/mounts/secret")
    assert r.status_code == 200
    d = r.json()["data"]
    assert d["type"] == "kv" and d["options"] == {"version": "2"}
    assert isinstance(d["accessor"], str) and isinstance(d["uuid"], str)


def test_enable_mount_with_nulls(http, uid):
    # hvac sends nulls for description/config/plugin_name and an int option.
    # (OpenBao answers 400 "cannot write to a path ending in '/'" for sys/mounts/x/,
    # the Go CLI strips the slash anyway, so no trailing slash here.)
    r = http.post(f"sys/mounts/sl-{uid}", json={"type": "kv", "description": None, "config": None,
                                                 "options": {"version": 2}, "plugin_name": None,
                                                 "local": False, "seal_wrap": False})
    assert r.status_code == 204, r.text
    try:
        d = http.get("sys/mounts").json()["data"][f"sl-{uid}/"]
        assert d["options"] == {"version": "2"}
        assert d["description"] == ""
    finally:
        assert http.delete(f"sys/mounts/sl-{uid}").status_code == 204


def test_token_lookup_self_post(http, token):
    r = http.post("auth/token/lookup-self")
    assert r.status_code == 200
    d = r.json()["data"]
    assert d["id"] == token and d["policies"] == ["root"]
    r = http.get("auth/token/lookup-self", token="bogus")
    assert r.status_code == 403
