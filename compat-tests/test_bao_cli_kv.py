"""The real `bao` CLI (OpenBao's fork of the vault CLI, same Go api client)
driving `bao kv ...` against the target.

Every kv subcommand first calls GET sys/internal/ui/mounts/<path> and
type-asserts data.path / data.options.version as strings; the Go client
writes with PUT, lists with GET ?list=true, strips trailing slashes and sends
`versions` as strings. Exit codes: 0 ok, 1 usage/local error, 2 API error or
"No value found".
"""

import json



def put(bao, path, *kv, extra=()):
    r = bao("kv", "put", "-format=json", *extra, path, *kv)
    assert r.rc == 0, r
    return r.out["data"]


def get(bao, path, *extra):
    r = bao("kv", "get", "-format=json", *extra, path)
    assert r.rc == 0, r
    return r.out["data"]


def test_put_get_versions(bao, uid):
    p = f"secret/{uid}/app"
    d1 = put(bao, p, "user=alice", "pw=s3cr3t")
    assert d1["version"] == 1 and d1["deletion_time"] == "" and d1["destroyed"] is False
    d2 = put(bao, p, "user=bob")
    assert d2["version"] == 2
    g = get(bao, p)
    assert g["data"] == {"user": "bob"}
    assert g["metadata"]["version"] == 2
    g1 = get(bao, p, "-version=1")
    assert g1["data"] == {"user": "alice", "pw": "s3cr3t"}
    assert g1["metadata"]["version"] == 1
    # -field prints just the value
    r = bao("kv", "get", "-field=user", p)
    assert (r.rc, r.stdout) == (0, "bob")
    # table output works (metadata is cast to a map by the CLI)
    r = bao("kv", "get", p)
    assert r.rc == 0 and "secret/data/" in r.stdout and "bob" in r.stdout


def test_put_json_from_stdin(bao, uid):
    p = f"secret/{uid}/json"
    r = bao("kv", "put", "-format=json", p, "-", stdin=json.dumps({"n": 5, "nested": {"l": [1, "x"]}}))
    assert r.rc == 0, r
    assert get(bao, p)["data"] == {"n": 5, "nested": {"l": [1, "x"]}}


def test_mount_flag_form(bao, uid):
    d = put(bao, f"{uid}/m", "k=v", extra=("-mount=secret",))
    assert d["version"] == 1
    r = bao("kv", "get", "-format=json", "-mount=secret", f"{uid}/m")
    assert r.rc == 0 and r.out["data"]["data"] == {"k": "v"}
    r = bao("kv", "list", "-format=json", "-mount=secret", uid)
    assert (r.rc, r.out) == (0, ["m"])
    r = bao("kv", "metadata", "get", "-format=json", "-mount=secret", f"{uid}/m")
    assert r.rc == 0 and r.out["data"]["current_version"] == 1
    r = bao("kv", "delete", "-mount=secret", f"{uid}/m")
    assert r.rc == 0, r


def test_get_missing_exit_2(bao, uid):
    r = bao("kv", "get", f"secret/{uid}/missing")
    assert r.rc == 2
    assert f"No value found at secret/data/{uid}/missing" in r.err
    r = bao("kv", "get", "-version=3", f"secret/{uid}/missing")
    assert r.rc == 2


def test_put_cas(bao, uid):
    p = f"secret/{uid}/cas"
    assert put(bao, p, "a=1", extra=("-cas=0",))["version"] == 1
    r = bao("kv", "put", "-cas=0", p, "a=2")
    assert r.rc == 2
    assert "check-and-set parameter did not match the current version" in r.err
    assert put(bao, p, "a=2", extra=("-cas=1",))["version"] == 2


def test_patch_methods(bao, uid):
    p = f"secret/{uid}/patch"
    put(bao, p, "a=1", "b=2", "c=3")
    # default method: PATCH with merge-patch+json
    r = bao("kv", "patch", "-format=json", p, "b=20")
    assert r.rc == 0, r
    assert r.out["data"]["version"] == 2
    assert get(bao, p)["data"] == {"a": "1", "b": "20", "c": "3"}
    r = bao("kv", "patch", "-format=json", "-method=patch", p, "d=4")
    assert r.rc == 0, r
    assert r.out["data"]["version"] == 3
    # rw: GET then PUT with cas=<current version>
    r = bao("kv", "patch", "-format=json", "-method=rw", p, "a=10")
    assert r.rc == 0, r
    assert r.out["data"]["version"] == 4
    assert get(bao, p)["data"] == {"a": "10", "b": "20", "c": "3", "d": "4"}
    # -remove-data sends "k": null
    r = bao("kv", "patch", "-format=json", "-remove-data=c", "-remove-data=d", p)
    assert r.rc == 0, r
    assert get(bao, p)["data"] == {"a": "10", "b": "20"}
    # -cas on patch
    r = bao("kv", "patch", "-cas=1", p, "a=x")
    assert r.rc == 2 and "check-and-set parameter did not match the current version" in r.err
    r = bao("kv", "patch", "-format=json", "-cas=5", p, "a=x")
    assert r.rc == 0 and r.out["data"]["version"] == 6


def test_patch_missing_key_fails(bao, uid):
    # PATCH of a missing key is a 404 with an empty body; the CLI reports it (exit 2)
    r = bao("kv", "patch", f"secret/{uid}/nope", "a=1")
    assert r.rc == 2
    assert "Code: 404" in r.err
    r = bao("kv", "patch", "-method=rw", f"secret/{uid}/nope", "a=1")
    assert r.rc == 2
    assert "No value found" in r.err


def test_list(bao, uid):
    for p in ("b", "a", "dir/x", "a/deeper"):
        put(bao, f"secret/{uid}/{p}", "v=1")
    r = bao("kv", "list", "-format=json", f"secret/{uid}")
    assert (r.rc, r.out) == (0, ["a", "a/", "b", "dir/"])
    r = bao("kv", "list", "-format=json", f"secret/{uid}/")
    assert (r.rc, r.out) == (0, ["a", "a/", "b", "dir/"])
    r = bao("kv", "list", "-format=json", f"secret/{uid}/dir")
    assert (r.rc, r.out) == (0, ["x"])
    r = bao("kv", "list", f"secret/{uid}/empty")
    assert r.rc == 2 and f"No value found at secret/metadata/{uid}/empty" in r.err
    r = bao("kv", "list", "-format=json", "secret/")
    assert r.rc == 0 and f"{uid}/" in r.out


def test_delete_undelete_destroy(bao, uid):
    p = f"secret/{uid}/life"
    for i in range(1, 5):
        put(bao, p, f"i={i}")
    # delete latest
    r = bao("kv", "delete", p)
    assert r.rc == 0 and "Success! Data deleted (if it existed) at: " in r.stdout, r
    r = bao("kv", "get", "-format=json", p)
    # 404 with data: the CLI prints the metadata, no data
    md = r.out["data"]["metadata"] if isinstance(r.out, dict) else None
    assert md and md["version"] == 4 and md["deletion_time"] != "", r
    assert r.out["data"]["data"] is None

    r = bao("kv", "delete", "-versions=1,2", p)
    assert r.rc == 0, r
    meta = bao("kv", "metadata", "get", "-format=json", p).out["data"]
    assert [meta["versions"][v]["deletion_time"] != "" for v in "1234"] == [True, True, False, True]

    r = bao("kv", "undelete", "-versions=1,4", p)
    assert r.rc == 0 and "Success! Data written to: " in r.stdout, r
    assert get(bao, p)["data"] == {"i": "4"}
    assert get(bao, p, "-version=1")["data"] == {"i": "1"}

    r = bao("kv", "destroy", "-versions=1,3", p)
    assert r.rc == 0, r
    meta = bao("kv", "metadata", "get", "-format=json", p).out["data"]
    assert meta["versions"]["1"]["destroyed"] is True
    assert meta["versions"]["3"]["destroyed"] is True
    assert meta["versions"]["4"]["destroyed"] is False
    r = bao("kv", "get", "-format=json", "-version=1", p)
    assert r.out["data"]["data"] is None and r.out["data"]["metadata"]["destroyed"] is True

    # -versions is mandatory for destroy/undelete
    assert bao("kv", "destroy", p).rc == 1
    assert bao("kv", "undelete", p).rc == 1


def test_delete_missing_is_success(bao, uid):
    r = bao("kv", "delete", f"secret/{uid}/never")
    assert r.rc == 0, r


def test_rollback(bao, uid):
    p = f"secret/{uid}/rb"
    put(bao, p, "v=one")
    put(bao, p, "v=two")
    put(bao, p, "v=three")
    r = bao("kv", "rollback", "-format=json", "-version=1", p)
    assert r.rc == 0, r
    assert r.out["data"]["version"] == 4
    g = get(bao, p)
    assert g["data"] == {"v": "one"} and g["metadata"]["version"] == 4
    # rolling back to a deleted version is refused
    bao("kv", "delete", "-versions=2", p)
    r = bao("kv", "rollback", "-version=2", p)
    assert r.rc == 2 and "deleted" in r.err.lower(), r
    # to a version that does not exist
    r = bao("kv", "rollback", "-version=42", p)
    assert r.rc == 2, r


def test_metadata_put_get_patch_delete(bao, uid):
    p = f"secret/{uid}/md"
    put(bao, p, "a=1")
    r = bao("kv", "metadata", "put", "-max-versions=5", "-delete-version-after=1h",
            "-custom-metadata=owner=ops", "-custom-metadata=env=prod", "-cas-required=true", p)
    assert r.rc == 0 and "Success! Data written to: " in r.stdout, r
    d = bao("kv", "metadata", "get", "-format=json", p).out["data"]
    assert d["max_versions"] == 5
    assert d["delete_version_after"] == "1h0m0s"
    assert d["custom_metadata"] == {"owner": "ops", "env": "prod"}
    assert d["cas_required"] is True
    assert d["current_version"] == 1 and d["oldest_version"] == 0
    assert set(d["versions"]) == {"1"}

    # table form parses versions keys as ints
    r = bao("kv", "metadata", "get", p)
    assert r.rc == 0 and "Version 1" in r.stdout, r

    # metadata patch: merges custom_metadata; -remove-custom-metadata sends k:null
    r = bao("kv", "metadata", "patch", "-custom-metadata=team=blue", "-remove-custom-metadata=env",
            "-max-versions=7", p)
    assert r.rc == 0, r
    d = bao("kv", "metadata", "get", "-format=json", p).out["data"]
    assert d["custom_metadata"] == {"owner": "ops", "team": "blue"}
    assert d["max_versions"] == 7
    assert d["delete_version_after"] == "1h0m0s"  # untouched by patch
    assert d["cas_required"] is True

    r = bao("kv", "metadata", "delete", p)
    assert r.rc == 0 and "Success! Data deleted (if it existed) at: " in r.stdout, r
    r = bao("kv", "metadata", "get", p)
    assert r.rc == 2 and "No value found" in r.err
    r = bao("kv", "get", p)
    assert r.rc == 2


def test_metadata_put_on_new_key(bao, uid):
    p = f"secret/{uid}/fresh"
    r = bao("kv", "metadata", "put", "-max-versions=2", p)
    assert r.rc == 0, r
    d = bao("kv", "metadata", "get", "-format=json", p).out["data"]
    assert d["current_version"] == 0 and d["versions"] == {} and d["max_versions"] == 2
    for i in range(3):
        put(bao, p, f"i={i}")
    d = bao("kv", "metadata", "get", "-format=json", p).out["data"]
    assert sorted(d["versions"], key=int) == ["2", "3"] and d["oldest_version"] == 2


def test_cas_required_via_cli(bao, uid):
    p = f"secret/{uid}/casreq"
    put(bao, p, "a=1")
    assert bao("kv", "metadata", "put", "-cas-required", p).rc == 0
    r = bao("kv", "put", p, "a=2")
    assert r.rc == 2 and "check-and-set parameter required for this call" in r.err
    assert put(bao, p, "a=2", extra=("-cas=1",))["version"] == 2
