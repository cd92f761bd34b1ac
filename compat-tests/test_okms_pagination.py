"""OKMS pagination (X-Pagination-Size / X-Pagination-Cursor / X-Pagination-Cursor-Next):
a walk under concurrent writes returns every secret that existed for the whole walk
exactly once and never anything twice. Also the version list and the v1 metadata list.

Skipped against OpenBao (it has no OKMS API).
"""

import base64

import pytest

from conftest import TARGET

pytestmark = pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")


def enc(path: str) -> str:
    return path.replace("/", "%2F")


def create(okms, path, data=None):
    r = okms.post("v2/secret", json={"path": path, "version": {"data": data or {"p": path}}})
    assert r.status_code == 200, r.text


def b64url_ok(s: str) -> bool:
    try:
        base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except ValueError:
        return False
    return all(c.isalnum() or c in "-_=" for c in s)


def test_v2_list_walk_under_writes(okms, uid):
    pre = f"{uid}-pg"
    names = [f"{pre}/s{i:03d}" for i in range(250)]
    for n in names:
        create(okms, n)

    stable = set(names)           # existed for the whole walk (so far)
    deleted_unseen, seen_list = set(), []
    created_during = []
    cursor, pages = None, 0
    while True:
        h = {"X-Pagination-Size": "10"}
        if cursor:
            h["X-Pagination-Cursor"] = cursor
        r = okms.get("v2/secret", headers=h)
        assert r.status_code == 200, r.text
        items = r.json()
        assert isinstance(items, list)
        assert len(items) <= 10
        for it in items:
            assert set(it) <= {"metadata", "path", "version"}
            assert "data" not in it.get("version", {}), it  # lists never return data
        seen_list.extend(it["path"] for it in items)
        nxt = r.headers.get("X-Pagination-Cursor-Next")
        pages += 1
        if not nxt:
            # the last page: no (or an empty) continuation header
            assert "X-Pagination-Cursor-Next" not in r.headers or r.headers["X-Pagination-Cursor-Next"] == ""
            break
        assert len(items) == 10, "a non-last page must be full"
        assert b64url_ok(nxt), nxt
        cursor = nxt

        # mutate between pages
        seen = set(seen_list)
        k = pages
        # new secrets on both sides of the cursor (before and after in path order)
        for extra in (f"{pre}/s{k * 7 % 250:03d}-new{k}", f"{pre}/a-new{k}", f"{pre}/z-new{k}"):
            create(okms, extra)
            created_during.append(extra)
        # delete one not yet seen and one already seen
        unseen = sorted(stable - seen)
        if unseen:
            victim = unseen[len(unseen) // 2]
            assert okms.delete(f"v2/secret/{enc(victim)}").status_code == 204
            stable.discard(victim)
            deleted_unseen.add(victim)
        seen_ours = sorted(stable & seen)
        if seen_ours:
            victim = seen_ours[0]
            assert okms.delete(f"v2/secret/{enc(victim)}").status_code == 204
            stable.discard(victim)
        assert pages < 200, "walk does not end"

    dup = {p for p in seen_list if seen_list.count(p) > 1}
    assert not dup, f"duplicates: {sorted(dup)[:10]}"
    missing = stable - set(seen_list)
    assert not missing, f"{len(missing)} stable secrets missing, e.g. {sorted(missing)[:5]}"
    # deleted before being reached: never returned
    assert not (deleted_unseen & set(seen_list)), sorted(deleted_unseen & set(seen_list))[:5]
    assert pages >= 25

    # a fresh walk afterwards sees exactly the current state of our prefix
    final, cursor = [], None
    while True:
        h = {"X-Pagination-Size": "100"}
        if cursor:
            h["X-Pagination-Cursor"] = cursor
        r = okms.get("v2/secret", headers=h)
        final.extend(it["path"] for it in r.json())
        cursor = r.headers.get("X-Pagination-Cursor-Next")
        if not cursor:
            break
    ours = sorted(p for p in final if p.startswith(pre + "/"))
    assert len(ours) == len(set(ours))
    assert set(ours) == stable | set(created_during)

    # clean up (other tests snapshot the whole list)
    for p in ours:
        okms.delete(f"v2/secret/{enc(p)}")


def test_v2_list_default_and_max_size(okms, uid):
    pre = f"{uid}-sz"
    for i in range(12):
        create(okms, f"{pre}/k{i:02d}")
    r = okms.get("v2/secret")  # default size 100
    assert r.status_code == 200
    assert len(r.json()) <= 100
    r = okms.get("v2/secret", headers={"X-Pagination-Size": "10"})
    assert len(r.json()) == 10
    assert r.headers.get("X-Pagination-Cursor-Next")
    for i in range(12):
        okms.delete(f"v2/secret/{enc(f'{pre}/k{i:02d}')}")


def test_version_list_pagination(okms, uid):
    path = f"{uid}/many-versions"
    r = okms.post("v2/secret", json={"path": path, "metadata": {"maxVersions": 40},
                                     "version": {"data": {"n": "1"}}})
    assert r.status_code == 200, r.text
    for n in range(2, 26):
        assert okms.post(f"v2/secret/{enc(path)}/version", json={"data": {"n": str(n)}}).status_code == 200
    ids, cursor, pages = [], None, 0
    while True:
        h = {"X-Pagination-Size": "10"}
        if cursor:
            h["X-Pagination-Cursor"] = cursor
        r = okms.get(f"v2/secret/{enc(path)}/version", headers=h)
        assert r.status_code == 200, r.text
        page = [v["id"] for v in r.json()]
        ids.extend(page)
        pages += 1
        cursor = r.headers.get("X-Pagination-Cursor-Next")
        if pages == 1:
            # a version written mid-walk shows up at the end, once
            assert okms.post(f"v2/secret/{enc(path)}/version", json={"data": {"n": "26"}}).status_code == 200
        if not cursor:
            break
        assert len(page) == 10
        assert b64url_ok(cursor)
    assert ids == list(range(1, 27))
    assert pages == 3


def test_v1_metadata_list_pagination(okms, uid):
    pre = f"{uid}-v1l"
    keys = [f"k{i:02d}" for i in range(25)] + ["dir/"]
    for k in keys[:-1]:
        create(okms, f"{pre}/{k}")
    create(okms, f"{pre}/dir/leaf")

    def walk(url, params=None):
        got, cursor, pages = [], None, 0
        while True:
            h = {"X-Pagination-Size": "10"}
            if cursor:
                h["X-Pagination-Cursor"] = cursor
            r = okms.get(url, params=params, headers=h)
            assert r.status_code == 200, r.text
            b = r.json()
            assert set(b) <= {"request_id", "data", "warnings"}, b
            assert isinstance(b["request_id"], str)
            page = b["data"]["keys"]
            assert len(page) <= 10
            got.extend(page)
            pages += 1
            cursor = r.headers.get("X-Pagination-Cursor-Next")
            if not cursor:
                return got, pages
            assert len(page) == 10
            assert b64url_ok(cursor)

    # GET /v1/secret/metadata/<prefix>?list=true (okms-sdk-go / vault CLI style)
    got, pages = walk(f"v1/secret/metadata/{pre}", {"list": "true"})
    assert got == sorted(keys), got
    assert pages == 3
    # ... and with a trailing slash
    got2, _ = walk(f"v1/secret/metadata/{pre}/", {"list": "true"})
    assert got2 == got

    # the root list, both spellings: every key once, ours among them
    for url, params in (("v1/secret/metadata", None), ("v1/secret/metadata", {"list": "true"})):
        root, _ = walk(url, params)
        assert len(root) == len(set(root)), url
        assert f"{pre}/" in root, url
