"""pytest plugin for hvac's upstream integration tests (loaded by run.py with `-p kvseal_plugin`).

Applies the two lists beside this file, for the target in HVAC_UPSTREAM_TARGET (kvseal or bao):

* deselected.txt: tests not run on that target, each with its reason; pytest reports them as
  deselected and the session header counts them.
* expected_failures.txt: tests that run and must fail on that target, with the exception's type
  name or a part of its message (`because`) and the reason. Such a test that passes, or fails for
  another reason, fails the run, so the list stays true: delete an entry when its feature lands.
* racy.txt: tests that race the target (same format): they run, and may pass or fail, but only
  for the listed reason; any other failure fails the run.

Line format of both: `node id | target | ...`, `#` starts a comment; target is kvseal, bao or both.
A listed node id that the upstream files do not have stops the run (the list went stale).
"""
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("HVAC_UPSTREAM_TARGET", "")
TARGETS = ("kvseal", "bao", "both")


class Entry:
    def __init__(self, fname: str, lineno: int, fields: list):
        self.where = f"{fname}:{lineno}"
        self.node_id, self.target, *self.rest = fields
        if self.target not in TARGETS:
            raise pytest.UsageError(f"{self.where}: target {self.target!r} is not one of {TARGETS}")

    def applies(self) -> bool:
        return self.target in (TARGET, "both")


def read_list(fname: str, nfields: int) -> list:
    entries = []
    with open(os.path.join(HERE, fname)) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split("|")]
            if len(fields) != nfields or not all(fields):
                raise pytest.UsageError(f"{fname}:{lineno}: want {nfields} non-empty fields separated by |")
            entries.append(Entry(fname, lineno, fields))
    seen = set()
    for e in entries:
        key = (e.node_id, e.target)
        if key in seen:
            raise pytest.UsageError(f"{e.where}: {e.node_id} listed twice for {e.target}")
        seen.add(key)
    return entries


DESELECTED = read_list("deselected.txt", 3)          # node id | target | reason
EXPECTED_FAILURES = read_list("expected_failures.txt", 4)  # node id | target | because | reason
RACY = read_list("racy.txt", 4)                      # node id | target | because | reason


def pytest_configure(config):
    if TARGET not in ("kvseal", "bao"):
        raise pytest.UsageError(f"HVAC_UPSTREAM_TARGET={TARGET!r}: run through compat-tests/hvac_upstream/run.sh")


def pytest_report_header(config):
    d = sum(e.applies() for e in DESELECTED)
    x = sum(e.applies() for e in EXPECTED_FAILURES)
    r = sum(e.applies() for e in RACY)
    return (f"hvac 2.4.0 upstream integration tests against {TARGET}: {d} deselected (deselected.txt), "
            f"{x} expected to fail (expected_failures.txt), {r} racy (racy.txt)")


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: the stale-id check sees every test
def pytest_collection_modifyitems(session, config, items):
    ids = {item.nodeid for item in items}
    stale = [e for e in DESELECTED + EXPECTED_FAILURES + RACY if e.node_id not in ids]
    if stale:
        raise pytest.UsageError("no such upstream test: " + "; ".join(f"{e.where} {e.node_id}" for e in stale))
    lists = [{e.node_id for e in lst if e.applies()} for lst in (DESELECTED, EXPECTED_FAILURES, RACY)]
    twice = (lists[0] & lists[1]) | (lists[0] & lists[2]) | (lists[1] & lists[2])
    if twice:
        raise pytest.UsageError(f"in more than one list for {TARGET}: {sorted(twice)}")
    drop = {e.node_id: e for e in DESELECTED if e.applies()}
    xfail = {e.node_id: (e, True) for e in EXPECTED_FAILURES if e.applies()}
    xfail.update({e.node_id: (e, False) for e in RACY if e.applies()})
    keep, gone = [], []
    for item in items:
        (gone if item.nodeid in drop else keep).append(item)
        if item.nodeid in xfail:
            e, strict = xfail[item.nodeid]
            because, reason = e.rest
            item.user_properties.append(("expected_failure", because))
            item.add_marker(pytest.mark.xfail(reason=f"{reason} [{e.where}]", strict=strict))
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """An expected failure counts only when it fails for the listed reason: its exception's type
    name or text must contain `because`; otherwise the test is reported failed."""
    report = yield
    because = dict(item.user_properties).get("expected_failure")
    if because is None or call.excinfo is None or not hasattr(report, "wasxfail"):
        return report
    text = f"{call.excinfo.typename}: {call.excinfo.value}"
    if because not in text:
        report.outcome = "failed"
        report.longrepr = (f"expected to fail because of {because!r} ({report.wasxfail}), "
                           f"but failed with:\n{text}\n\n{report.longrepr}")
        del report.wasxfail
    return report
