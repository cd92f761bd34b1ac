"""The real `bao` CLI against the OKMS Vault-compatible API:
BAO_ADDR={addr}/api/{okmsId}, mount `secret` (as External Secrets and `vault kv` users set it).

Skipped against OpenBao (it has no OKMS API).
"""

import pytest

from conftest import TARGET

pytestmark = pytest.mark.skipif(TARGET == "bao", reason="OpenBao has no OKMS API")


@pytest.fixture
def okms_bao(bao, addr, okms_id):
    base = f"{addr}/api/{okms_id}"

    def run(*args, **kw):
        env = dict(kw.pop("env", None) or {})
        env.update({"BAO_ADDR": base, "VAULT_ADDR": base})
        return bao(*args, env=env, **kw)

    return run


def enc(path: str) -> str:
    return path.replace("/", "%2F")


def test_bao_kv_put_get(okms_bao, okms, uid):
    x = f"{uid}/x"
    r = okms_bao("kv", "put", "-mount=secret", x, "a=b")
    assert r.rc == 0, (r.stdout, r.err)
    r = okms_bao("kv", "get", "-format=json", "-mount=secret", x)
    assert r.rc == 0, (r.stdout, r.err)
    assert r.out["data"]["data"] == {"a": "b"}
    assert r.out["data"]["metadata"]["version"] == 1
    r = okms_bao("kv", "get", "-mount=secret", "-field=a", x)
    assert r.rc == 0, r.err
    assert r.stdout.strip() == "b"
    # the same secret through v2
    g = okms.get(f"v2/secret/{enc(x)}", params={"includeData": "true"})
    assert g.status_code == 200, g.text
    assert g.json()["version"]["data"] == {"a": "b"}


def test_bao_kv_lifecycle(okms_bao, okms, uid):
    x = f"{uid}/life"
    assert okms_bao("kv", "put", "-mount=secret", x, "a=1").rc == 0
    r = okms_bao("kv", "put", "-mount=secret", "-cas=1", x, "a=2")
    assert r.rc == 0, r.err
    r = okms_bao("kv", "put", "-mount=secret", "-cas=1", x, "a=3")
    assert r.rc != 0  # CAS mismatch
    r = okms_bao("kv", "patch", "-mount=secret", x, "b=3")
    assert r.rc == 0, r.err
    r = okms_bao("kv", "get", "-format=json", "-mount=secret", x)
    assert r.out["data"]["data"] == {"a": "2", "b": "3"}
    assert r.out["data"]["metadata"]["version"] == 3

    r = okms_bao("kv", "list", "-format=json", "-mount=secret", uid)
    assert r.rc == 0, r.err
    assert r.out == ["life"]

    r = okms_bao("kv", "metadata", "put", "-mount=secret", "-max-versions=5", x)
    assert r.rc == 0, r.err
    r = okms_bao("kv", "metadata", "get", "-format=json", "-mount=secret", x)
    assert r.rc == 0, r.err
    assert r.out["data"]["max_versions"] == 5
    assert r.out["data"]["current_version"] == 3

    assert okms_bao("kv", "delete", "-mount=secret", x).rc == 0
    assert okms.get(f"v2/secret/{enc(x)}/version/3").json()["state"] == "deactivated"
    assert okms_bao("kv", "undelete", "-mount=secret", "-versions=3", x).rc == 0
    assert okms.get(f"v2/secret/{enc(x)}/version/3").json()["state"] == "active"
    assert okms_bao("kv", "destroy", "-mount=secret", "-versions=1", x).rc == 0
    assert okms.get(f"v2/secret/{enc(x)}/version/1").json()["state"] == "deleted"
    assert okms_bao("kv", "metadata", "delete", "-mount=secret", x).rc == 0
    assert okms.get(f"v2/secret/{enc(x)}").status_code == 404
    r = okms_bao("kv", "get", "-mount=secret", x)
    assert r.rc == 2, (r.rc, r.stdout, r.err)  # "No value found"


def test_bao_kv_get_v2_created(okms_bao, okms, uid):
    x = f"{uid}/from-v2"
    r = okms.post("v2/secret", json={"path": x, "version": {"data": {"user": "u", "pw": "p"}}})
    assert r.status_code == 200, r.text
    r = okms_bao("kv", "get", "-format=json", "-mount=secret", x)
    assert r.rc == 0, r.err
    assert r.out["data"]["data"] == {"user": "u", "pw": "p"}
