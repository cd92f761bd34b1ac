"""OKMS <-> Vault: one engine, two APIs. A secret written through the OKMS v2 API is
the same object as seen by the native Vault API (`/v1/secret/...` with X-Vault-Token),
and the OKMS Vault-compatible v1 API (`/api/{okmsId}/v1/secret/...`) works with
okms-sdk-go-style requests.

Skipped against OpenBao (it has no OKMS API).
"""

import pytest

from conftest import (
    CAT_CONFLICT,
    CAT_NOT_FOUND,
    OKMS_V2_TIME_RE,
    RFC3339NANO_RE,
    TARGET,
    assert_okms_error,
)

pytestmark = pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")


def enc(path: str) -> str:
    return path.replace("/", "%2F")


def v2_versions(okms, path):
    r = okms.get(f"v2/secret/{enc(path)}/version")
    assert r.status_code == 200, r.text
    return {v["id"]: v for v in r.json()}


def test_v2_create_reads_back_through_vault(okms, http, uid):
    path = f"{uid}/x/y"
    data = {"login": "admin", "nested": {"ip": "1.1.1.1"}, "ports": ["30", "31"]}
    r = okms.post("v2/secret", json={"path": path, "version": {"data": data},
                                     "metadata": {"customMetadata": {"project": "A"}, "maxVersions": 7}})
    assert r.status_code == 200, r.text
    r = http.get(f"secret/data/{path}")
    assert r.status_code == 200, r.text
    b = r.json()["data"]
    assert b["data"] == data
    assert b["metadata"]["version"] == 1
    assert b["metadata"]["destroyed"] is False
    assert b["metadata"]["deletion_time"] == ""
    assert RFC3339NANO_RE.match(b["metadata"]["created_time"])
    assert b["metadata"]["custom_metadata"] == {"project": "A"}
    m = http.get(f"secret/metadata/{path}").json()["data"]
    assert m["max_versions"] == 7
    assert m["current_version"] == 1
    # a v2 update is version 2 in Vault
    r = okms.put(f"v2/secret/{enc(path)}", json={"version": {"data": {"v": "2"}}})
    assert r.status_code == 200, r.text
    b = http.get(f"secret/data/{path}").json()["data"]
    assert b["data"] == {"v": "2"}
    assert b["metadata"]["version"] == 2
    # Vault CAS follows the same version counter
    r = http.post(f"secret/data/{path}", json={"data": {"v": "3"}, "options": {"cas": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 3
    g = okms.get(f"v2/secret/{enc(path)}", params={"includeData": "true"}).json()
    assert g["metadata"]["currentVersion"] == 3
    assert g["version"]["data"] == {"v": "3"}


def test_vault_soft_delete_and_destroy_show_in_v2(okms, http, uid):
    path = f"{uid}/del"
    assert okms.post("v2/secret", json={"path": path, "version": {"data": {"n": "1"}}}).status_code == 200
    for n in (2, 3, 4):
        assert okms.post(f"v2/secret/{enc(path)}/version", json={"data": {"n": str(n)}}).status_code == 200

    # DELETE /v1/secret/data/<p>: the latest version is deactivated
    assert http.delete(f"secret/data/{path}").status_code == 204
    vs = v2_versions(okms, path)
    assert vs[4]["state"] == "deactivated"
    assert OKMS_V2_TIME_RE.match(vs[4]["deactivatedAt"])
    g = okms.get(f"v2/secret/{enc(path)}", params={"includeData": "true"})
    assert g.status_code == 200
    assert g.json()["version"]["state"] == "deactivated"
    assert "data" not in g.json()["version"] or g.json()["version"]["data"] is None

    # POST /v1/secret/delete/<p> {versions}
    assert http.post(f"secret/delete/{path}", json={"versions": [1]}).status_code == 204
    assert v2_versions(okms, path)[1]["state"] == "deactivated"

    # undelete: active again, data readable
    assert http.post(f"secret/undelete/{path}", json={"versions": [1, 4]}).status_code == 204
    vs = v2_versions(okms, path)
    assert (vs[1]["state"], vs[4]["state"]) == ("active", "active")
    r = okms.get(f"v2/secret/{enc(path)}/version/4", params={"includeData": "true"})
    assert r.json()["data"] == {"n": "4"}

    # destroy: deleted
    assert http.put(f"secret/destroy/{path}", json={"versions": [2]}).status_code == 204
    vs = v2_versions(okms, path)
    assert vs[2]["state"] == "deleted"
    assert [vs[i]["state"] for i in (1, 3, 4)] == ["active"] * 3

    # and the other way: a v2 deactivation is a Vault soft delete, a v2 delete a destroy
    assert okms.put(f"v2/secret/{enc(path)}/version/3", json={"state": "deactivated"}).status_code == 200
    r = http.get(f"secret/data/{path}", params={"version": 3})
    assert r.status_code == 404
    md = r.json()["data"]["metadata"]
    assert md["deletion_time"] != "" and md["destroyed"] is False
    assert okms.put(f"v2/secret/{enc(path)}/version/1", json={"state": "deleted"}).status_code == 200
    m = http.get(f"secret/metadata/{path}").json()["data"]
    assert m["versions"]["1"]["destroyed"] is True
    assert m["versions"]["2"]["destroyed"] is True
    assert m["versions"]["3"]["destroyed"] is False and m["versions"]["3"]["deletion_time"] != ""
    assert m["versions"]["4"]["deletion_time"] == ""

    # Vault metadata delete removes it from v2
    assert http.delete(f"secret/metadata/{path}").status_code == 204
    assert_okms_error(okms.get(f"v2/secret/{enc(path)}"), 404, CAT_NOT_FOUND)


def test_vault_write_shows_in_v2(okms, http, uid):
    path = f"{uid}/from-vault"
    r = http.post(f"secret/data/{path}", json={"data": {"k": "v"}})
    assert r.status_code == 200, r.text
    http.post(f"secret/data/{path}", json={"data": {"k": "v2"}})
    http.post(f"secret/metadata/{path}", json={"max_versions": 9, "cas_required": True,
                                               "custom_metadata": {"o": "vault"},
                                               "delete_version_after": "3h"})
    g = okms.get(f"v2/secret/{enc(path)}", params={"includeData": "true"})
    assert g.status_code == 200, g.text
    g = g.json()
    assert g["path"] == path
    m = g["metadata"]
    assert (m["currentVersion"], m["maxVersions"], m["casRequired"]) == (2, 9, True)
    assert m["customMetadata"] == {"o": "vault"}
    assert m["deactivateVersionAfter"] == "3h"  # echoed as written, also through Vault
    assert g["version"]["id"] == 2
    assert g["version"]["data"] == {"k": "v2"}
    # in the flat v2 list
    found, cursor = [], None
    while True:
        h = {"X-Pagination-Cursor": cursor} if cursor else {}
        r = okms.get("v2/secret", headers=h)
        found.extend(it for it in r.json() if it["path"] == path)
        cursor = r.headers.get("X-Pagination-Cursor-Next")
        if not cursor:
            break
    assert len(found) == 1
    assert found[0]["version"]["id"] == 2
    assert found[0]["metadata"]["currentVersion"] == 2
    # Vault's cas_required is enforced on the v2 API
    r = okms.put(f"v2/secret/{enc(path)}", json={"version": {"data": {"k": "v3"}}})
    assert_okms_error(r, 400, CAT_CONFLICT)


# ------------------------------------------------------------------ OKMS v1 routes


def test_okms_v1_data_roundtrip(okms, uid):
    path = f"{uid}/v1/app"
    r = okms.post(f"v1/secret/data/{path}", json={"data": {"a": "1", "b": {"c": "2"}}, "options": {"cas": 0}})
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) <= {"request_id", "data", "warnings"}, b
    assert isinstance(b["request_id"], str) and b["request_id"]
    assert b["data"]["version"] == 1
    assert RFC3339NANO_RE.match(b["data"]["created_time"])
    assert b["data"]["deletion_time"] == ""
    assert b["data"]["destroyed"] is False
    assert set(b["data"]) <= {"created_time", "custom_metadata", "deletion_time", "destroyed", "version"}

    # cas 0 again on an existing key fails
    r = okms.post(f"v1/secret/data/{path}", json={"data": {"x": "y"}, "options": {"cas": 0}})
    assert_okms_error(r, 400, (2, CAT_CONFLICT))

    r = okms.get(f"v1/secret/data/{path}")
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) <= {"request_id", "data"}, b
    assert b["data"]["data"] == {"a": "1", "b": {"c": "2"}}
    assert b["data"]["metadata"]["version"] == 1

    # PATCH with Content-Type application/json (okms-sdk-go) and merge-patch+json (vault CLI)
    r = okms.patch(f"v1/secret/data/{path}", json={"data": {"a": "9"}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 2
    r = okms.patch(f"v1/secret/data/{path}", data=b'{"data": {"b": null, "d": "4"}, "options": {"cas": 2}}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 3
    assert okms.get(f"v1/secret/data/{path}").json()["data"]["data"] == {"a": "9", "d": "4"}
    r = okms.get(f"v1/secret/data/{path}", params={"version": 1})
    assert r.json()["data"]["data"] == {"a": "1", "b": {"c": "2"}}
    # PATCH of a missing secret: 404
    r = okms.patch(f"v1/secret/data/{uid}/nope", json={"data": {"a": "1"}})
    assert r.status_code == 404, r.text

    # subkeys
    r = okms.get(f"v1/secret/subkeys/{path}", params={"version": 1})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["data"]["subkeys"] == {"a": None, "b": {"c": None}}
    assert b["data"]["metadata"]["version"] == 1
    r = okms.get(f"v1/secret/subkeys/{path}", params={"version": 1, "depth": 1})
    assert r.json()["data"]["subkeys"] == {"a": None, "b": None}

    # the same secret through v2
    g = okms.get(f"v2/secret/{enc(path)}", params={"includeData": "true"}).json()
    assert g["metadata"]["currentVersion"] == 3
    assert g["version"]["data"] == {"a": "9", "d": "4"}


def test_okms_v1_delete_undelete_destroy(okms, uid):
    path = f"{uid}/v1/dud"
    for n in (1, 2, 3):
        assert okms.post(f"v1/secret/data/{path}", json={"data": {"n": str(n)}}).status_code == 200

    # DELETE latest -> deactivated; v1 GET -> 404 with the OKMS error body + data
    r = okms.delete(f"v1/secret/data/{path}")
    assert r.status_code == 204, r.text
    r = okms.get(f"v1/secret/data/{path}")
    b = assert_okms_error(r, 404, CAT_NOT_FOUND, extra_keys=("data",))
    assert b["data"]["data"] is None
    md = b["data"]["metadata"]
    assert md["version"] == 3 and md["destroyed"] is False
    assert RFC3339NANO_RE.match(md["deletion_time"])
    assert okms.get(f"v2/secret/{enc(path)}/version/3").json()["state"] == "deactivated"

    # POST delete {versions}
    assert okms.post(f"v1/secret/delete/{path}", json={"versions": [1]}).status_code == 204
    assert okms.get(f"v2/secret/{enc(path)}/version/1").json()["state"] == "deactivated"
    # PUT is accepted as well as POST (Vault clients write with PUT)
    assert okms.put(f"v1/secret/delete/{path}", json={"versions": [2]}).status_code == 204
    assert okms.get(f"v2/secret/{enc(path)}/version/2").json()["state"] == "deactivated"

    # undelete
    assert okms.post(f"v1/secret/undelete/{path}", json={"versions": [1, 2, 3]}).status_code == 204
    r = okms.get(f"v1/secret/data/{path}")
    assert r.status_code == 200
    assert r.json()["data"]["data"] == {"n": "3"}

    # destroy -> deleted; v1 GET of it -> 404 + data with destroyed true
    assert okms.put(f"v1/secret/destroy/{path}", json={"versions": [3]}).status_code == 204
    r = okms.get(f"v1/secret/data/{path}", params={"version": 3})
    b = assert_okms_error(r, 404, CAT_NOT_FOUND, extra_keys=("data",))
    assert b["data"] == {"data": None, "metadata": b["data"]["metadata"]}
    assert b["data"]["metadata"]["destroyed"] is True
    assert b["data"]["metadata"]["version"] == 3
    assert okms.get(f"v2/secret/{enc(path)}/version/3").json()["state"] == "deleted"
    # POST destroy accepted too
    assert okms.post(f"v1/secret/destroy/{path}", json={"versions": [2]}).status_code == 204
    assert okms.get(f"v2/secret/{enc(path)}/version/2").json()["state"] == "deleted"

    # missing secret: 404 in the OKMS shape
    assert_okms_error(okms.get(f"v1/secret/data/{uid}/none"), 404, CAT_NOT_FOUND)


def test_okms_v1_metadata(okms, uid):
    path = f"{uid}/v1/meta"
    assert okms.post(f"v1/secret/data/{path}", json={"data": {"a": "1"}}).status_code == 200
    r = okms.post(f"v1/secret/metadata/{path}", json={"max_versions": 4, "cas_required": False,
                                                       "custom_metadata": {"team": "x"},
                                                       "delete_version_after": "1d"})
    assert r.status_code in (200, 204), r.text
    r = okms.patch(f"v1/secret/metadata/{path}", json={"custom_metadata": {"team": "y"}})
    assert r.status_code in (200, 204), r.text
    r = okms.get(f"v1/secret/metadata/{path}")
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) <= {"request_id", "data"}, b
    m = b["data"]
    assert m["max_versions"] == 4
    assert m["cas_required"] is False
    assert m["custom_metadata"] == {"team": "y"}
    assert m["current_version"] == 1
    assert isinstance(m["delete_version_after"], str)
    assert RFC3339NANO_RE.match(m["created_time"]) and RFC3339NANO_RE.match(m["updated_time"])
    assert set(m["versions"]) == {"1"}
    assert set(m["versions"]["1"]) <= {"created_time", "deletion_time", "destroyed"}
    # v2 sees it
    g = okms.get(f"v2/secret/{enc(path)}").json()["metadata"]
    assert (g["maxVersions"], g["customMetadata"], g["deactivateVersionAfter"]) == (4, {"team": "y"}, "1d")
    # delete metadata removes the secret
    assert okms.delete(f"v1/secret/metadata/{path}").status_code == 204
    assert_okms_error(okms.get(f"v2/secret/{enc(path)}"), 404, CAT_NOT_FOUND)
    assert_okms_error(okms.get(f"v1/secret/metadata/{path}"), 404, CAT_NOT_FOUND)


def test_okms_v1_config(okms):
    before = okms.get("v1/secret/config")
    assert before.status_code == 200, before.text
    old = before.json()["data"]
    assert set(old) == {"cas_required", "delete_version_after", "max_versions"}, old
    try:
        assert okms.post("v1/secret/config", json={"max_versions": 13}).status_code == 204
        assert okms.get("v1/secret/config").json()["data"]["max_versions"] == 13
        assert okms.get("v2/secretConfig").json()["maxVersions"] == 13
        assert okms.put("v2/secretConfig", json={"maxVersions": 14}).status_code == 200
        assert okms.get("v1/secret/config").json()["data"]["max_versions"] == 14
    finally:
        okms.post("v1/secret/config", json={"max_versions": old["max_versions"],
                                             "cas_required": old["cas_required"]})
