"""OKMS API: bad input is a 400 with the OKMS error body (category Argument), and
nothing stored changes (every case reads the state back).

Skipped against OpenBao (it has no OKMS API).
"""

import base64
import http.client
import json
from urllib.parse import urlsplit

import pytest

from conftest import CAT_ARGUMENT, TARGET, assert_okms_error

pytestmark = pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")


def enc(path: str) -> str:
    return path.replace("/", "%2F")


def list_all(okms):
    """Every secret of the domain via GET /v2/secret (following cursors)."""
    out, cursor = [], None
    for _ in range(1000):
        h = {"X-Pagination-Size": "100"}
        if cursor:
            h["X-Pagination-Cursor"] = cursor
        r = okms.get("v2/secret", headers=h)
        assert r.status_code == 200, r.text
        out.extend(r.json())
        cursor = r.headers.get("X-Pagination-Cursor-Next")
        if not cursor:
            return out
    raise AssertionError("list does not end")


@pytest.fixture
def victim(okms, uid):
    """A secret with 2 versions and non-default metadata, plus a snapshot function."""
    path = f"{uid}/victim"
    r = okms.post("v2/secret", json={
        "path": path,
        "metadata": {"maxVersions": 5, "casRequired": False, "deactivateVersionAfter": "0s",
                     "customMetadata": {"k": "v"}},
        "version": {"data": {"a": "1"}},
    })
    assert r.status_code == 200, r.text
    r = okms.post(f"v2/secret/{enc(path)}/version", json={"data": {"a": "2"}})
    assert r.status_code == 200, r.text

    def snapshot():
        g = okms.get(f"v2/secret/{enc(path)}", params={"includeData": "true"})
        vs = okms.get(f"v2/secret/{enc(path)}/version")
        v1 = okms.get(f"v2/secret/{enc(path)}/version/1", params={"includeData": "true"})
        cfg = okms.get("v2/secretConfig")
        paths = sorted(s["path"] for s in list_all(okms))
        return (g.status_code, g.json(), vs.json(), v1.json(), cfg.json(), paths)

    return path, snapshot


def check_unchanged(okms, victim, send, status=400, category=CAT_ARGUMENT):
    path, snapshot = victim
    before = snapshot()
    r = send()
    assert_okms_error(r, status, category)
    after = snapshot()
    assert after == before
    return r


BAD_BODIES_POST = [
    pytest.param(b"{oops", id="invalid-json"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b"[]", id="array-body"),
    pytest.param(b'{"path": 12, "version": {"data": {}}}', id="path-int"),
    pytest.param(b'{"path": "P", "version": {"data": []}}', id="data-array"),
    pytest.param(b'{"path": "P", "version": {"data": "x"}}', id="data-string"),
    pytest.param(b'{"path": "P", "version": "x"}', id="version-string"),
    pytest.param(b'{"path": "P"}', id="version-missing"),
    pytest.param(b'{"version": {"data": {}}}', id="path-missing"),
    pytest.param(b'{"path": "P", "version": {}}', id="data-missing"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "extra": 1}', id="unknown-top-field"),
    pytest.param(b'{"path": "P", "version": {"data": {}, "id": 1}}', id="unknown-version-field"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"foo": 1}}', id="unknown-metadata-field"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"maxVersions": "10"}}', id="maxVersions-string"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"maxVersions": -1}}', id="maxVersions-negative"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"maxVersions": 24001}}', id="maxVersions-24001"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"casRequired": "yes"}}', id="casRequired-string"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"deactivateVersionAfter": "soon"}}', id="duration-garbage"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"deactivateVersionAfter": 5}}', id="duration-int"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"customMetadata": {"k": 1}}}', id="customMetadata-int"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"customMetadata": {"k": ""}}}', id="customMetadata-empty-value"),
    pytest.param(b'{"path": "P", "version": {"data": {}}, "metadata": {"customMetadata": {"k": "a b"}}}', id="customMetadata-space"),
]


@pytest.mark.parametrize("raw", BAD_BODIES_POST)
def test_bad_create_body(okms, uid, victim, raw):
    new = f"{uid}/new"
    raw = raw.replace(b'"P"', json.dumps(new).encode())
    check_unchanged(okms, victim, lambda: okms.post(
        "v2/secret", data=raw, headers={"Content-Type": "application/json"}))
    r = okms.get(f"v2/secret/{enc(new)}")
    assert r.status_code == 404, r.text


def test_bad_create_custom_metadata_too_many(okms, uid, victim):
    body = {"path": f"{uid}/new", "version": {"data": {}},
            "metadata": {"customMetadata": {f"k{i}": "v" for i in range(65)}}}
    check_unchanged(okms, victim, lambda: okms.post("v2/secret", json=body))
    assert okms.get(f"v2/secret/{enc(uid + '/new')}").status_code == 404


@pytest.mark.parametrize("bad", [
    pytest.param("x" * 256, id="256-chars"),
    pytest.param("a b", id="space"),
    pytest.param("a%20b", id="percent20"),
    pytest.param("a/../b", id="dotdot"),
    pytest.param("../b", id="leading-dotdot"),
    pytest.param("a/./b", id="dot"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param("", id="empty"),
    pytest.param("a?b", id="question"),
    pytest.param("caf\u00e9", id="non-ascii"),
])
def test_bad_create_path(okms, victim, bad):
    check_unchanged(okms, victim, lambda: okms.post(
        "v2/secret", json={"path": bad, "version": {"data": {"a": "b"}}}))


def test_path_255_is_fine(okms, uid):
    path = (uid + "/" + "x" * 255)[:255]
    r = okms.post("v2/secret", json={"path": path, "version": {"data": {"a": "b"}}})
    assert r.status_code == 200, r.text
    assert okms.get(f"v2/secret/{enc(path)}").json()["path"] == path


def raw_request(okms, method, target, body=None):
    """http.client sends the target byte for byte (requests/urllib3 would normalise `..`)."""
    u = urlsplit(okms.base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"Authorization": f"Bearer {okms.token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    c.request(method, u.path + "/" + target, body=body, headers=headers)
    resp = c.getresponse()
    data = resp.read()

    class R:  # just enough of requests.Response for assert_okms_error
        status_code = resp.status
        headers = {k.title() if k.lower() != "content-type" else "Content-Type": v
                   for k, v in resp.getheaders()}
        text = data.decode(errors="replace")
        content = data

        def json(self):
            return json.loads(data)
    c.close()
    return R()


@pytest.mark.parametrize("url_path", [
    pytest.param("x" * 256, id="256-chars"),
    pytest.param("{uid}%2F" + "y" * 250, id="256-chars-encoded"),
    pytest.param("a%20b", id="percent20"),
    pytest.param("{uid}/../victim", id="dotdot-raw"),
    pytest.param("{uid}%2F..%2Fvictim", id="dotdot-encoded"),
    pytest.param("{uid}%2F%2E%2E%2Fvictim", id="dotdot-fully-encoded"),
    pytest.param("a%3Fb", id="question"),
    pytest.param("a%00b", id="nul"),
])
@pytest.mark.parametrize("op", ["get", "put", "post-version", "get-version", "put-state", "delete"])
def test_bad_url_path(okms, uid, victim, url_path, op):
    p = url_path.format(uid=uid)
    if len(url_path) == 256 and "{uid}" not in url_path:
        assert len(p) == 256
    sends = {
        "get": ("GET", f"v2/secret/{p}", None),
        "put": ("PUT", f"v2/secret/{p}", b'{"version": {"data": {"a": "x"}}}'),
        "post-version": ("POST", f"v2/secret/{p}/version", b'{"data": {"a": "x"}}'),
        "get-version": ("GET", f"v2/secret/{p}/version/1", None),
        "put-state": ("PUT", f"v2/secret/{p}/version/1", b'{"state": "deleted"}'),
        "delete": ("DELETE", f"v2/secret/{p}", None),
    }
    method, target, body = sends[op]
    check_unchanged(okms, victim, lambda: raw_request(okms, method, target, body))


def test_bad_update_bodies(okms, victim):
    path, _ = victim
    p = enc(path)
    bodies = [
        b"{oops",
        b"",
        b'{"version": {"data": []}}',
        b'{"version": {"data": {"a": "x"}, "extra": 1}}',
        b'{"version": {}}',
        b'{"metadata": {"maxVersions": "3"}}',
        b'{"metadata": {"maxVersions": 24001}}',
        b'{"metadata": {"casRequired": 1}}',
        b'{"metadata": {"unknown": true}}',
        b'{"metadata": {"deactivateVersionAfter": "forever"}}',
        b'{"metadata": {"customMetadata": {"k": "no spaces"}}}',
        b'{"unknown": {}}',
        b'{"path": "other"}',
    ]
    for raw in bodies:
        r = check_unchanged(okms, victim, lambda: okms.put(
            f"v2/secret/{p}", data=raw, headers={"Content-Type": "application/json"}))
        assert r.status_code == 400, raw


def test_bad_version_numbers_and_cas(okms, victim):
    path, _ = victim
    p = enc(path)
    sends = [
        lambda: okms.get(f"v2/secret/{p}", params={"version": 0}),
        lambda: okms.get(f"v2/secret/{p}", params={"version": 24001}),
        lambda: okms.get(f"v2/secret/{p}", params={"version": -1}),
        lambda: okms.get(f"v2/secret/{p}", params={"version": "two"}),
        lambda: okms.get(f"v2/secret/{p}", params={"includeData": "maybe"}),
        lambda: okms.get(f"v2/secret/{p}/version/0"),
        lambda: okms.get(f"v2/secret/{p}/version/24001"),
        lambda: okms.get(f"v2/secret/{p}/version/abc"),
        lambda: okms.get(f"v2/secret/{p}/version/1", params={"includeData": "maybe"}),
        lambda: okms.put(f"v2/secret/{p}/version/0", json={"state": "deleted"}),
        lambda: okms.put(f"v2/secret/{p}/version/24001", json={"state": "deleted"}),
        lambda: okms.put(f"v2/secret/{p}", params={"cas": 24001}, json={"version": {"data": {"a": "x"}}}),
        lambda: okms.put(f"v2/secret/{p}", params={"cas": -1}, json={"version": {"data": {"a": "x"}}}),
        lambda: okms.put(f"v2/secret/{p}", params={"cas": "two"}, json={"version": {"data": {"a": "x"}}}),
        lambda: okms.post(f"v2/secret/{p}/version", params={"cas": 24001}, json={"data": {"a": "x"}}),
        lambda: okms.post(f"v2/secret/{p}/version", params={"cas": -1}, json={"data": {"a": "x"}}),
    ]
    for i, send in enumerate(sends):
        check_unchanged(okms, victim, send)


def test_bad_state(okms, victim):
    path, _ = victim
    p = enc(path)
    for raw in [b'{"state": "paused"}', b'{"state": "ACTIVE"}', b'{"state": "DELETED"}',
                b'{"state": 1}', b'{"state": null}', b"{}", b'{"state": "deleted", "x": 1}',
                b"{oops", b""]:
        check_unchanged(okms, victim, lambda: okms.put(
            f"v2/secret/{p}/version/1", data=raw, headers={"Content-Type": "application/json"}))
    assert okms.get(f"v2/secret/{p}/version/1").json()["state"] == "active"


def test_bad_new_version_bodies(okms, victim):
    path, _ = victim
    p = enc(path)
    for raw in [b"{oops", b"", b"{}", b'{"data": []}', b'{"data": "x"}', b'{"data": {}, "x": 1}']:
        check_unchanged(okms, victim, lambda: okms.post(
            f"v2/secret/{p}/version", data=raw, headers={"Content-Type": "application/json"}))


def test_data_over_64k(okms, uid, victim):
    path, _ = victim
    p = enc(path)
    big = {"k": "x" * (64 * 1024 + 1)}
    new = f"{uid}/big"
    check_unchanged(okms, victim, lambda: okms.post("v2/secret", json={"path": new, "version": {"data": big}}))
    assert okms.get(f"v2/secret/{enc(new)}").status_code == 404
    check_unchanged(okms, victim, lambda: okms.put(f"v2/secret/{p}", json={"version": {"data": big}}))
    check_unchanged(okms, victim, lambda: okms.post(f"v2/secret/{p}/version", json={"data": big}))
    # many small keys adding up to more than 64 KB
    many = {f"key{i:05d}": "v" * 60 for i in range(1200)}
    check_unchanged(okms, victim, lambda: okms.post(f"v2/secret/{p}/version", json={"data": many}))


def test_data_just_under_64k_is_fine(okms, uid):
    data = {"k": "x" * (60 * 1024)}
    r = okms.post("v2/secret", json={"path": f"{uid}/nearly", "version": {"data": data}})
    assert r.status_code == 200, r.text
    g = okms.get(f"v2/secret/{enc(uid + '/nearly')}", params={"includeData": "true"}).json()
    assert g["version"]["data"] == data


def test_bad_secret_config(okms, victim):
    for raw in [b"{oops", b'{"maxVersions": "3"}', b'{"maxVersions": 24001}', b'{"maxVersions": -1}',
                b'{"casRequired": "true"}', b'{"deactivateVersionAfter": "soon"}', b'{"unknown": 1}']:
        check_unchanged(okms, victim, lambda: okms.put(
            "v2/secretConfig", data=raw, headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("size", ["5", "9", "101", "0", "-1", "ten", "1000"])
def test_bad_page_size(okms, victim, size):
    path, _ = victim
    h = {"X-Pagination-Size": size}
    check_unchanged(okms, victim, lambda: okms.get("v2/secret", headers=h))
    check_unchanged(okms, victim, lambda: okms.get(f"v2/secret/{enc(path)}/version", headers=h))
    check_unchanged(okms, victim, lambda: okms.get("v1/secret/metadata", headers=h))
    check_unchanged(okms, victim, lambda: okms.get("v1/secret/metadata", params={"list": "true"}, headers=h))


def test_page_size_bounds_ok(okms, victim):
    path, _ = victim
    for size in ("10", "100"):
        h = {"X-Pagination-Size": size}
        assert okms.get("v2/secret", headers=h).status_code == 200
        assert okms.get(f"v2/secret/{enc(path)}/version", headers=h).status_code == 200
        assert okms.get("v1/secret/metadata", headers=h).status_code == 200


@pytest.mark.parametrize("cursor", [
    "!!!garbage!!!",
    "%%%",
    "not base64 at all",
    base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode().rstrip("="),
])
def test_garbage_cursor(okms, victim, cursor):
    path, _ = victim
    h = {"X-Pagination-Cursor": cursor, "X-Pagination-Size": "10"}
    check_unchanged(okms, victim, lambda: okms.get("v2/secret", headers=h))
    check_unchanged(okms, victim, lambda: okms.get(f"v2/secret/{enc(path)}/version", headers=h))
    check_unchanged(okms, victim, lambda: okms.get("v1/secret/metadata", headers=h))


def test_version_list_cursor_not_a_version(okms, victim):
    path, _ = victim
    cur = base64.urlsafe_b64encode(b"abc").decode().rstrip("=")
    check_unchanged(okms, victim, lambda: okms.get(
        f"v2/secret/{enc(path)}/version", headers={"X-Pagination-Cursor": cur}))


def test_bad_v1_input(okms, victim):
    path, _ = victim
    sends = [
        lambda: okms.post(f"v1/secret/data/{path}", data=b"{oops",
                          headers={"Content-Type": "application/json"}),
        lambda: okms.get(f"v1/secret/data/{path}", params={"version": "x"}),
        # ("versions": "1" is taken as [1], as Vault's weak decoding does; "abc" is not a list)
        lambda: okms.post(f"v1/secret/delete/{path}", json={"versions": "abc"}),
        lambda: okms.post("v1/secret/config", json={"max_versions": "x"}),
        lambda: okms.post("v1/secret/config", json={"delete_version_after": "soon"}),
    ]
    for send in sends:
        check_unchanged(okms, victim, send)
