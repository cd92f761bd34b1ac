"""hvac: kv-v2 mount config (`{mount}/config`).

hvac's configure() always sends max_versions (default 10) and
delete_version_after (default "0s"); its integration tests assert the values
read back exactly, with durations in Go's Duration.String() form.
"""

import pytest


def test_unset_config_reads_zero(client, kv_mount):
    # An unconfigured mount reads max_versions 0 (not the effective 10) and "0s".
    cfg = client.secrets.kv.v2.read_configuration(mount_point=kv_mount)
    d = dict(cfg["data"])
    # OpenBao adds metadata_cas_required (no client reads it); Vault has exactly three fields
    assert d.pop("metadata_cas_required", False) is False
    assert d == {"max_versions": 0, "cas_required": False, "delete_version_after": "0s"}
    assert type(cfg["data"]["max_versions"]) is int
    assert type(cfg["data"]["cas_required"]) is bool


@pytest.mark.parametrize(
    "max_versions,cas_required,dva",
    [(10, False, "30m0s"), (1, True, "30s"), (17, None, "1h0m0s"), (0, False, "0s")],
)
def test_configure_roundtrip(client, kv_mount, max_versions, cas_required, dva):
    r = client.secrets.kv.v2.configure(
        max_versions=max_versions, cas_required=cas_required,
        delete_version_after=dva, mount_point=kv_mount,
    )
    assert r.status_code == 204  # hvac returns the Response for non-200
    data = client.secrets.kv.v2.read_configuration(mount_point=kv_mount)["data"]
    assert data["max_versions"] == max_versions
    assert data["delete_version_after"] == dva
    assert data["cas_required"] is bool(cas_required)


def test_configure_duration_forms_normalised(client, kv_mount):
    # Requests accept seconds (int) and Go duration strings; reads are Duration.String().
    client.secrets.kv.v2.configure(max_versions=5, delete_version_after=90, mount_point=kv_mount)
    assert client.secrets.kv.v2.read_configuration(mount_point=kv_mount)["data"]["delete_version_after"] == "1m30s"
    client.secrets.kv.v2.configure(max_versions=5, delete_version_after="768h", mount_point=kv_mount)
    assert client.secrets.kv.v2.read_configuration(mount_point=kv_mount)["data"]["delete_version_after"] == "768h0m0s"


def test_configure_partial_update_keeps_other_fields(http, kv_mount):
    # Only fields present in the body are changed.
    assert http.post(f"{kv_mount}/config", json={"max_versions": 7, "cas_required": True}).status_code == 204
    assert http.post(f"{kv_mount}/config", json={"delete_version_after": "45s"}).status_code == 204
    d = http.get(f"{kv_mount}/config").json()["data"]
    assert (d["max_versions"], d["cas_required"], d["delete_version_after"]) == (7, True, "45s")
    # negative disables delete-after; reads back as -1s
    assert http.post(f"{kv_mount}/config", json={"delete_version_after": "-1s"}).status_code == 204
    assert http.get(f"{kv_mount}/config").json()["data"]["delete_version_after"] == "-1s"
