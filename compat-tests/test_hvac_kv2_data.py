"""hvac: kv-v2 data/ writes and reads, CAS, soft delete / undelete / destroy.

Message texts are asserted exactly because hvac surfaces them to users
(str(exception)) and scripts match on them.
"""

import datetime
import time

import hvac
import pytest
from hvac import exceptions

from conftest import RFC3339NANO_RE

def kv(client):
    return client.secrets.kv.v2


def test_create_and_read_versions(client, uid):
    path = f"{uid}/app"
    w1 = kv(client).create_or_update_secret(path=path, secret={"user": "alice", "n": 1})
    # the write response is the version metadata, flat under data
    assert set(w1["data"]) >= {"version", "created_time", "deletion_time", "destroyed", "custom_metadata"}
    assert w1["data"]["version"] == 1
    assert w1["data"]["deletion_time"] == ""
    assert w1["data"]["destroyed"] is False
    assert w1["data"]["custom_metadata"] is None
    assert RFC3339NANO_RE.match(w1["data"]["created_time"]), w1["data"]["created_time"]

    w2 = kv(client).create_or_update_secret(path=path, secret={"user": "bob", "nested": {"a": [1, 2]}})
    assert w2["data"]["version"] == 2

    cur = kv(client).read_secret_version(path=path, raise_on_deleted_version=True)
    assert cur["data"]["data"] == {"user": "bob", "nested": {"a": [1, 2]}}
    md = cur["data"]["metadata"]
    assert md["version"] == 2
    assert md["deletion_time"] == ""
    assert md["destroyed"] is False
    assert md["custom_metadata"] is None
    assert RFC3339NANO_RE.match(md["created_time"]), md["created_time"]
    assert md["created_time"] == w2["data"]["created_time"]

    old = kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=True)
    assert old["data"]["data"] == {"user": "alice", "n": 1}  # JSON types preserved
    assert old["data"]["metadata"]["version"] == 1
    assert old["data"]["metadata"]["created_time"] == w1["data"]["created_time"]

    # read_secret (no version) == current version
    assert kv(client).read_secret(path=path, raise_on_deleted_version=True)["data"]["data"]["user"] == "bob"


def test_read_missing_path_and_version(client, uid):
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=f"{uid}/nope", raise_on_deleted_version=False)
    assert ei.value.json == {"errors": []}
    kv(client).create_or_update_secret(path=f"{uid}/one", secret={"a": "b"})
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=f"{uid}/one", version=5, raise_on_deleted_version=False)
    assert ei.value.json == {"errors": []}


def test_cas_create_only_and_mismatch(client, uid):
    path = f"{uid}/cas"
    assert kv(client).create_or_update_secret(path=path, secret={"v": "1"}, cas=0)["data"]["version"] == 1
    with pytest.raises(exceptions.InvalidRequest) as ei:
        kv(client).create_or_update_secret(path=path, secret={"v": "again"}, cas=0)
    assert ei.value.errors == ["check-and-set parameter did not match the current version"]
    assert ei.value.json == {"errors": ["check-and-set parameter did not match the current version"]}
    with pytest.raises(exceptions.InvalidRequest) as ei:
        kv(client).create_or_update_secret(path=path, secret={"v": "x"}, cas=5)
    assert ei.value.errors == ["check-and-set parameter did not match the current version"]
    # hvac's own test: cas=-1 must fail
    with pytest.raises(exceptions.InvalidRequest):
        kv(client).create_or_update_secret(path=path, secret={"v": "x"}, cas=-1)
    assert kv(client).create_or_update_secret(path=path, secret={"v": "2"}, cas=1)["data"]["version"] == 2
    assert kv(client).read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {"v": "2"}


def test_cas_required_on_mount(client, kv_mount, uid):
    kv(client).configure(max_versions=10, cas_required=True, mount_point=kv_mount)
    with pytest.raises(exceptions.InvalidRequest) as ei:
        kv(client).create_or_update_secret(path=uid, secret={"a": "1"}, mount_point=kv_mount)
    assert ei.value.errors == ["check-and-set parameter required for this call"]
    assert kv(client).create_or_update_secret(path=uid, secret={"a": "1"}, cas=0, mount_point=kv_mount)["data"]["version"] == 1
    assert kv(client).create_or_update_secret(path=uid, secret={"a": "2"}, cas=1, mount_point=kv_mount)["data"]["version"] == 2


def test_cas_required_on_key(client, uid):
    path = f"{uid}/k"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).update_metadata(path=path, cas_required=True)
    with pytest.raises(exceptions.InvalidRequest) as ei:
        kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    assert ei.value.errors == ["check-and-set parameter required for this call"]
    assert kv(client).create_or_update_secret(path=path, secret={"a": "2"}, cas=1)["data"]["version"] == 2


def test_soft_deleted_version_read(client, uid):
    path = f"{uid}/del"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    r = kv(client).delete_latest_version_of_secret(path=path)
    assert r.status_code == 204

    # hvac relies on the deleted-version 404 carrying a full envelope.
    got = kv(client).read_secret_version(path=path, raise_on_deleted_version=False)
    assert got["data"]["data"] is None
    assert got["data"]["metadata"]["version"] == 2
    assert RFC3339NANO_RE.match(got["data"]["metadata"]["deletion_time"])
    assert got["data"]["metadata"]["destroyed"] is False
    assert "errors" not in got

    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=path, raise_on_deleted_version=True)
    assert ei.value.json["data"]["data"] is None

    # the older version is still readable
    assert kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=True)["data"]["data"] == {"a": "1"}


def test_delete_versions_undelete_destroy(client, uid):
    path = f"{uid}/multi"
    for i in range(1, 4):
        kv(client).create_or_update_secret(path=path, secret={"i": i})

    assert kv(client).delete_secret_versions(path=path, versions=[1, 2]).status_code == 204
    for v in (1, 2):
        got = kv(client).read_secret_version(path=path, version=v, raise_on_deleted_version=False)
        assert got["data"]["data"] is None and got["data"]["metadata"]["deletion_time"] != ""
        assert got["data"]["metadata"]["version"] == v
    assert kv(client).read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {"i": 3}

    assert kv(client).undelete_secret_versions(path=path, versions=[1]).status_code == 204
    got = kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"i": 1}
    assert got["data"]["metadata"]["deletion_time"] == ""

    assert kv(client).destroy_secret_versions(path=path, versions=[1]).status_code == 204
    # destroyed (not deleted): deletion_time stays "", so hvac raises even with False
    with pytest.raises(exceptions.InvalidPath) as ei:
        kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=False)
    assert ei.value.json["data"]["data"] is None
    assert ei.value.json["data"]["metadata"]["destroyed"] is True
    assert ei.value.json["data"]["metadata"]["version"] == 1

    meta = kv(client).read_secret_metadata(path=path)["data"]
    assert meta["versions"]["1"]["destroyed"] is True
    assert meta["versions"]["2"]["destroyed"] is False and meta["versions"]["2"]["deletion_time"] != ""
    assert meta["versions"]["3"]["destroyed"] is False and meta["versions"]["3"]["deletion_time"] == ""

    # undelete of a destroyed version does not bring it back
    kv(client).undelete_secret_versions(path=path, versions=[1])
    assert kv(client).read_secret_metadata(path=path)["data"]["versions"]["1"]["destroyed"] is True
    with pytest.raises(exceptions.InvalidPath):
        kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=False)


def test_deleted_then_destroyed_keeps_deletion_time(client, uid):
    path = f"{uid}/dd"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).delete_latest_version_of_secret(path=path)
    dt = kv(client).read_secret_metadata(path=path)["data"]["versions"]["1"]["deletion_time"]
    assert dt != ""
    kv(client).destroy_secret_versions(path=path, versions=[1])
    v = kv(client).read_secret_metadata(path=path)["data"]["versions"]["1"]
    assert v["destroyed"] is True and v["deletion_time"] == dt
    got = kv(client).read_secret_version(path=path, version=1, raise_on_deleted_version=False)
    assert got["data"]["data"] is None and got["data"]["metadata"]["destroyed"] is True


def test_delete_nonexistent_raises_nothing(client, uid):
    # hvac's integration test deletes a path that never existed.
    assert kv(client).delete_latest_version_of_secret(path=f"{uid}/never").status_code == 204
    assert kv(client).delete_secret_versions(path=f"{uid}/never", versions=[1]).status_code == 204
    assert kv(client).undelete_secret_versions(path=f"{uid}/never", versions=[1]).status_code == 204
    assert kv(client).destroy_secret_versions(path=f"{uid}/never", versions=[1]).status_code == 204
    assert kv(client).delete_metadata_and_all_versions(path=f"{uid}/never").status_code == 204


def test_delete_latest_is_noop_when_already_deleted(client, uid):
    path = f"{uid}/twice"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    kv(client).delete_latest_version_of_secret(path=path)
    dt = kv(client).read_secret_metadata(path=path)["data"]["versions"]["2"]["deletion_time"]
    kv(client).delete_latest_version_of_secret(path=path)
    meta = kv(client).read_secret_metadata(path=path)["data"]
    # only the latest version is touched, and only once
    assert meta["versions"]["2"]["deletion_time"] == dt
    assert meta["versions"]["1"]["deletion_time"] == ""


def test_write_after_delete_creates_new_version(client, uid):
    path = f"{uid}/again"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).delete_latest_version_of_secret(path=path)
    w = kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    assert w["data"]["version"] == 2
    assert kv(client).read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {"a": "2"}


def test_hvac_patch_is_client_side_merge(client, uid):
    path = f"{uid}/patch"
    kv(client).create_or_update_secret(path=path, secret={"a": "1", "b": {"x": 1}})
    r = kv(client).patch(path=path, secret={"b": {"y": 2}, "c": "3"})
    assert r["data"]["version"] == 2
    # hvac merges with dict.update: shallow
    assert kv(client).read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {
        "a": "1", "b": {"y": 2}, "c": "3"}
    with pytest.raises(exceptions.InvalidPath):
        kv(client).patch(path=f"{uid}/missing", secret={"a": "1"})


def test_delete_version_after_sets_future_deletion_time(client, uid):
    path = f"{uid}/dva"
    kv(client).create_or_update_secret(path=path, secret={"a": "1"})
    kv(client).update_metadata(path=path, delete_version_after="1h")
    w = kv(client).create_or_update_secret(path=path, secret={"a": "2"})
    assert RFC3339NANO_RE.match(w["data"]["deletion_time"])
    # a future deletion_time still reads normally (200 with data)
    got = kv(client).read_secret_version(path=path, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"a": "2"}
    assert got["data"]["metadata"]["deletion_time"] == w["data"]["deletion_time"]
    assert kv(client).read_secret_metadata(path=path)["data"]["delete_version_after"] == "1h0m0s"


def _ts(s):
    # RFC3339Nano -> seconds since epoch (float), tolerant to 0-9 fraction digits
    base, _, frac = s.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def test_delete_version_after_smaller_nonzero_wins(client, kv_mount, uid):
    # deletion_time = created + min(non-zero config, non-zero key) values
    kv(client).configure(max_versions=0, delete_version_after="30m", mount_point=kv_mount)
    kv(client).update_metadata(path=uid, delete_version_after="1h", mount_point=kv_mount)
    w = kv(client).create_or_update_secret(path=uid, secret={"a": 1}, mount_point=kv_mount)["data"]
    assert abs(_ts(w["deletion_time"]) - _ts(w["created_time"]) - 1800) < 1
    kv(client).update_metadata(path=uid, delete_version_after="10m", mount_point=kv_mount)
    w = kv(client).create_or_update_secret(path=uid, secret={"a": 2}, mount_point=kv_mount)["data"]
    assert abs(_ts(w["deletion_time"]) - _ts(w["created_time"]) - 600) < 1
    # config -1s disables it entirely
    kv(client).configure(max_versions=0, delete_version_after="-1s", mount_point=kv_mount)
    w = kv(client).create_or_update_secret(path=uid, secret={"a": 3}, mount_point=kv_mount)["data"]
    assert w["deletion_time"] == ""


def test_delete_version_after_elapsed(client, uid):
    path = f"{uid}/expire"
    kv(client).update_metadata(path=path, delete_version_after="1s")
    w = kv(client).create_or_update_secret(path=path, secret={"a": "1"})["data"]
    assert w["deletion_time"] != ""
    time.sleep(max(0.0, _ts(w["deletion_time"]) - time.time()) + 0.3)
    got = kv(client).read_secret_version(path=path, raise_on_deleted_version=False)
    assert got["data"]["data"] is None
    assert got["data"]["metadata"]["deletion_time"] == w["deletion_time"]
    # undelete re-applies delete_version_after from now: readable again for ~1s
    kv(client).undelete_secret_versions(path=path, versions=[1])
    md = kv(client).read_secret_metadata(path=path)["data"]["versions"]["1"]
    assert md["deletion_time"] != "" and _ts(md["deletion_time"]) > _ts(w["deletion_time"])


def test_strict_http_list_uses_get(addr, token, uid):
    # hvac strict_http=True lists with GET ?list=true instead of the LIST verb
    c = hvac.Client(url=addr, token=token, strict_http=True)
    c.secrets.kv.v2.create_or_update_secret(path=f"{uid}/a", secret={"x": 1})
    c.secrets.kv.v2.create_or_update_secret(path=f"{uid}/b/c", secret={"x": 1})
    assert c.secrets.kv.v2.list_secrets(path=uid)["data"] == {"keys": ["a", "b/"]}
