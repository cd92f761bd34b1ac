"""generate-root and rekey, through the real `bao` CLI and the raw routes hvac and the `vault` CLI
send, against a Shamir-sealed server of each target (sealed_server.py: kvseal on SQLite with a
TOML config, `bao server` on raft).

`bao operator generate-root` (2.7) uses OpenBao's authenticated `sys/generate-root-token/*`;
`bao operator rekey` uses Vault's unauthenticated `sys/rekey/*`; `bao operator rotate-keys` uses
OpenBao's authenticated `sys/rotate/root/*`; hvac uses Vault's unauthenticated routes throughout.
"""

import base64
import os
import secrets
import string

import hvac
import hvac.exceptions
import pytest

from sealed_server import sealed_server


def decode_token(encoded: str, otp: str) -> str:
    """What `generate-root -decode` does: unpadded base64, then XOR with the OTP."""
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    assert len(raw) == len(otp), (encoded, len(otp))
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


def random_otp(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_share() -> str:
    """33 random bytes in hex: the length of a real share, opening nothing."""
    return os.urandom(33).hex()


def put_secret(s, path: str, data: dict) -> None:
    r = s.http("POST", f"secret/data/{path}", json={"data": data})
    assert r.status_code == 200, (r.status_code, r.text)


def assert_root_token_reads(s, token: str, path: str, data: dict) -> None:
    """`token` is a root token (its lookup says so) and reads the secret at `path`."""
    me = s.bao("token", "lookup", "-format=json", token=token)
    assert me.rc == 0, me.err
    assert me.out["data"]["policies"] == ["root"], me.out
    got = s.bao("kv", "get", "-format=json", f"secret/{path}", token=token)
    assert got.rc == 0, got.err
    assert got.out["data"]["data"] == data, got.out


# ---------------------------------------------------------------- generate-root


def test_generate_root_with_the_cli_gives_a_working_root_token(tmp_path):
    with sealed_server(tmp_path, shares=5, threshold=3) as s:
        put_secret(s, "gr", {"v": "1"})
        init = s.bao("operator", "generate-root", "-init", "-format=json")
        assert init.rc == 0, init.err
        assert init.out["started"] is True and init.out["required"] == 3, init.out
        nonce, otp = init.out["nonce"], init.out["otp"]
        assert len(otp) == init.out["otp_length"], init.out

        step = None
        for i, key in enumerate(s.keys[1:4]):
            step = s.bao("operator", "generate-root", f"-nonce={nonce}", "-format=json", key)
            assert step.rc == 0, step.err
            assert step.out["progress"] == i + 1, step.out
        assert step.out["complete"] is True, step.out
        encoded = step.out["encoded_token"] or step.out["encoded_root_token"]

        decoded = s.bao("operator", "generate-root", f"-decode={encoded}", f"-otp={otp}", "-format=json")
        assert decoded.rc == 0, decoded.err
        token = decoded.out["token"]
        assert token != s.root_token
        assert token == decode_token(encoded, otp)
        assert_root_token_reads(s, token, "gr", {"v": "1"})

        status = s.bao("operator", "generate-root", "-status", "-format=json")
        assert status.rc == 0, status.err
        assert status.out["started"] is False, status.out


def test_generate_root_with_an_otp_the_cli_generated(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        put_secret(s, "gr-otp", {"v": "2"})
        made = s.bao("operator", "generate-root", "-generate-otp")
        assert made.rc == 0, made.err
        otp = made.stdout.strip()
        init = s.bao("operator", "generate-root", "-init", f"-otp={otp}", "-format=json")
        assert init.rc == 0, init.err
        # A client's own OTP is not sent back.
        assert init.out["otp"] == "" and len(otp) == init.out["otp_length"], init.out
        step = None
        for key in s.keys[:2]:
            step = s.bao("operator", "generate-root", f"-nonce={init.out['nonce']}", "-format=json", key)
            assert step.rc == 0, step.err
        token = decode_token(step.out["encoded_token"], otp)
        assert_root_token_reads(s, token, "gr-otp", {"v": "2"})


def test_generate_root_on_vaults_unauthenticated_routes(tmp_path):
    """What hvac and the `vault` CLI send: no token, raw JSON answers."""
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        fields = {"nonce", "started", "progress", "required", "complete", "encoded_token",
                  "encoded_root_token", "pgp_fingerprint", "otp", "otp_length"}
        r = s.http("GET", "sys/generate-root/attempt", token=None)
        assert r.status_code == 200, r.text
        idle = r.json()
        assert set(idle) == fields, idle
        assert (idle["started"], idle["progress"], idle["required"], idle["otp"]) == (False, 0, 2, "")

        r = s.http("PUT", "sys/generate-root/attempt", token=None, json={})
        assert r.status_code == 200, r.text
        started = r.json()
        assert set(started) == fields, started
        nonce, otp = started["nonce"], started["otp"]
        assert started["started"] is True and len(otp) == idle["otp_length"], started

        again = s.http("PUT", "sys/generate-root/attempt", token=None, json={})
        assert again.status_code == 400, again.text
        assert "root generation already in progress" in again.json()["errors"][0]
        # The status never shows the OTP again.
        assert s.http("GET", "sys/generate-root/attempt", token=None).json()["otp"] == ""

        wrong = s.http("PUT", "sys/generate-root/update", token=None, json={"key": s.keys[0], "nonce": "x"})
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["errors"][0].startswith("incorrect nonce supplied"), wrong.text

        one = s.http("PUT", "sys/generate-root/update", token=None, json={"key": s.keys[0], "nonce": nonce})
        assert one.status_code == 200, one.text
        assert (one.json()["progress"], one.json()["complete"], one.json()["encoded_token"]) == (1, False, "")
        twice = s.http("PUT", "sys/generate-root/update", token=None,
                       json={"key": s.keys_base64[0], "nonce": nonce})
        assert twice.status_code == 400, twice.text
        assert "has already been provided" in twice.json()["errors"][0]

        done = s.http("PUT", "sys/generate-root/update", token=None, json={"key": s.keys[2], "nonce": nonce})
        assert done.status_code == 200, done.text
        body = done.json()
        assert set(body) == fields, body
        assert (body["complete"], body["progress"], body["required"]) == (True, 2, 2), body
        assert body["encoded_token"] == body["encoded_root_token"] != ""
        token = decode_token(body["encoded_token"], otp)
        me = s.http("GET", "auth/token/lookup-self", token=token)
        assert me.status_code == 200, me.text
        assert me.json()["data"]["policies"] == ["root"]
        assert s.http("GET", "sys/generate-root/attempt", token=None).json()["started"] is False


def test_generate_root_wrong_shares_are_refused_at_the_threshold_and_the_attempt_goes_on(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        r = s.http("PUT", "sys/generate-root/attempt", token=None, json={})
        assert r.status_code == 200, r.text
        nonce, otp = r.json()["nonce"], r.json()["otp"]
        one = s.http("PUT", "sys/generate-root/update", token=None, json={"key": s.keys[0], "nonce": nonce})
        assert one.status_code == 200, one.text
        bad = s.http("PUT", "sys/generate-root/update", token=None, json={"key": random_share(), "nonce": nonce})
        assert bad.status_code == 400, bad.text
        assert bad.json()["errors"][0].startswith("root generation aborted"), bad.text
        status = s.http("GET", "sys/generate-root/attempt", token=None).json()
        assert (status["started"], status["nonce"], status["progress"]) == (True, nonce, 0), status
        last = None
        for key in s.keys[1:3]:
            last = s.http("PUT", "sys/generate-root/update", token=None, json={"key": key, "nonce": nonce})
            assert last.status_code == 200, last.text
        token = decode_token(last.json()["encoded_token"], otp)
        assert s.http("GET", "auth/token/lookup-self", token=token).status_code == 200


def test_generate_root_cancel_with_the_cli(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        init = s.bao("operator", "generate-root", "-init", "-format=json")
        assert init.rc == 0, init.err
        cancel = s.bao("operator", "generate-root", "-cancel")
        assert cancel.rc == 0, cancel.err
        status = s.bao("operator", "generate-root", "-status", "-format=json")
        assert status.out["started"] is False, status.out
        late = s.http("PUT", "sys/generate-root/update", token=None,
                      json={"key": s.keys[0], "nonce": init.out["nonce"]})
        assert late.status_code == 400, late.text
        assert late.json()["errors"] == ["no root generation in progress"]


def test_generate_root_token_routes_need_a_token(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        status = s.bao("operator", "generate-root", "-status", token=None)
        assert status.rc == 2, status.out
        assert "permission denied" in status.err
        r = s.http("PUT", "sys/generate-root-token/attempt", token=None, json={})
        assert r.status_code == 403, r.text


# ---------------------------------------------------------------- rekey


def test_rekey_with_the_cli_to_three_shares_then_only_two_new_keys_unseal(tmp_path):
    with sealed_server(tmp_path, shares=5, threshold=3) as s:
        put_secret(s, "rk", {"v": "3"})
        # Vault's rekey routes need no token: the current shares are the authorisation.
        init = s.bao("operator", "rekey", "-init", "-key-shares=3", "-key-threshold=2", "-format=json",
                     token=None)
        assert init.rc == 0, init.err
        assert (init.out["started"], init.out["n"], init.out["t"], init.out["required"]) == (True, 3, 2, 3)
        nonce = init.out["nonce"]
        step = None
        for key in s.keys[2:5]:
            step = s.bao("operator", "rekey", f"-nonce={nonce}", "-format=json", key, token=None)
            assert step.rc == 0, step.err
        assert step.out["complete"] is True, step.out
        new = step.out["keys"]
        assert len(new) == 3 and len(step.out["keys_base64"]) == 3, step.out
        status = s.seal_status()
        assert (status["t"], status["n"], status["sealed"]) == (2, 3, False), status

        sealed = s.bao("operator", "seal")
        assert sealed.rc == 0, sealed.err
        # Two of the old keys: the second reaches the new threshold and is refused.
        first = s.bao("operator", "unseal", "-format=json", s.keys[0], token=None)
        assert first.rc == 0, first.err
        second = s.bao("operator", "unseal", "-format=json", s.keys[1], token=None)
        assert second.rc == 2, second.out
        assert s.seal_status()["sealed"] is True
        for key in new[1:3]:
            r = s.bao("operator", "unseal", "-format=json", key, token=None)
            assert r.rc == 0, r.err
        assert s.seal_status()["sealed"] is False
        s.wait_active()
        got = s.bao("kv", "get", "-format=json", "secret/rk")
        assert got.rc == 0, got.err
        assert got.out["data"]["data"] == {"v": "3"}


def test_rekey_with_verification_with_the_cli(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        init = s.bao("operator", "rekey", "-init", "-verify", "-key-shares=4", "-key-threshold=3",
                     "-format=json", token=None)
        assert init.rc == 0, init.err
        assert init.out["verification_required"] is True, init.out
        step = None
        for key in s.keys[:2]:
            step = s.bao("operator", "rekey", f"-nonce={init.out['nonce']}", "-format=json", key, token=None)
            assert step.rc == 0, step.err
        new, vnonce = step.out["keys"], step.out["verification_nonce"]
        assert len(new) == 4 and vnonce, step.out
        # Not in force until verified.
        assert (s.seal_status()["t"], s.seal_status()["n"]) == (2, 3)
        vstatus = s.bao("operator", "rekey", "-verify", "-status", "-format=json", token=None)
        assert vstatus.rc == 0, vstatus.err
        assert (vstatus.out["nonce"], vstatus.out["started"], vstatus.out["t"]) == (vnonce, True, 3), vstatus.out
        for key in new[1:3]:
            step = s.bao("operator", "rekey", "-verify", f"-nonce={vnonce}", "-format=json", key, token=None)
            assert step.rc == 0, step.err
            assert step.out["nonce"] == vnonce and step.out["started"] is True, step.out
        step = s.bao("operator", "rekey", "-verify", f"-nonce={vnonce}", new[3], token=None)
        assert step.rc == 0, step.err
        assert "Rekey verification successful" in step.stdout, step.stdout
        assert (s.seal_status()["t"], s.seal_status()["n"]) == (3, 4)
        s.seal()
        assert s.unseal(new[:3])["sealed"] is False


def test_rotate_keys_with_the_cli_then_the_new_keys_unseal_after_a_restart(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        put_secret(s, "rot", {"v": "4"})
        # OpenBao's authenticated route.
        anon = s.bao("operator", "rotate-keys", "-status", token=None)
        assert anon.rc == 2 and "permission denied" in anon.err, (anon.out, anon.err)
        init = s.bao("operator", "rotate-keys", "-init", "-key-shares=3", "-key-threshold=2", "-format=json")
        assert init.rc == 0, init.err
        nonce = init.out["nonce"]
        step = None
        for key in s.keys[1:3]:
            step = s.bao("operator", "rotate-keys", f"-nonce={nonce}", "-format=json", key)
            assert step.rc == 0, step.err
        new = step.out["keys"]
        assert len(new) == 3, step.out
        s.restart()
        assert s.seal_status()["sealed"] is True
        assert s.unseal(new[::2])["sealed"] is False
        got = s.bao("kv", "get", "-format=json", "secret/rot")
        assert got.rc == 0, got.err
        assert got.out["data"]["data"] == {"v": "4"}


def test_rekey_refusals(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        def put(path, body):
            return s.http("PUT", path, token=None, json=body)

        r = put("sys/rekey/update", {"key": s.keys[0], "nonce": "x"})
        assert (r.status_code, r.json()) == (400, {"errors": ["no barrier rekey in progress"]})
        r = s.http("GET", "sys/rekey/verify", token=None)
        assert (r.status_code, r.json()) == (400, {"errors": ["no rekey configuration found"]})
        r = put("sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2, "backup": True})
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == [
            "cannot request a backup of the new keys without providing PGP keys for encryption"]

        r = put("sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2})
        assert r.status_code == 200, r.text
        nonce = r.json()["nonce"]
        r = put("sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2})
        assert (r.status_code, r.json()) == (400, {"errors": ["rekey already in progress"]})
        r = put("sys/rekey/update", {"key": s.keys[0], "nonce": "x"})
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0].startswith("incorrect nonce supplied"), r.text
        assert put("sys/rekey/update", {"key": s.keys[0], "nonce": nonce}).status_code == 200
        r = put("sys/rekey/update", {"key": s.keys[0], "nonce": nonce})
        assert r.status_code == 400, r.text
        assert "has already been provided" in r.json()["errors"][0]
        r = put("sys/rekey/verify", {"key": s.keys[1], "nonce": nonce})
        assert (r.status_code, r.json()) == (400, {"errors": ["no rekey verification in progress"]})
        assert s.http("DELETE", "sys/rekey/init", token=None).status_code == 204
        assert s.http("GET", "sys/rekey/init", token=None).json()["started"] is False

        # No PGP, so never a backup of encrypted keys; the endpoint needs a token.
        r = s.http("GET", "sys/rekey/backup")
        assert (r.status_code, r.json()) == (400, {"errors": ["no backed-up keys found"]})
        assert s.http("GET", "sys/rekey/backup", token=None).status_code == 403


def test_rekey_wrong_shares_at_the_threshold_change_nothing(tmp_path):
    with sealed_server(tmp_path, shares=3, threshold=2) as s:
        r = s.http("PUT", "sys/rekey/init", token=None, json={"secret_shares": 3, "secret_threshold": 2})
        nonce = r.json()["nonce"]
        ok = s.http("PUT", "sys/rekey/update", token=None, json={"key": random_share(), "nonce": nonce})
        assert ok.status_code == 200, ok.text
        bad = s.http("PUT", "sys/rekey/update", token=None, json={"key": s.keys[0], "nonce": nonce})
        # OpenBao answers 500 here, kvseal 400 (the client sent wrong shares).
        assert bad.status_code in (400, 500), bad.text
        status = s.http("GET", "sys/rekey/init", token=None).json()
        assert (status["started"], status["nonce"], status["progress"]) == (True, nonce, 0), status
        s.seal()
        assert s.unseal(s.keys[1:3])["sealed"] is False


# ---------------------------------------------------------------- hvac


def test_hvac_generate_root_and_rekey_with_verification(tmp_path):
    """hvac's own generate-root and rekey calls (as its test_key.py makes them), with an OTP of
    the length the server asks for."""
    with sealed_server(tmp_path, shares=5, threshold=3) as s:
        client = hvac.Client(url=s.addr, token=s.root_token)
        progress = client.sys.read_root_generation_progress()
        assert progress["started"] is False
        otp = random_otp(progress["otp_length"])
        start = client.sys.start_root_token_generation(otp=otp)
        assert client.sys.read_root_generation_progress()["started"] is True
        last = {}
        for key in s.keys[0:3]:
            last = client.sys.generate_root(key=key, nonce=start["nonce"])
        assert client.sys.read_root_generation_progress()["started"] is False
        token = decode_token(last["encoded_root_token"], otp)
        assert hvac.Client(url=s.addr, token=token).is_authenticated()

        client.sys.start_root_token_generation(otp=otp)
        client.sys.cancel_root_generation()
        assert client.sys.read_root_generation_progress()["started"] is False

        assert client.sys.read_rekey_progress()["started"] is False
        client.sys.start_rekey()
        assert client.sys.read_rekey_progress()["started"] is True
        client.sys.cancel_rekey()
        assert client.sys.read_rekey_progress()["started"] is False
        result = client.sys.start_rekey()
        result = client.sys.rekey_multi(s.keys, nonce=result["nonce"])
        assert result["complete"] is True
        keys = result["keys"]

        result = client.sys.start_rekey(require_verification=True)
        result = client.sys.rekey_multi(keys, nonce=result["nonce"])
        assert result["complete"] is True
        new = result["keys"]
        first = client.sys.read_rekey_verify_progress()["nonce"]
        second = client.sys.cancel_rekey_verify()["nonce"]
        assert first != second
        result = client.sys.rekey_verify_multi(new, nonce=second)
        assert result["complete"] is True

        with pytest.raises(hvac.exceptions.InvalidRequest):
            client.sys.read_backup_keys()
        s.seal()
        assert s.unseal(new[:3])["sealed"] is False
