"""hvac: kv-v2 metadata/ (read, update, delete), LIST, and version pruning.

hvac's list test compares result['data'] to exactly {'keys': [...]}, and
`vault kv metadata get` does strconv.Atoi on the `versions` keys, so the
shapes here are asserted exactly.
"""

import pytest
from hvac import exceptions

from conftest import RFC3339NANO_RE


def kv(client):
    return client.secrets.kv.v2


def test_read_metadata_fields_and_types(client, uid):
    path = f"{uid}/meta"
    w1 = kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    w2 = kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    d = kv(client).read_secret_metadata(path=path)["data"]
    assert d["current_version"] == 2 and type(d["current_version"]) is int
    assert d["oldest_version"] == 0 and type(d["oldest_version"]) is int
    assert d["max_versions"] == 0
    assert d["cas_required"] is False
    assert d["delete_version_after"] == "0s"
    assert d["custom_metadata"] is None
    assert set(d["versions"]) == {"1", "2"}
    for v, w in (("1", w1), ("2", w2)):
        assert d["versions"][v]["created_time"] == w["data"]["created_time"]
        assert d["versions"][v]["deletion_time"] == ""
        assert d["versions"][v]["destroyed"] is False
    # key created_time = first version; updated_time = last write
    assert d["created_time"] == w1["data"]["created_time"]
    assert d["updated_time"] == w2["data"]["created_time"]
    assert RFC3339NANO_RE.match(d["created_time"]) and RFC3339NANO_RE.match(d["updated_time"])


def test_read_missing_metadata(client, uid):
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_metadata(path=f"{uid}/none")
    assert ei.value.json == {"errors": []}


def test_update_metadata_roundtrip(client, uid):
    path = f"{uid}/um"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    r = kv(client).update_metadata(
        path=path, max_versions=5, cas_required=True, delete_version_after="30m0s",
        custom_metadata={"owner": "ops", "tier": "gold"},
    )
    assert r.status_code == 204
    d = kv(client).read_secret_metadata(path=path)["data"]
    assert d["max_versions"] == 5
    assert d["cas_required"] is True
    assert d["delete_version_after"] == "30m0s"
    assert d["custom_metadata"] == {"owner": "ops", "tier": "gold"}

    # custom_metadata is replaced wholesale; hvac always sends delete_version_after="0s"
    kv(client).update_metadata(path=path, custom_metadata={"owner": "dev"})
    d = kv(client).read_secret_metadata(path=path)["data"]
    assert d["custom_metadata"] == {"owner": "dev"}
    assert d["delete_version_after"] == "0s"
    assert d["max_versions"] == 5 and d["cas_required"] is True

    # custom_metadata shows up in the version metadata of data reads
    got = kv(client).read_secret_version(path=path, raise_on_deleted_version=True)
    assert got["data"]["metadata"]["custom_metadata"] == {"owner": "dev"}


def test_update_metadata_creates_key_without_versions(client, uid):
    path = f"{uid}/mdonly"
    kv(client).update_metadata(path=path, max_versions=3, custom_metadata={"k": "v"})
    d = kv(client).read_secret_metadata(path=path)["data"]
    assert d["current_version"] == 0
    assert d["versions"] == {}
    assert d["max_versions"] == 3
    assert d["custom_metadata"] == {"k": "v"}
    # reading data of a key with metadata but no versions is a plain 404
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=path, raise_on_deleted_version=False)
    assert ei.value.json == {"errors": []}
    # it is listed
    assert kv(client).list_secrets(path=uid)["data"] == {"keys": ["mdonly"]}
    assert kv(client).create_or_update_secret(path=path, secret={"a": 1})["data"]["version"] == 1


def test_delete_metadata_and_all_versions(client, uid):
    path = f"{uid}/gone"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    assert kv(client).delete_metadata_and_all_versions(path=path).status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        kv(client).read_secret_metadata(path=path)
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=False)
    assert ei.value.json == {"errors": []}
    # the key starts again at version 1
    assert kv(client).create_or_update_secret(path=path, secret={"a": "3"})["data"]["version"] == 1


def test_list_shape_sorted_and_folders(client, uid):
    for p in ("b", "a", "dir/x", "dir/sub/y", "c", "c/inner"):
        kv(client).create_or_update_secret(path=f"{uid}/{p}", secret={"v": p})
    got = kv(client).list_secrets(path=uid)
    assert got["data"] == {"keys": ["a", "b", "c", "c/", "dir/"]}
    assert kv(client).list_secrets(path=f"{uid}/dir")["data"] == {"keys": ["sub/", "x"]}
    # trailing slash on the request is fine
    assert kv(client).list_secrets(path=f"{uid}/dir/")["data"] == {"keys": ["sub/", "x"]}
    assert kv(client).list_secrets(path=f"{uid}/dir/sub")["data"] == {"keys": ["y"]}


def test_list_empty_or_missing_folder(client, uid):
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).list_secrets(path=f"{uid}/nothing-here")
    assert ei.value.json == {"errors": []}
    # a folder whose only key was metadata-deleted is gone
    kv(client).create_or_update_secret(path=f"{uid}/f/only", secret={"a": "1"})
    kv(client).delete_metadata_and_all_versions(path=f"{uid}/f/only")
    with pytest.raises(exceptions.InvalidPath):
        kv(client).list_secrets(path=f"{uid}/f")


def test_list_keeps_soft_deleted_keys(client, uid):
    kv(client).create_or_update_secret(path=f"{uid}/sd", secret={"a": "1"})
    kv(client).delete_latest_version_of_secret(path=f"{uid}/sd")
    assert kv(client).list_secrets(path=uid)["data"] == {"keys": ["sd"]}


def test_list_mount_root(client, kv_mount):
    kv(client).create_or_update_secret(path="top", secret={"a": "1"}, mount_point=kv_mount)
    kv(client).create_or_update_secret(path="folder/k", secret={"a": "1"}, mount_point=kv_mount)
    assert kv(client).list_secrets(path="", mount_point=kv_mount)["data"] == {"keys": ["folder/", "top"]}


def test_pruning_max_versions_3(client, uid):
    # Vault rule (spec §1.2): after a write, if current - oldest >= max,
    # versions[oldest..=current-max] are dropped and oldest = current-max+1.
    path = f"{uid}/prune"
    kv(client).update_metadata(path=path, max_versions=3)
    expect = {
        1: (0, {"1"}),
        2: (0, {"1", "2"}),
        3: (1, {"1", "2", "3"}),
        4: (2, {"2", "3", "4"}),
        5: (3, {"3", "4", "5"}),
    }
    for i in range(1, 6):
        assert kv(client).create_or_update_secret(path=path, secret={"i": i})["data"]["version"] == i
        d = kv(client).read_secret_metadata(path=path)["data"]
        assert (d["oldest_version"], set(d["versions"])) == expect[i], f"after write {i}"
        assert d["current_version"] == i
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=path, version=2, raise_on_deleted_version=False)
    assert ei.value.json == {"errors": []}
    assert kv(client).read_secret_version(path=path, version=3, raise_on_deleted_version=True)["data"]["data"] == {"i": 3}


def test_pruning_uses_larger_of_key_and_mount(client, kv_mount, uid):
    # effective max = max(key.max_versions, config.max_versions)
    kv(client).configure(max_versions=4, mount_point=kv_mount)
    kv(client).update_metadata(path=uid, max_versions=2, mount_point=kv_mount)
    for i in range(1, 7):
        kv(client).create_or_update_secret(path=uid, secret={"i": i}, mount_point=kv_mount)
    d = kv(client).read_secret_metadata(path=uid, mount_point=kv_mount)["data"]
    assert sorted(d["versions"], key=int) == ["3", "4", "5", "6"]
    assert d["oldest_version"] == 3


def test_lowering_max_versions_prunes_on_next_write(client, uid):
    path = f"{uid}/lower"
    for i in range(1, 6):
        kv(client).create_or_update_secret(path=path, secret={"i": i})
    kv(client).update_metadata(path=path, max_versions=2)
    d = kv(client).read_secret_metadata(path=path)["data"]
    assert set(d["versions"]) == {"1", "2", "3", "4", "5"} and d["oldest_version"] == 0
    kv(client).create_or_update_secret(path=path, secret={"i": 6})
    d = kv(client).read_secret_metadata(path=path)["data"]
    assert set(d["versions"]) == {"5", "6"} and d["oldest_version"] == 5
