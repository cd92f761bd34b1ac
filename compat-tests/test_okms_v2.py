"""OKMS REST v2 Secret API (`/api/{okmsId}/v2/...`): the okms-cli flows, with the exact
requests okms-cli / okms-sdk-go send (shared/spec/okms-secret-api.md §7), and kvseal's
documented choices where the spec is silent.

okms-sdk-go escapes the secret path into one URL segment (`foo%2Fbar`); Vault-style
clients send raw slashes. Both must name the same secret.

Skipped against OpenBao (it has no OKMS API).
"""

import pytest

from conftest import (
    CAT_ARGUMENT,
    CAT_AUTHENTICATION,
    CAT_CONFLICT,
    CAT_NOT_FOUND,
    OKMS_V2_TIME_RE,
    TARGET,
    assert_okms_error,
)

pytestmark = pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")


def enc(path: str) -> str:
    """The path as okms-sdk-go puts it in the URL (url.PathEscape: `/` -> `%2F`)."""
    return path.replace("/", "%2F")


def cli_create(okms, path, data, cas_required=None, max_versions=None, deactivate_after=None,
               custom=None):
    """`okms secrets create PATH k=v ...`: customMetadata is always sent ({} by default)."""
    meta = {"customMetadata": custom or {}}
    if cas_required is not None:
        meta["casRequired"] = cas_required
    if max_versions is not None:
        meta["maxVersions"] = max_versions
    if deactivate_after is not None:
        meta["deactivateVersionAfter"] = deactivate_after
    return okms.post("v2/secret", json={"metadata": meta, "path": path, "version": {"data": data}})


def assert_metadata_shape(m, okms_id, path):
    assert set(m) == {"casRequired", "createdAt", "currentVersion", "customMetadata",
                      "deactivateVersionAfter", "maxVersions", "oldestVersion", "updatedAt",
                      "urn"}, m
    assert OKMS_V2_TIME_RE.match(m["createdAt"]), m
    assert OKMS_V2_TIME_RE.match(m["updatedAt"]), m
    assert isinstance(m["urn"], str) and m["urn"], m
    assert isinstance(m["currentVersion"], int) and isinstance(m["oldestVersion"], int)
    assert isinstance(m["customMetadata"], dict)


def assert_version_shape(v, vid, state, data="absent"):
    assert v["id"] == vid, v
    assert v["state"] == state, v
    assert OKMS_V2_TIME_RE.match(v["createdAt"]), v
    if data == "absent":
        assert "data" not in v or v["data"] is None, v
    else:
        assert v["data"] == data, v
    if state == "active":
        assert not v.get("deactivatedAt"), v
    elif state == "deactivated":
        assert OKMS_V2_TIME_RE.match(v["deactivatedAt"]), v
    assert set(v) <= {"createdAt", "data", "deactivatedAt", "id", "state", "warnings"}, v


# ------------------------------------------------------------------ okms-cli flow


def test_cli_flow(okms, okms_id, uid):
    """okms-cli's tests/secrets.yaml, step by step, with its exact requests."""
    path = f"{uid}/prod/db"
    p = enc(path)

    # 001: create --cas-required=true --deactivate-version-after=1d --max-versions=10
    r = cli_create(okms, path, {"user": "admin", "pass": "s3cr3t"},
                   cas_required=True, max_versions=10, deactivate_after="1d")
    assert r.status_code == 200, r.text  # exactly 200: the SDK reads JSON200 only
    assert r.headers["Content-Type"].startswith("application/json")
    b = r.json()
    assert set(b) <= {"metadata", "path", "warnings"}, b
    assert "version" not in b
    assert b["path"] == path
    m = b["metadata"]
    assert_metadata_shape(m, okms_id, path)
    assert m["casRequired"] is True
    assert m["currentVersion"] == 1
    assert m["oldestVersion"] == 0
    assert m["deactivateVersionAfter"] == "1d"
    assert m["maxVersions"] == 10
    assert m["customMetadata"] == {}

    # 002: create an existing secret fails (Conflict, 400); nothing changes
    r = cli_create(okms, path, {"other": "x"})
    assert_okms_error(r, 400, CAT_CONFLICT)

    # get without includeData (the CLI always sends includeData)
    r = okms.get(f"v2/secret/{p}", params={"includeData": "false"})
    assert r.status_code == 200, r.text
    g = r.json()
    assert set(g) == {"metadata", "path", "version"}
    assert g["path"] == path
    assert g["metadata"]["currentVersion"] == 1
    assert_version_shape(g["version"], 1, "active")

    # get with includeData
    r = okms.get(f"v2/secret/{p}", params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json()["version"], 1, "active", {"user": "admin", "pass": "s3cr3t"})

    # without the parameter at all: no data
    r = okms.get(f"v2/secret/{p}")
    assert r.status_code == 200
    assert_version_shape(r.json()["version"], 1, "active")

    # update without cas while casRequired: refused (Conflict)
    body = {"metadata": {"customMetadata": {}}, "version": {"data": {"user": "admin", "pass": "v2"}}}
    r = okms.put(f"v2/secret/{p}", json=body)
    assert_okms_error(r, 400, CAT_CONFLICT)
    # cas mismatch
    r = okms.put(f"v2/secret/{p}", params={"cas": 5}, json=body)
    assert_okms_error(r, 400, CAT_CONFLICT)
    r = okms.put(f"v2/secret/{p}", params={"cas": 0}, json=body)
    assert_okms_error(r, 400, CAT_CONFLICT)
    assert okms.get(f"v2/secret/{p}").json()["metadata"]["currentVersion"] == 1

    # 005: update --cas=1
    r = okms.put(f"v2/secret/{p}", params={"cas": 1}, json=body)
    assert r.status_code == 200, r.text
    u = r.json()
    assert set(u) <= {"metadata", "path", "warnings"}
    assert u["path"] == path
    assert u["metadata"]["currentVersion"] == 2
    assert u["metadata"]["casRequired"] is True

    # 007: version create --cas=2
    r = okms.post(f"v2/secret/{p}/version", params={"cas": 2}, json={"data": {"user": "admin", "pass": "v3"}})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 3, "active")
    # version create with a stale cas
    r = okms.post(f"v2/secret/{p}/version", params={"cas": 2}, json={"data": {"x": "y"}})
    assert_okms_error(r, 400, CAT_CONFLICT)
    # version create without cas while casRequired
    r = okms.post(f"v2/secret/{p}/version", json={"data": {"x": "y"}})
    assert_okms_error(r, 400, CAT_CONFLICT)

    # version list
    r = okms.get(f"v2/secret/{p}/version")
    assert r.status_code == 200, r.text
    vs = r.json()
    assert [v["id"] for v in vs] == [1, 2, 3]
    for v in vs:
        assert_version_shape(v, v["id"], "active")
    assert not r.headers.get("X-Pagination-Cursor-Next")

    # 010: get ?version=2&includeData=true: current metadata, version 2's data
    r = okms.get(f"v2/secret/{p}", params={"version": 2, "includeData": "true"})
    assert r.status_code == 200, r.text
    g = r.json()
    assert g["metadata"]["currentVersion"] == 3
    assert_version_shape(g["version"], 2, "active", {"user": "admin", "pass": "v2"})

    # version get N, with and without data
    r = okms.get(f"v2/secret/{p}/version/1", params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 1, "active", {"user": "admin", "pass": "s3cr3t"})
    r = okms.get(f"v2/secret/{p}/version/1", params={"includeData": "false"})
    assert_version_shape(r.json(), 1, "active")
    r = okms.get(f"v2/secret/{p}/version/9")
    assert_okms_error(r, 404, CAT_NOT_FOUND)

    # 013: deactivate the current version; get --include-data=true -> 200, deactivated, no data
    r = okms.put(f"v2/secret/{p}/version/3", json={"state": "deactivated"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 3, "deactivated")
    r = okms.get(f"v2/secret/{p}", params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json()["version"], 3, "deactivated")
    r = okms.get(f"v2/secret/{p}/version/3", params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 3, "deactivated")

    # activate again: data is back
    r = okms.put(f"v2/secret/{p}/version/3", json={"state": "active"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 3, "active")
    r = okms.get(f"v2/secret/{p}/version/3", params={"includeData": "true"})
    assert_version_shape(r.json(), 3, "active", {"user": "admin", "pass": "v3"})

    # delete version 1 (terminal)
    r = okms.put(f"v2/secret/{p}/version/1", json={"state": "deleted"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 1, "deleted")
    r = okms.get(f"v2/secret/{p}/version/1", params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json(), 1, "deleted")
    for state in ("active", "deactivated"):
        r = okms.put(f"v2/secret/{p}/version/1", json={"state": state})
        assert_okms_error(r, 400, (CAT_ARGUMENT, CAT_CONFLICT))
        assert okms.get(f"v2/secret/{p}/version/1").json()["state"] == "deleted"
    # a deactivated version can be deleted too
    okms.put(f"v2/secret/{p}/version/2", json={"state": "deactivated"})
    r = okms.put(f"v2/secret/{p}/version/2", json={"state": "deleted"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "deleted"
    vs = okms.get(f"v2/secret/{p}/version").json()
    assert [(v["id"], v["state"]) for v in vs] == [(1, "deleted"), (2, "deleted"), (3, "active")]

    # 014: --cas-required=false plus data, no cas: the metadata change applies first
    r = okms.put(f"v2/secret/{p}", json={"metadata": {"casRequired": False, "customMetadata": {}},
                                          "version": {"data": {"user": "admin", "pass": "v4"}}})
    assert r.status_code == 200, r.text
    m = r.json()["metadata"]
    assert m["casRequired"] is False
    assert m["currentVersion"] == 4
    assert m["deactivateVersionAfter"] == "1d"
    assert m["maxVersions"] == 10
    # now an update without cas works
    r = okms.put(f"v2/secret/{p}", json={"metadata": {"customMetadata": {}},
                                          "version": {"data": {"pass": "v5"}}})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["currentVersion"] == 5
    g = okms.get(f"v2/secret/{p}", params={"includeData": "true"}).json()
    assert_version_shape(g["version"], 5, "active", {"pass": "v5"})

    # delete the secret: 204 with no body, then 404 everywhere
    r = okms.delete(f"v2/secret/{p}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_okms_error(okms.get(f"v2/secret/{p}"), 404, CAT_NOT_FOUND)
    assert_okms_error(okms.get(f"v2/secret/{p}/version"), 404, CAT_NOT_FOUND)
    assert_okms_error(okms.get(f"v2/secret/{p}/version/5"), 404, CAT_NOT_FOUND)
    assert_okms_error(okms.delete(f"v2/secret/{p}"), 404, CAT_NOT_FOUND)
    # and it can be created again, from version 1
    r = cli_create(okms, path, {"again": "1"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["currentVersion"] == 1


def test_deleted_version_is_terminal(okms, uid):
    path = f"{uid}/term"
    assert cli_create(okms, path, {"a": "1"}).status_code == 200
    r = okms.put(f"v2/secret/{enc(path)}/version/1", json={"state": "deleted"})
    assert r.status_code == 200, r.text
    for state in ("active", "deactivated"):
        r = okms.put(f"v2/secret/{enc(path)}/version/1", json={"state": state})
        assert_okms_error(r, 400, (CAT_ARGUMENT, CAT_CONFLICT))
    # deleting again is allowed or refused, but it stays deleted and without data
    okms.put(f"v2/secret/{enc(path)}/version/1", json={"state": "deleted"})
    r = okms.get(f"v2/secret/{enc(path)}", params={"includeData": "true"})
    assert r.status_code == 200, r.text
    assert_version_shape(r.json()["version"], 1, "deleted")


def test_update_missing_secret_is_404(okms, uid):
    for p in (enc(f"{uid}/nope"), f"{uid}/nope"):
        r = okms.put(f"v2/secret/{p}", json={"version": {"data": {"a": "b"}}})
        assert_okms_error(r, 404, CAT_NOT_FOUND)
        r = okms.put(f"v2/secret/{p}", json={"metadata": {"maxVersions": 3}})
        assert_okms_error(r, 404, CAT_NOT_FOUND)
        r = okms.post(f"v2/secret/{p}/version", json={"data": {"a": "b"}})
        assert_okms_error(r, 404, CAT_NOT_FOUND)
        r = okms.put(f"v2/secret/{p}/version/1", json={"state": "active"})
        assert_okms_error(r, 404, CAT_NOT_FOUND)
        assert_okms_error(okms.get(f"v2/secret/{p}"), 404, CAT_NOT_FOUND)
    # PUT never creates
    assert_okms_error(okms.get(f"v2/secret/{enc(uid + '/nope')}"), 404, CAT_NOT_FOUND)


def test_create_ignores_cas_and_metadata_only_update(okms, uid):
    path = f"{uid}/cas-create"
    # cas does not apply to create, even with a (meaningless) ?cas=
    r = okms.post("v2/secret", params={"cas": 7}, json={"path": path, "version": {"data": {"a": "1"}}})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["currentVersion"] == 1
    # metadata-only update creates no version
    r = okms.put(f"v2/secret/{enc(path)}", json={"metadata": {"maxVersions": 7, "customMetadata": {}}})
    assert r.status_code == 200, r.text
    m = r.json()["metadata"]
    assert m["currentVersion"] == 1
    assert m["maxVersions"] == 7
    assert [v["id"] for v in okms.get(f"v2/secret/{enc(path)}/version").json()] == [1]


def test_custom_metadata_empty_means_no_change(okms, uid):
    path = f"{uid}/cm"
    r = cli_create(okms, path, {"a": "1"}, custom={"project": "A", "team": "x-1"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["customMetadata"] == {"project": "A", "team": "x-1"}
    # okms-cli always sends customMetadata: {} -> no change
    r = okms.put(f"v2/secret/{enc(path)}", json={"metadata": {"customMetadata": {}},
                                                  "version": {"data": {"a": "2"}}})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["customMetadata"] == {"project": "A", "team": "x-1"}
    # non-empty replaces wholesale
    r = okms.put(f"v2/secret/{enc(path)}", json={"metadata": {"customMetadata": {"project": "B"}}})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["customMetadata"] == {"project": "B"}
    g = okms.get(f"v2/secret/{enc(path)}").json()
    assert g["metadata"]["customMetadata"] == {"project": "B"}
    assert g["metadata"]["currentVersion"] == 2


# ------------------------------------------------------------------ path encodings


def test_both_path_encodings_name_one_secret(okms, uid):
    path = f"{uid}/a/b:c/d=e@f_g.h-i"
    r = cli_create(okms, path, {"k": "v1"})
    assert r.status_code == 200, r.text
    for p in (enc(path), path):
        r = okms.get(f"v2/secret/{p}", params={"includeData": "true"})
        assert r.status_code == 200, (p, r.text)
        g = r.json()
        assert g["path"] == path
        assert_version_shape(g["version"], 1, "active", {"k": "v1"})
    # write through one form, read through the other
    r = okms.put(f"v2/secret/{path}", json={"version": {"data": {"k": "v2"}}})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == path
    r = okms.post(f"v2/secret/{enc(path)}/version", json={"data": {"k": "v3"}})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == 3
    for p in (enc(path), path):
        vs = okms.get(f"v2/secret/{p}/version").json()
        assert [v["id"] for v in vs] == [1, 2, 3], p
        r = okms.get(f"v2/secret/{p}/version/2", params={"includeData": "true"})
        assert_version_shape(r.json(), 2, "active", {"k": "v2"})
    r = okms.put(f"v2/secret/{path}/version/1", json={"state": "deactivated"})
    assert r.status_code == 200, r.text
    assert okms.get(f"v2/secret/{enc(path)}/version/1").json()["state"] == "deactivated"
    # trailing slash on the collection accepted (OVH's guide writes POST /v2/secret/)
    r = okms.post("v2/secret/", json={"path": f"{uid}/slash", "version": {"data": {"a": "b"}}})
    assert r.status_code == 200, r.text
    assert okms.get(f"v2/secret/{uid}/slash").status_code == 200
    # delete through the raw form; gone in both
    assert okms.delete(f"v2/secret/{path}").status_code == 204
    for p in (enc(path), path):
        assert_okms_error(okms.get(f"v2/secret/{p}"), 404, CAT_NOT_FOUND)


def test_lowercase_percent_2f(okms, uid):
    path = f"{uid}/low/case"
    assert cli_create(okms, path, {"a": "1"}).status_code == 200
    r = okms.get(f"v2/secret/{path.replace('/', '%2f')}")
    assert r.status_code == 200, r.text
    assert r.json()["path"] == path


# ------------------------------------------------------------------ maxVersions, aliases


def test_max_versions_purges_oldest(okms, uid):
    path = f"{uid}/mv"
    p = enc(path)
    assert cli_create(okms, path, {"n": "1"}, max_versions=3).status_code == 200
    for n in range(2, 6):
        r = okms.post(f"v2/secret/{p}/version", json={"data": {"n": str(n)}})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == n
    vs = okms.get(f"v2/secret/{p}/version").json()
    assert [v["id"] for v in vs] == [3, 4, 5]
    assert all(v["state"] == "active" for v in vs)
    g = okms.get(f"v2/secret/{p}").json()
    assert g["metadata"]["currentVersion"] == 5
    assert g["metadata"]["maxVersions"] == 3
    assert g["metadata"]["oldestVersion"] == 3
    # purged versions are gone, not kept as "deleted"
    for n in (1, 2):
        assert_okms_error(okms.get(f"v2/secret/{p}/version/{n}"), 404, CAT_NOT_FOUND)
        assert_okms_error(okms.get(f"v2/secret/{p}", params={"version": n}), 404, CAT_NOT_FOUND)
    r = okms.get(f"v2/secret/{p}", params={"version": 3, "includeData": "true"})
    assert_version_shape(r.json()["version"], 3, "active", {"n": "3"})
    # lowering maxVersions through PUT purges on the next write
    r = okms.put(f"v2/secret/{p}", json={"metadata": {"maxVersions": 2}, "version": {"data": {"n": "6"}}})
    assert r.status_code == 200, r.text
    assert [v["id"] for v in okms.get(f"v2/secret/{p}/version").json()] == [5, 6]


def test_snake_case_aliases(okms, uid):
    path = f"{uid}/snake"
    r = okms.post("v2/secret", json={
        "path": path,
        "metadata": {"cas_required": True, "max_versions": 4,
                     "deactivate_version_after": "2h", "custom_metadata": {"env": "prod"}},
        "version": {"data": {"a": "1"}},
    })
    assert r.status_code == 200, r.text
    m = r.json()["metadata"]
    assert m["casRequired"] is True
    assert m["maxVersions"] == 4
    assert m["deactivateVersionAfter"] == "2h"
    assert m["customMetadata"] == {"env": "prod"}
    # output is camelCase only
    assert not any("_" in k for k in m), m
    r = okms.put(f"v2/secret/{enc(path)}", params={"cas": 1},
                 json={"metadata": {"max_versions": 6, "cas_required": False}})
    assert r.status_code == 200, r.text
    m = r.json()["metadata"]
    assert (m["maxVersions"], m["casRequired"], m["currentVersion"]) == (6, False, 1)


# ------------------------------------------------------------------ secretConfig


@pytest.fixture
def restore_config(okms):
    before = okms.get("v2/secretConfig").json()
    yield before
    body = {"casRequired": before["casRequired"], "maxVersions": before["maxVersions"],
            "deactivateVersionAfter": before["deactivateVersionAfter"]}
    r = okms.put("v2/secretConfig", json=body)
    assert r.status_code == 200, r.text


def test_secret_config_v2(okms, restore_config):
    r = okms.get("v2/secretConfig")
    assert r.status_code == 200
    c = r.json()
    assert set(c) == {"casRequired", "deactivateVersionAfter", "maxVersions"}, c
    assert isinstance(c["casRequired"], bool)
    r = okms.put("v2/secretConfig", json={"casRequired": False, "maxVersions": 17,
                                           "deactivateVersionAfter": "10h30m10s"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) <= {"casRequired", "deactivateVersionAfter", "maxVersions", "warnings"}, b
    assert (b["casRequired"], b["maxVersions"], b["deactivateVersionAfter"]) == (False, 17, "10h30m10s")
    c = okms.get("v2/secretConfig").json()
    assert c == {"casRequired": False, "maxVersions": 17, "deactivateVersionAfter": "10h30m10s"}
    # partial update keeps the others; snake_case aliases accepted
    r = okms.put("v2/secretConfig", json={"max_versions": 12})
    assert r.status_code == 200, r.text
    c = okms.get("v2/secretConfig").json()
    assert c == {"casRequired": False, "maxVersions": 12, "deactivateVersionAfter": "10h30m10s"}


def test_secret_config_written_via_v1_read_via_v2(okms, restore_config):
    """okms-cli `secrets config update` POSTs /v1/secret/config; test 019 reads /v2/secretConfig."""
    r = okms.post("v1/secret/config", json={"cas_required": False, "delete_version_after": "1d",
                                             "max_versions": 24})
    assert r.status_code == 204, r.text
    c = okms.get("v2/secretConfig").json()
    assert c["deactivateVersionAfter"] == "1d"
    assert c["maxVersions"] == 24
    assert c["casRequired"] is False
    r = okms.get("v1/secret/config")
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) <= {"request_id", "data", "warnings"}
    assert b["data"]["max_versions"] == 24
    assert b["data"]["cas_required"] is False
    assert isinstance(b["data"]["delete_version_after"], str)


def test_domain_cas_required_applies(okms, uid, restore_config):
    path = f"{uid}/domcas"
    assert cli_create(okms, path, {"a": "1"}).status_code == 200
    assert okms.put("v2/secretConfig", json={"casRequired": True}).status_code == 200
    try:
        r = okms.put(f"v2/secret/{enc(path)}", json={"version": {"data": {"a": "2"}}})
        assert_okms_error(r, 400, CAT_CONFLICT)
        r = okms.put(f"v2/secret/{enc(path)}", params={"cas": 1}, json={"version": {"data": {"a": "2"}}})
        assert r.status_code == 200, r.text
    finally:
        okms.put("v2/secretConfig", json={"casRequired": False})


# ------------------------------------------------------------------ auth, domain


def test_auth_and_unknown_domain(okms, addr, uid):
    path = f"{uid}/auth"
    assert cli_create(okms, path, {"a": "1"}).status_code == 200
    assert_okms_error(okms.get(f"v2/secret/{enc(path)}", token=None), 401, CAT_AUTHENTICATION)
    assert_okms_error(okms.get(f"v2/secret/{enc(path)}", token="not-a-token"), 401, CAT_AUTHENTICATION)
    assert_okms_error(okms.get("v2/secret", token=None), 401, CAT_AUTHENTICATION)
    assert_okms_error(okms.post("v2/secret", token=None, json={"path": f"{uid}/x", "version": {"data": {}}}),
                      401, CAT_AUTHENTICATION)
    assert_okms_error(okms.get("v1/secret/data/" + path, token=None), 401, CAT_AUTHENTICATION)
    # X-Vault-Token is accepted as well as Authorization: Bearer
    r = okms.get(f"v2/secret/{enc(path)}", token=None, headers={"X-Vault-Token": okms.token})
    assert r.status_code == 200, r.text
    # unknown okmsId (a valid UUID, and not a UUID at all)
    for other in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        r = okms.s.get(f"{addr}/api/{other}/v2/secret",
                       headers={"Authorization": f"Bearer {okms.token}"}, timeout=10)
        assert_okms_error(r, 404, CAT_NOT_FOUND)
    # nothing was created by the refused POST
    assert_okms_error(okms.get(f"v2/secret/{enc(uid + '/x')}"), 404, CAT_NOT_FOUND)
