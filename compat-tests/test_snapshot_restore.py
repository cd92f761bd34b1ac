"""Online snapshot restore through the real `bao` CLI: `bao operator raft snapshot save` -> change
the data -> `bao operator raft snapshot restore` -> the data of the snapshot is back at once, and a
token created after the snapshot no longer exists; a damaged snapshot is refused with nothing
changed; a snapshot of another store is refused unless forced, and forced (Shamir seal) the server
seals itself until that store's unseal keys unseal it.

A restore replaces the whole store, so these tests never touch the session's server: each starts
servers of its own (sealed_server.py). OpenBao's dev mode has no raft storage, so the reference is
`bao server -config` with raft storage in a temporary directory, initialised with one share and
unsealed. kvseal is its dev server (file seal) for the restore itself, and a Shamir-sealed
`kvseal server --config` where the seal matters (another store's snapshot).

Where the two differ on purpose: OpenBao answers 500 to a damaged archive (its reader's error),
kvseal 400 (the client sent a bad archive); OpenBao installs the snapshot after answering (so a
forced restore seals a moment later), kvseal before (so it is sealed when the answer comes).
"""

import gzip
import time

import pytest

from conftest import TARGET
from sealed_server import SealedServer, sealed_server

OTHER_KEYS = (
    "could not verify hash file, possibly the snapshot is using a different set of unseal keys; "
    "use the snapshot-force API to bypass this check"
)


@pytest.fixture
def store(tmp_path):
    """A server for one test: bao with raft storage (one unseal key, unsealed), kvseal's dev
    server."""
    with sealed_server(tmp_path, shares=1, threshold=1, name="store",
                       kvseal_dev=TARGET == "kvseal") as s:
        yield s


@pytest.fixture
def two_shamir_stores(tmp_path):
    """Two Shamir-sealed servers (separate stores, one unseal key each, not the same)."""
    with sealed_server(tmp_path, shares=1, threshold=1, name="a") as a:
        with sealed_server(tmp_path, shares=1, threshold=1, name="b") as b:
            yield a, b


def _snapshot(s: SealedServer, *args):
    """`bao operator raft snapshot <args>` against `s` (an archive can take a while)."""
    return s.bao("operator", "raft", "snapshot", *args, timeout=120)


def _value(s: SealedServer, key):
    """`v` of secret/<key>'s current version through the CLI, None when there is none."""
    r = s.bao("kv", "get", "-format=json", f"secret/{key}")
    if r.rc == 2 and "No value found" in (r.stdout + r.err):
        return None
    assert r.rc == 0, (key, r.rc, r.stdout, r.err)
    return r.out["data"]["data"]["v"]


def _put(s: SealedServer, key, v):
    r = s.bao("kv", "put", f"secret/{key}", f"v={v}")
    assert r.rc == 0, (key, r.rc, r.stdout, r.err)


def _sealed(s: SealedServer) -> bool:
    return s.seal_status()["sealed"]


def _save(s: SealedServer, path) -> bytes:
    r = _snapshot(s, "save", path)
    assert r.rc == 0, (r.rc, r.stdout, r.err)
    data = path.read_bytes()
    assert data[:2] == b"\x1f\x8b", "a gzip archive"
    return data


def test_restore_brings_back_the_snapshot_at_once(store, tmp_path):
    _put(store, "keep", "1")
    _put(store, "old", "1")
    snap = tmp_path / "before.snap"
    _save(store, snap)

    _put(store, "keep", "2")
    _put(store, "new", "1")
    r = store.bao("kv", "metadata", "delete", "secret/old")
    assert r.rc == 0, (r.rc, r.stdout, r.err)
    r = store.http("POST", "auth/token/create", json={"policies": ["default"]})
    assert r.status_code == 200, r.text
    late = r.json()["auth"]["client_token"]
    assert store.http("GET", "auth/token/lookup-self", token=late).status_code == 200

    r = _snapshot(store, "restore", snap)
    assert (r.rc, r.stdout, r.err) == (0, "", ""), "the CLI prints nothing on success"

    # At once: no polling.
    assert _value(store, "keep") == "1"
    assert _value(store, "old") == "1"
    assert _value(store, "new") is None
    r = store.bao("kv", "metadata", "get", "-format=json", "secret/keep")
    assert r.rc == 0 and r.out["data"]["current_version"] == 1, (r.rc, r.stdout, r.err)
    # The snapshot's tokens are the ones that exist: one created after it is gone.
    r = store.http("GET", "auth/token/lookup-self", token=late)
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    assert store.http("GET", "auth/token/lookup-self").status_code == 200
    # The restored store takes writes.
    _put(store, "after", "1")
    assert _value(store, "after") == "1"


def _tampered(archive: bytes) -> dict:
    """Damaged copies of `archive`, by name."""
    flipped = bytearray(archive)
    flipped[len(flipped) // 2] ^= 0x01
    # The archive's own content, recompressed with one byte of the database changed: the gzip
    # stream is sound, the snapshot's checksum is not.
    raw = bytearray(gzip.decompress(archive))
    raw[512 + 50] ^= 0x01  # inside the first entry's data (bao's meta.json, kvseal's database)
    return {
        "compressed byte flipped": bytes(flipped),
        "truncated": archive[: len(archive) // 2],
        "content byte flipped": gzip.compress(bytes(raw)),
        "not gzip": b"hello world",
    }


def test_damaged_snapshot_is_refused_and_nothing_changes(store, tmp_path):
    _put(store, "keep", "1")
    archive = _save(store, tmp_path / "good.snap")
    _put(store, "keep", "2")
    _put(store, "new", "1")

    for name, data in _tampered(archive).items():
        f = tmp_path / "bad.snap"
        f.write_bytes(data)
        r = _snapshot(store, "restore", f)
        assert r.rc == 2 and "Error installing the snapshot" in r.err, (name, r.rc, r.stdout, r.err)
        # The same refusal through the API: OpenBao's snapshot reader fails with 500, kvseal
        # answers 400 (the archive is the client's error).
        r = store.http("POST", "sys/storage/raft/snapshot", data=data, timeout=60)
        assert r.status_code == {"bao": 500, "kvseal": 400}[TARGET], (name, r.status_code, r.text)
        assert r.json()["errors"], (name, r.text)
        # Nothing was replaced.
        assert (_value(store, "keep"), _value(store, "new")) == ("2", "1"), name
        assert _sealed(store) is False, name

    # And the good archive still restores after all that.
    r = _snapshot(store, "restore", tmp_path / "good.snap")
    assert r.rc == 0, (r.rc, r.stdout, r.err)
    assert (_value(store, "keep"), _value(store, "new")) == ("1", None)


def test_another_stores_snapshot_needs_force_then_its_unseal_keys(two_shamir_stores, tmp_path):
    a, b = two_shamir_stores
    _put(a, "app", "a")
    _put(b, "app", "b")
    theirs = tmp_path / "b.snap"
    _save(b, theirs)

    r = _snapshot(a, "restore", theirs)
    assert r.rc == 2 and OTHER_KEYS in r.err, (r.rc, r.stdout, r.err)
    r = a.http("POST", "sys/storage/raft/snapshot", data=theirs.read_bytes(), timeout=60)
    assert (r.status_code, r.json()) == (400, {"errors": [OTHER_KEYS]})
    assert _value(a, "app") == "a" and _sealed(a) is False

    r = _snapshot(a, "restore", "-force", theirs)
    assert r.rc == 0, (r.rc, r.stdout, r.err)
    # OpenBao installs the snapshot after answering: it seals a moment later.
    deadline = time.monotonic() + 20
    while not _sealed(a):
        assert time.monotonic() < deadline, f"not sealed after a forced restore:\n{a.log_tail()}"
        time.sleep(0.1)
    assert a.http("GET", "secret/data/app").status_code == 503

    # A's own unseal key no longer opens it; B's does.
    r = a.http("PUT", "sys/unseal", token=None, json={"key": a.keys_base64[0]}, timeout=30)
    assert r.status_code == 400, r.text
    assert _sealed(a) is True
    r = a.http("PUT", "sys/unseal", token=None, json={"key": b.keys_base64[0]}, timeout=30)
    assert r.status_code == 200 and r.json()["sealed"] is False, r.text
    deadline = time.monotonic() + 20
    while a.http("GET", "secret/data/app", token=b.root_token).status_code != 200:
        assert time.monotonic() < deadline, a.log_tail()
        time.sleep(0.1)
    r = a.http("GET", "secret/data/app", token=b.root_token)
    assert r.json()["data"]["data"] == {"v": "b"}, r.text
    # B's tokens are the ones that exist now.
    assert a.http("GET", "auth/token/lookup-self", token=a.root_token).status_code == 403
