"""The generic `bao read/write/list/delete` commands on kv-v2 API paths.

They go through the same Go client as `bao kv`, but `bao write k=v` sends
every value as a *string* ({"max_versions":"5","cas_required":"true"}), so
the server must weakly decode strings into ints, bools and durations like
Vault's framework does. Scripts and Terraform-era tooling use these forms.
"""

import json


def test_write_read_config_with_string_values(bao, kv_mount):
    r = bao("write", f"{kv_mount}/config", "max_versions=5", "cas_required=true", "delete_version_after=1h")
    assert r.rc == 0 and f"Success! Data written to: {kv_mount}/config" in r.stdout, r
    r = bao("read", "-format=json", f"{kv_mount}/config")
    assert r.rc == 0, r
    d = r.out["data"]
    assert (d["max_versions"], d["cas_required"], d["delete_version_after"]) == (5, True, "1h0m0s")


def test_write_read_list_delete_data_paths(bao, uid, tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"data": {"a": "b", "n": 1}, "options": {"cas": 0}}))
    r = bao("write", "-format=json", f"secret/data/{uid}/gen", f"@{f}")
    assert r.rc == 0 and r.out["data"]["version"] == 1, r
    r = bao("read", "-format=json", f"secret/data/{uid}/gen")
    assert r.rc == 0 and r.out["data"]["data"] == {"a": "b", "n": 1}, r
    r = bao("read", "-format=json", f"secret/data/{uid}/gen", "version=1")
    assert r.rc == 0 and r.out["data"]["metadata"]["version"] == 1, r
    r = bao("list", "-format=json", f"secret/metadata/{uid}")
    assert (r.rc, r.out) == (0, ["gen"]), r
    # versions as a comma string through the generic writer
    r = bao("write", f"secret/delete/{uid}/gen", "versions=1")
    assert r.rc == 0, r
    r = bao("read", "-format=json", f"secret/metadata/{uid}/gen")
    assert r.out["data"]["versions"]["1"]["deletion_time"] != ""
    r = bao("delete", f"secret/metadata/{uid}/gen")
    assert r.rc == 0 and "Success! Data deleted (if it existed) at: " in r.stdout, r
    r = bao("read", f"secret/data/{uid}/gen")
    assert r.rc == 2 and "No value found at " in r.err, r
    r = bao("list", f"secret/metadata/{uid}")
    assert r.rc == 2 and "No value found at " in r.err, r


def test_write_metadata_string_values(bao, uid):
    p = f"secret/metadata/{uid}/m"
    r = bao("write", p, "max_versions=3", "cas_required=false", "delete_version_after=30m")
    assert r.rc == 0, r
    d = bao("read", "-format=json", p).out["data"]
    assert (d["max_versions"], d["cas_required"], d["delete_version_after"]) == (3, False, "30m0s")
    assert d["current_version"] == 0 and d["versions"] == {}
