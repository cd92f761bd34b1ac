"""Security review, issue 10, findings 2 and 14: who may create which tokens, for how long.

Every case runs against both targets with the same expectations: `bao server -dev` is the
reference (Vault's token store, `handleCreateCommon`), kvseal must answer alike. Each test is a
table of (caller, request, expected status, expected policies / lease / error).

* Finding 2: a role without `allowed_policies` (or the other lists) skipped the rule that a child's
  policies are a subset of its creator's; a token with `update` on `auth/token/create/<role>`
  minted any non-root policy.
* Finding 14: `period` needs root or sudo on the create path unless a role gives it; TTLs stay
  within the explicit maximum, at creation and at every renewal, including the role's current one.
"""

import pytest
import requests

from conftest import Http

# ---------------------------------------------------------------- fixtures and helpers


def put_policy(http: Http, name: str, hcl: str) -> None:
    r = http.put(f"sys/policies/acl/{name}", json={"policy": hcl})
    assert r.status_code == 204, (r.status_code, r.text)


def put_role(http: Http, name: str, body: dict) -> None:
    r = http.post(f"auth/token/roles/{name}", json=body)
    assert r.status_code in (200, 204), (r.status_code, r.text)


def root_token(http: Http, body: dict) -> str:
    r = http.post("auth/token/create", json=body)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["auth"]["client_token"]


@pytest.fixture
def names(http, uid):
    """Policies and roles unique to the test: `creator` may call every create path, `sudoer` has
    sudo on them, `admin` is a policy nobody below root holds; roles cover each policy rule."""
    n = {k: f"{uid}-{k}" for k in ("creator", "sudoer", "admin", "app", "open", "lists", "deny",
                                    "periodic", "capped", "orphan")}
    put_policy(http, n["creator"],
               'path "auth/token/create" { capabilities = ["update"] }\n'
               'path "auth/token/create/*" { capabilities = ["update"] }\n'
               'path "auth/token/create-orphan" { capabilities = ["update"] }')
    put_policy(http, n["sudoer"], 'path "auth/token/create*" { capabilities = ["update", "sudo"] }')
    put_policy(http, n["admin"], 'path "*" { capabilities = ["read", "list"] }')
    put_policy(http, n["app"], 'path "secret/data/app/*" { capabilities = ["read"] }')
    put_role(http, n["open"], {})
    put_role(http, n["lists"], {"allowed_policies": [n["app"]],
                                 "allowed_policies_glob": [f"{uid}-glob-*"],
                                 "disallowed_policies_glob": [f"{uid}-glob-secret*"]})
    put_role(http, n["deny"], {"disallowed_policies": [n["admin"]]})
    put_role(http, n["periodic"], {"token_period": "1h"})
    put_role(http, n["capped"], {"token_explicit_max_ttl": "2h"})
    put_role(http, n["orphan"], {"orphan": True})
    yield n
    for k in ("open", "lists", "deny", "periodic", "capped", "orphan"):
        http.delete(f"auth/token/roles/{n[k]}")


@pytest.fixture
def callers(http, names):
    """A token per kind of caller (each made by root, checked), with the default 768h TTL."""
    return {
        "creator": root_token(http, {"policies": [names["creator"]]}),
        "sudoer": root_token(http, {"policies": [names["sudoer"]]}),
        "root": http.token,
    }


def fill(value, names: dict):
    """`{admin}`-style placeholders in a case, replaced by the test's unique names."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def check_create(http: Http, names: dict, callers: dict, case) -> requests.Response:
    caller, path, body, status, expect = case
    r = http.post(fill(path, names), json=fill(body, names), token=callers[caller])
    assert r.status_code == status, (case, r.status_code, r.text)
    if status == 200:
        auth = r.json()["auth"]
        for key, want in fill(expect, names).items():
            if key == "lease_duration":
                # kvseal never lets a child outlive its parent: a child of a 768h caller made a
                # moment later may show a second less.
                assert want - 2 <= auth[key] <= want, (case, key, auth)
            elif key == "policies":
                assert auth[key] == sorted(want), (case, key, auth)  # Vault sorts them
            else:
                assert auth[key] == want, (case, key, auth)
    else:
        assert r.json() == {"errors": [fill(expect, names)]}, (case, r.text)
    return r


SUBSET = "child policies must be subset of parent"

# ---------------------------------------------------------------- finding 2: policies


# (caller, path, body, status, expected auth fields or the error)
POLICY_CASES = [
    # The attack: a role without policy lists is no way past the subset rule.
    ("creator", "auth/token/create/{open}", {"policies": ["{admin}"]}, 400, SUBSET),
    ("creator", "auth/token/create/{open}", {"policies": ["{admin}", "{creator}"]}, 400, SUBSET),
    ("creator", "auth/token/create/{open}", {}, 200, {"policies": ["{creator}", "default"]}),
    ("creator", "auth/token/create/{open}", {"policies": ["{creator}"]}, 200,
     {"policies": ["{creator}", "default"]}),
    # The same rule without a role.
    ("creator", "auth/token/create", {"policies": ["{admin}"]}, 400, SUBSET),
    ("creator", "auth/token/create-orphan", {"policies": ["{admin}"]}, 400, SUBSET),
    ("creator", "auth/token/create", {"policies": ["default", "{creator}"]}, 200,
     {"policies": ["{creator}", "default"]}),
    # Sudo on the create path (or root) lifts it, but only root makes root.
    ("sudoer", "auth/token/create", {"policies": ["{admin}"]}, 200,
     {"policies": ["{admin}", "default"]}),
    ("sudoer", "auth/token/create/{open}", {"policies": ["{admin}"]}, 200,
     {"policies": ["{admin}", "default"]}),
    ("sudoer", "auth/token/create", {"policies": ["root"]}, 400,
     "root tokens may not be created without parent token being root"),
    ("root", "auth/token/create/{open}", {"policies": ["{admin}"]}, 200,
     {"policies": ["{admin}", "default"]}),
    # A role with lists decides alone: its allowed policies and globs, never a disallowed one.
    ("creator", "auth/token/create/{lists}", {}, 200, {"policies": ["{app}", "default"]}),
    ("creator", "auth/token/create/{lists}", {"policies": ["{uid}-glob-x"]}, 200,
     {"policies": ["{uid}-glob-x", "default"]}),
    ("creator", "auth/token/create/{lists}", {"policies": ["{uid}-glob-secret-1"]}, 400,
     'token policy "{uid}-glob-secret-1" is disallowed by this role'),
    ("creator", "auth/token/create/{lists}", {"policies": ["{admin}"]}, 400,
     'token policies (["default" "{admin}"]) must be subset of the role\'s allowed policies '
     '(["default" "{app}"]) or glob policies (["{uid}-glob-*"])'),
    ("creator", "auth/token/create/{lists}", {"policies": ["root"]}, 400,
     'token policies (["root"]) must be subset of the role\'s allowed policies '
     '(["default" "{app}"]) or glob policies (["{uid}-glob-*"])'),
    ("creator", "auth/token/create/{deny}", {"policies": ["{admin}"]}, 400,
     'token policy "{admin}" is disallowed by this role'),
    ("creator", "auth/token/create/{deny}", {"policies": ["{app}"]}, 200,
     {"policies": ["{app}", "default"]}),
]


@pytest.mark.parametrize("case", POLICY_CASES, ids=lambda c: f"{c[0]}:{c[1]}:{c[2]}")
def test_child_policies_follow_vaults_rules(http, names, callers, uid, case):
    check_create(http, {**names, "uid": uid}, callers, case)


def test_refused_child_token_leaves_nothing_behind(http, names, callers):
    """A refused create stores no token: the caller's accessor list is unchanged."""
    before = http.list("auth/token/accessors")
    assert before.status_code == 200, before.text
    r = http.post(f"auth/token/create/{names['open']}", json={"policies": [names["admin"]]},
                  token=callers["creator"])
    assert r.status_code == 400, r.text
    after = http.list("auth/token/accessors")
    assert after.status_code == 200, after.text
    assert sorted(after.json()["data"]["keys"]) == sorted(before.json()["data"]["keys"])


# ---------------------------------------------------------------- who may make orphans, periodic and child tokens

ORPHAN_PERIOD_CASES = [
    # period: root or sudo on the create path, unless the role gives it.
    ("creator", "auth/token/create", {"period": "1h"}, 400,
     "root or sudo privileges required to create periodic token"),
    ("creator", "auth/token/create/{open}", {"period": "1h"}, 400,
     "root or sudo privileges required to create periodic token"),
    ("creator", "auth/token/create/{periodic}", {"period": "2h"}, 400,
     "root or sudo privileges required to create periodic token"),
    ("creator", "auth/token/create/{periodic}", {}, 200, {"lease_duration": 3600}),
    ("creator", "auth/token/create", {"period": "0"}, 200, {"lease_duration": 768 * 3600}),
    ("creator", "auth/token/create", {"period": "-1s"}, 400, "period must be positive"),
    ("sudoer", "auth/token/create", {"period": "1h"}, 200, {"lease_duration": 3600}),
    ("root", "auth/token/create", {"period": "1000h"}, 200, {"lease_duration": 768 * 3600}),
    # no_parent: root or sudo; with a role the role's `orphan` decides and no_parent is ignored.
    ("creator", "auth/token/create", {"no_parent": True}, 400,
     "root or sudo privileges required to create orphan token"),
    ("sudoer", "auth/token/create", {"no_parent": True}, 200, {"orphan": True}),
    ("creator", "auth/token/create/{open}", {"no_parent": True}, 200, {"orphan": False}),
    ("creator", "auth/token/create/{orphan}", {}, 200, {"orphan": True}),
    ("creator", "auth/token/create-orphan", {}, 200, {"orphan": True}),
    # Negative durations.
    ("creator", "auth/token/create", {"ttl": "-1s"}, 400, "ttl must be positive"),
    ("creator", "auth/token/create", {"explicit_max_ttl": "-1s"}, 400,
     "explicit_max_ttl must be positive"),
]


@pytest.mark.parametrize("case", ORPHAN_PERIOD_CASES, ids=lambda c: f"{c[0]}:{c[1]}:{c[2]}")
def test_orphans_and_periodic_tokens_need_sudo(http, names, callers, case):
    check_create(http, names, callers, case)


def test_periodic_token_from_role_is_not_shown_as_periodic(http, names, callers):
    """The role's period applies, the token's own `period` stays unset (Vault's lookup)."""
    r = check_create(http, names, callers,
                     ("creator", "auth/token/create/{periodic}", {}, 200, {"lease_duration": 3600}))
    look = http.get("auth/token/lookup-self", token=r.json()["auth"]["client_token"])
    assert look.status_code == 200, look.text
    d = look.json()["data"]
    assert "period" not in d and d["role"] == names["periodic"] and d["creation_ttl"] == 3600, d


@pytest.mark.parametrize("num_uses", [1, 3])
def test_use_limited_token_cannot_create_tokens(http, names, num_uses):
    """A child would escape the use limit (Vault refuses; with one use left, the parent is gone)."""
    limited = root_token(http, {"policies": [names["creator"]], "num_uses": num_uses})
    r = http.post("auth/token/create-orphan", json={}, token=limited)
    assert r.status_code == 400, r.text
    assert r.json()["errors"] in (["restricted use token cannot generate child tokens"],
                                  ["parent token lookup failed: no parent found"]), r.text


# ---------------------------------------------------------------- finding 14: TTL limits

# (create body as root, renew increment, expected lease after renewal, warning expected)
RENEW_CASES = [
    ({"ttl": "1h", "explicit_max_ttl": "90m"}, "10h", 5400, True),
    ({"ttl": "1h"}, "10h", 36000, False),
    ({"ttl": "1h"}, "1000h", 768 * 3600, True),
    ({"period": "1h", "explicit_max_ttl": "3h"}, "10h", 3600, False),
]


@pytest.mark.parametrize("case", RENEW_CASES, ids=lambda c: f"{c[0]}+{c[1]}")
def test_renewal_never_passes_the_maximum(http, case):
    body, increment, lease, warned = case
    tok = root_token(http, body)
    r = http.post("auth/token/renew-self", json={"increment": increment}, token=tok)
    assert r.status_code == 200, r.text
    j = r.json()
    assert abs(j["auth"]["lease_duration"] - lease) <= 1, (case, j)
    assert bool(j["warnings"]) == warned, (case, j)
    if warned:
        assert "exceeded the effective max_ttl" in j["warnings"][0], j


def test_create_caps_ttl_with_vaults_warnings(http):
    cases = [
        ({"ttl": "3h", "explicit_max_ttl": "1h"}, 3600,
         'TTL of "3h" exceeded the effective max_ttl of "1h"; TTL value is capped accordingly'),
        ({"ttl": "1000h"}, 768 * 3600,
         'TTL of "1000h" exceeded the effective max_ttl of "768h"; TTL value is capped accordingly'),
        ({"period": "2h", "explicit_max_ttl": "1h"}, 3600,
         'period of "2h" exceeded the effective max_ttl of "1h"; period value is capped accordingly'),
    ]
    for body, lease, warning in cases:
        r = http.post("auth/token/create", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["auth"]["lease_duration"] == lease, (body, r.text)
        assert warning in r.json()["warnings"], (body, r.text)


def test_role_token_renewal_follows_the_role_as_it_is_now(http, names, callers):
    capped = names["capped"]
    r = http.post(f"auth/token/create/{capped}", json={"ttl": "1h"}, token=callers["creator"])
    assert r.status_code == 200, r.text
    tok = r.json()["auth"]["client_token"]
    steps = [
        # (role change before the renewal, expected status, expected lease or error fragment)
        (None, 200, 7200),
        ({"token_explicit_max_ttl": "90m"}, 200, 5400),
        ("delete", None, f'original token role "{capped}" could not be found, not renewing'),
    ]
    for change, status, want in steps:
        if change == "delete":
            d = http.delete(f"auth/token/roles/{capped}")
            assert d.status_code == 204, d.text
        elif change:
            put_role(http, capped, change)
        r = http.post("auth/token/renew-self", json={"increment": "10h"}, token=tok)
        if status == 200:
            assert r.status_code == 200, (change, r.text)
            assert abs(r.json()["auth"]["lease_duration"] - want) <= 1, (change, r.text)
        else:
            # Vault answers 500 ("failed to renew entry: ..."), kvseal 400: the request is refused.
            assert r.status_code in (400, 500), (change, r.text)
            assert want in r.json()["errors"][0], (change, r.text)


# ---------------------------------------------------------------- roles read back as Vault returns them


def test_role_round_trip_matches_vault(http, uid):
    name = f"{uid}-round"
    put_role(http, name, {
        "allowed_policies": "B,a, a", "disallowed_policies": ["X", "x", " y "],
        "allowed_policies_glob": ["app-*"], "disallowed_policies_glob": "adm*",
        "period": "1h", "explicit_max_ttl": "2h", "path_suffix": "v1x", "token_num_uses": 3,
        "token_no_default_policy": True, "orphan": True, "renewable": False,
    })
    want = {
        "allowed_entity_aliases": None, "allowed_policies": ["a", "b"],
        "allowed_policies_glob": ["app-*"], "disallowed_policies": ["x", "y"],
        "disallowed_policies_glob": ["adm*"], "explicit_max_ttl": 7200, "name": name,
        "orphan": True, "path_suffix": "v1x", "period": 3600, "renewable": False,
        "token_explicit_max_ttl": 7200, "token_no_default_policy": True, "token_num_uses": 3,
        "token_period": 3600, "token_type": "default-service",
    }
    try:
        r = http.get(f"auth/token/roles/{name}")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == want
        # Writing the token_ field clears its deprecated twin; lists stay as they were.
        put_role(http, name, {"token_period": "30m"})
        r = http.get(f"auth/token/roles/{name}")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {**want, "period": 0, "token_period": 1800}
        # The role's suffix and use limit reach its tokens.
        t = http.post(f"auth/token/create/{name}", json={"policies": ["a"], "num_uses": 5})
        assert t.status_code == 200, t.text
        assert t.json()["auth"]["num_uses"] == 3 and t.json()["auth"]["policies"] == ["a"], t.text
        look = http.post("auth/token/lookup", json={"token": t.json()["auth"]["client_token"]})
        assert look.status_code == 200, look.text
        assert look.json()["data"]["path"] == f"auth/token/create/{name}/v1x", look.text
    finally:
        http.delete(f"auth/token/roles/{name}")


ROLE_WRITE_ERRORS = [
    ({"token_period": "-1s"}, 'error converting input for field "token_period": cannot provide negative value \'-1\''),
    ({"token_type": "default"}, "invalid 'token_type' value \"default\""),
    ({"token_num_uses": -1}, "error parsing role fields: 'token_num_uses' cannot be negative"),
    ({"path_suffix": "a/../bbb"}, "error registering path suffix: path cannot contain parent references"),
    ({"path_suffix": "ab"}, "given role path suffix contains invalid characters; must match \\w[\\w-.]+\\w"),
]


@pytest.mark.parametrize("case", ROLE_WRITE_ERRORS, ids=lambda c: str(c[0]))
def test_invalid_role_writes_are_refused_and_change_nothing(http, uid, case):
    body, error = case
    name = f"{uid}-bad"
    put_role(http, name, {"token_period": "1h"})
    try:
        before = http.get(f"auth/token/roles/{name}")
        assert before.status_code == 200, before.text
        r = http.post(f"auth/token/roles/{name}", json=body)
        assert r.status_code == 400, r.text
        assert r.json() == {"errors": [error]}, r.text
        after = http.get(f"auth/token/roles/{name}")
        assert after.status_code == 200, after.text
        assert after.json()["data"] == before.json()["data"]
    finally:
        http.delete(f"auth/token/roles/{name}")
