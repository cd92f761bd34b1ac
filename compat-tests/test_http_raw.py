"""Raw HTTP checks of wire details clients depend on without exposing them
through a friendly API: status codes, Content-Type, verbs, envelopes.
"""

import re

from conftest import TARGET


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_success_envelope_fields(http, uid):
    # vaultrs requires request_id/lease_id/lease_duration/renewable to be present and typed
    r = http.post(f"secret/data/{uid}", json={"data": {"a": "1"}})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    b = r.json()
    assert UUID_RE.match(b["request_id"])
    assert b["lease_id"] == ""
    assert b["renewable"] is False
    assert b["lease_duration"] == 0
    assert b["wrap_info"] is None
    assert b["warnings"] is None
    assert b["auth"] is None
    assert b["data"]["version"] == 1


def test_error_content_type_exact(http, uid):
    # hvac parses error JSON only if Content-Type == "application/json" exactly
    cases = [
        http.get(f"secret/data/{uid}-missing"),  # 404 {"errors":[]}
        http.post(f"secret/data/{uid}", json={"data": {"a": 1}, "options": {"cas": 7}}),  # 400
        http.get("secret/data/x", token="not-a-token"),  # 403
        http.get(f"secret/metadata/{uid}-nothing", params={"list": "true"}),  # 404 list
    ]
    for r in cases:
        assert r.headers.get("Content-Type") == "application/json", (r.request.method, r.url, r.status_code, r.headers)
        assert isinstance(r.json()["errors"], list)
    assert [r.status_code for r in cases] == [404, 400, 403, 404]
    assert cases[0].json() == {"errors": []}
    assert cases[1].json() == {"errors": ["check-and-set parameter did not match the current version"]}
    assert cases[3].json() == {"errors": []}


def test_missing_data_field(http, uid):
    r = http.post(f"secret/data/{uid}", json={"options": {}})
    assert r.status_code == 400
    assert r.json() == {"errors": ["no data provided"]}


def test_put_equals_post_and_cas_string(http, uid):
    # the Go CLI writes with PUT; cas is weakly decoded (numeric strings ok)
    assert http.put(f"secret/data/{uid}", json={"data": {"a": "1"}, "options": {}}).json()["data"]["version"] == 1
    assert http.post(f"secret/data/{uid}", json={"data": {"a": "2"}}).json()["data"]["version"] == 2
    r = http.put(f"secret/data/{uid}", json={"data": {"a": "3"}, "options": {"cas": "2"}})
    assert r.status_code == 200 and r.json()["data"]["version"] == 3


def test_deleted_version_404_envelope(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": "1"}})
    assert http.delete(f"secret/data/{uid}").status_code == 204
    r = http.get(f"secret/data/{uid}")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    b = r.json()
    assert "errors" not in b
    assert b["data"]["data"] is None
    assert b["data"]["metadata"]["version"] == 1
    assert b["data"]["metadata"]["deletion_time"] != ""
    assert b["warnings"] is None
    assert set(b) >= {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"}


def test_version_query_param(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": "1"}})
    http.post(f"secret/data/{uid}", json={"data": {"a": "2"}})
    assert http.get(f"secret/data/{uid}", params={"version": "1"}).json()["data"]["data"] == {"a": "1"}
    assert http.get(f"secret/data/{uid}", params={"version": "0"}).json()["data"]["data"] == {"a": "2"}
    assert http.get(f"secret/data/{uid}", params={"version": "3"}).status_code == 404
    assert http.get(f"secret/data/{uid}", params={"version": "abc"}).status_code == 400


def test_versions_accept_strings_and_csv(http, uid):
    # `bao kv delete -versions=1,2` sends {"versions":["1","2"]}
    for i in range(4):
        http.post(f"secret/data/{uid}", json={"data": {"i": i}})
    assert http.put(f"secret/delete/{uid}", json={"versions": ["1", "2"]}).status_code == 204
    assert http.put(f"secret/delete/{uid}", json={"versions": "3,4"}).status_code == 204
    vs = http.get(f"secret/metadata/{uid}").json()["data"]["versions"]
    assert all(vs[k]["deletion_time"] != "" for k in ("1", "2", "3", "4"))
    assert http.put(f"secret/undelete/{uid}", json={"versions": ["2"]}).status_code == 204
    assert http.put(f"secret/destroy/{uid}", json={"versions": [3]}).status_code == 204
    vs = http.get(f"secret/metadata/{uid}").json()["data"]["versions"]
    assert vs["2"]["deletion_time"] == "" and vs["3"]["destroyed"] is True


def test_empty_versions_errors(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": "1"}})
    r = http.post(f"secret/delete/{uid}", json={"versions": []})
    assert (r.status_code, r.json()) == (400, {"errors": ["No version number provided"]})
    r = http.post(f"secret/undelete/{uid}", json={"versions": []})
    assert (r.status_code, r.json()) == (400, {"errors": ["No version number provided"]})
    r = http.post(f"secret/destroy/{uid}", json={"versions": []})
    assert (r.status_code, r.json()) == (400, {"errors": ["no version number provided"]})


def test_patch_route(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": "1", "b": "2", "n": {"x": 1, "y": 2}}})
    # PATCH without the merge-patch content type -> 415
    r = http.patch(f"secret/data/{uid}", json={"data": {"a": "9"}})
    assert r.status_code == 415
    assert r.headers["Content-Type"] == "application/json"
    assert any("application/merge-patch+json" in e for e in r.json()["errors"])
    # with it -> 200, new version, RFC 7386 merge (null deletes, objects merge deeply)
    r = http.patch(f"secret/data/{uid}", data='{"data":{"a":"9","b":null,"n":{"y":null,"z":3}},"options":{}}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 2
    assert r.json()["data"]["deletion_time"] == ""
    assert http.get(f"secret/data/{uid}").json()["data"]["data"] == {"a": "9", "n": {"x": 1, "z": 3}}
    # CAS applies to PATCH too
    r = http.patch(f"secret/data/{uid}", data='{"data":{"a":"x"},"options":{"cas":1}}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert (r.status_code, r.json()) == (400, {"errors": ["check-and-set parameter did not match the current version"]})
    # PATCH of a missing key -> 404 with an EMPTY body
    r = http.patch(f"secret/data/{uid}-missing", data='{"data":{"a":"1"}}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 404
    assert r.content == b""


def test_patch_of_deleted_current_version(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": "1"}})
    http.delete(f"secret/data/{uid}")
    r = http.patch(f"secret/data/{uid}", data='{"data":{"a":"2"}}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 404
    d = r.json()["data"]
    assert d["version"] == 1 and d["deletion_time"] != "" and d["destroyed"] is False


def test_metadata_patch(http, uid):
    http.post(f"secret/metadata/{uid}", json={"max_versions": 4, "custom_metadata": {"a": "1", "b": "2"}})
    r = http.patch(f"secret/metadata/{uid}", data='{"custom_metadata":{"a":null,"c":"3"},"cas_required":true}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 204, r.text
    d = http.get(f"secret/metadata/{uid}").json()["data"]
    assert d["custom_metadata"] == {"b": "2", "c": "3"}
    assert d["max_versions"] == 4 and d["cas_required"] is True
    r = http.patch(f"secret/metadata/{uid}-missing", data='{"max_versions":1}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 404 and r.content == b""


def test_custom_metadata_validation(http, uid):
    r = http.post(f"secret/metadata/{uid}", json={"custom_metadata": {"k": ""}})
    assert r.status_code == 400
    # OpenBao wraps it in a multierror: "1 error occurred:\n\t* custom_metadata validation failed: ..."
    assert "custom_metadata validation failed: " in r.json()["errors"][0]


def test_list_verb_equals_get_list_true(http, uid):
    for p in ("z", "a", "d/e"):
        http.post(f"secret/data/{uid}/{p}", json={"data": {"v": 1}})
    a = http.list(f"secret/metadata/{uid}")
    b = http.get(f"secret/metadata/{uid}", params={"list": "true"})
    c = http.get(f"secret/metadata/{uid}/", params={"list": "true"})
    d = http.list(f"secret/metadata/{uid}/")
    for r in (a, b, c, d):
        assert r.status_code == 200
        assert r.json()["data"] == {"keys": ["a", "d/", "z"]}
    # list must parse as a bool
    assert http.get(f"secret/metadata/{uid}", params={"list": "maybe"}).status_code == 400
    # list=false is a plain read of the metadata (404: uid itself is not a key)
    assert http.get(f"secret/metadata/{uid}", params={"list": "false"}).status_code == 404


def test_missing_or_bad_token_is_403(http, uid):
    for tok in (None, "s.bogus"):
        for method, path in (("GET", f"secret/data/{uid}"), ("LIST", "secret/metadata/"),
                             ("GET", "sys/mounts"), ("POST", f"secret/data/{uid}")):
            r = http.request(method, path, token=tok, json={"data": {"a": 1}} if method == "POST" else None)
            assert r.status_code == 403, (tok, method, path, r.status_code, r.text)
            assert r.headers["Content-Type"] == "application/json"
            assert any("permission denied" in e for e in r.json()["errors"])


def test_bearer_token_header(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": "1"}})
    r = http.get(f"secret/data/{uid}", token=None, headers={"Authorization": "Bearer root"})
    assert r.status_code == 200 and r.json()["data"]["data"] == {"a": "1"}


def test_unknown_route_404(http):
    r = http.get("nosuchmount/foo/bar")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["errors"] == ['no handler for route "nosuchmount/foo/bar". route entry not found.']


def test_kv2_catch_all_warning(http, uid):
    # v1-style path on a v2 mount -> 404 with a warning, no errors key
    r = http.get(f"secret/{uid}")
    assert r.status_code == 404
    b = r.json()
    assert "errors" not in b
    assert b["data"] is None
    assert b["warnings"] and b["warnings"][0].startswith("Invalid path for a versioned K/V secrets engine")


def test_unsupported_method_405(http, uid):
    r = http.request("TRACE", f"secret/data/{uid}")
    assert r.status_code == 405


def test_percent_encoded_path_with_space(http, uid):
    r = http.post(f"secret/data/{uid}/some%20secret/pw%20name", json={"data": {"k": "v w"}})
    assert r.status_code == 200
    assert http.get(f"secret/data/{uid}/some%20secret/pw%20name").json()["data"]["data"] == {"k": "v w"}
    assert http.list(f"secret/metadata/{uid}").json()["data"] == {"keys": ["some secret/"]}


def test_sys_health_raw_and_codes(http):
    r = http.get("sys/health", token=None)
    assert r.status_code == 200
    b = r.json()
    assert "data" not in b and "request_id" not in b
    assert (b["initialized"], b["sealed"], b["standby"]) == (True, False, False)
    assert http.get("sys/health", token=None, params={"activecode": "299"}).status_code == 299
    assert http.request("HEAD", "sys/health", token=None).status_code == 200


def test_sys_leader_raw(http):
    # `bao status` decodes this into api.LeaderResponse: active_time is a
    # time.Time, so it must be RFC3339 or absent ("" breaks the CLI).
    # OpenBao 2.7 dev mode answers just {"ha_enabled":false}.
    r = http.get("sys/leader")
    assert r.status_code == 200
    b = r.json()
    assert "data" not in b and "request_id" not in b
    assert b["ha_enabled"] is False
    if "active_time" in b:
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", b["active_time"])


def test_ui_mounts_preflight(http, uid):
    # every `bao kv` subcommand reads data.path and data.options.version (string!)
    r = http.get(f"sys/internal/ui/mounts/secret/{uid}/x")
    assert r.status_code == 200
    d = r.json()["data"]
    assert d["path"] == "secret/"
    assert d["type"] == "kv"
    assert d["options"] == {"version": "2"}
    r = http.get(f"sys/internal/ui/mounts/nomount-{uid}/x")
    assert r.status_code == 403
    assert r.headers["Content-Type"] == "application/json"


def test_metadata_cas_required_false_under_mount_cas(http, kv_mount, uid):
    # mount mandates CAS: a key-level cas_required:false is ignored with a warning (200, data null)
    assert http.post(f"{kv_mount}/config", json={"cas_required": True}).status_code == 204
    r = http.post(f"{kv_mount}/metadata/{uid}", json={"cas_required": False})
    assert r.status_code == 200
    b = r.json()
    assert b["data"] is None
    assert b["warnings"] == ['"cas_required" set to false, but is mandated by backend config. This value will be ignored.']
    r = http.post(f"{kv_mount}/data/{uid}", json={"data": {"a": 1}})
    assert (r.status_code, r.json()) == (400, {"errors": ["check-and-set parameter required for this call"]})


def test_write_to_trailing_slash_path_rejected(http):
    r = http.post("secret/data/", json={"data": {"a": 1}})
    assert r.status_code in (400, 404, 405)
    assert r.headers["Content-Type"] == "application/json"


def test_subkeys(http, uid):
    http.post(f"secret/data/{uid}", json={"data": {"a": {"b": {"c": 1}}, "d": 2, "e": {}}})
    r = http.get(f"secret/subkeys/{uid}")
    assert r.status_code == 200
    d = r.json()["data"]
    assert d["subkeys"] == {"a": {"b": {"c": None}}, "d": None, "e": None}
    assert d["metadata"]["version"] == 1 and d["metadata"]["deletion_time"] == ""
    assert http.get(f"secret/subkeys/{uid}", params={"depth": "1"}).json()["data"]["subkeys"] == {
        "a": None, "d": None, "e": None}
    r = http.get(f"secret/subkeys/{uid}-nope")
    assert (r.status_code, r.json()) == (404, {"errors": []})
    http.delete(f"secret/data/{uid}")
    r = http.get(f"secret/subkeys/{uid}")
    assert r.status_code == 404
    b = r.json()
    assert "errors" not in b
    assert b["data"]["subkeys"] is None and b["data"]["metadata"]["deletion_time"] != ""


def test_double_slash_path(http, uid):
    # OpenBao's Go mux answers "//" with a 307 redirect to the cleaned path. kvseal is stricter on
    # purpose (the developers' guide: malformed paths get 400, not a redirect): a client that builds
    # "secret/data//x" has a bug, and silently writing to "secret/data/x" would hide it. Real clients
    # (the Go CLI, hvac, vaultrs) never send "//".
    r = http.post(f"secret/data//{uid}", json={"data": {"a": "1"}}, allow_redirects=False)
    if TARGET == "bao":
        assert r.status_code in (301, 307, 308), (r.status_code, r.text)
        return
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    assert "empty segment" in r.json()["errors"][0]
    # Nothing was written under either spelling.
    assert http.get(f"secret/data/{uid}").status_code == 404
    assert http.get(f"secret/data//{uid}", allow_redirects=False).status_code == 400
