"""How the suite is spread over pytest-xdist's workers (docs/TESTING.md, "In parallel").

Each worker is a pytest session of its own, with its own session fixtures: its own Redis
and PostgreSQL, its own Ray, its own fault stack under var/faults/<worker>. So a test
may run in any worker and still be correct; but a test that shares a deployment with
others should run where that deployment was started, or the deployment is started again.
The groups:

* the tests of the e2e deployment (`deployed`: Ray and the front door in-process);
* the tests of the fault tier's served stack (`stack`: a `windowpay serve` child);
* the tests of a module (or package) that has a module- or package-scoped fixture of
  its own (a served deployment, sandboxes), so that it is made once;
* every other test on its own.

A group runs in one worker, in collection order. The longest groups are queued first,
so that none of them starts last.

xdist's own `--dist loadgroup` reads `xdist_group` marks by appending the group to each
test's node id, which pytest 9.2's structured node ids silently ignore (pytest-xdist
issue 1386: every test is then scheduled on its own). So the marks are still set (for a
fixed xdist), and the groups also travel on a side channel: each worker writes its
{node id: group} map to a file the controller named, and the controller's scheduler (a
LoadScopeScheduling whose scope of a test is its group) reads it. A test whose group is
not known is scheduled on its own, which is slower but never wrong."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

# The fixtures that start a deployment shared by many tests, and the group of their tests.
SHARED_DEPLOYMENTS = {"deployed": "e2e-deployment", "stack": "fault-stack"}
# Queued first to last: the fault tier's served stack (the longest), the e2e deployment,
# the rest of those two tiers, the integration tier; then the short tests.
LONGEST_FIRST = (
    "fault-stack", "e2e-deployment", "tests/faults/", "tests/e2e/", "tests/integration/"
)  # fmt: skip
# The first test of a group also waits for its deployment to start (Ray, a served process).
FIRST_OF_GROUP_TIMEOUT_S = 600
GROUPS_FILE = "windowpay_groups_file"  # the key of the worker's input naming its file
GROUPS_DIR = pytest.StashKey[Path]()


def group_of(item: pytest.Item) -> str | None:
    """The group of `item`, None for a test that may run in any worker."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for fixture, group in SHARED_DEPLOYMENTS.items():
        if fixture in info.names_closure:
            return group
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name, ())
        if definitions and definitions[-1].scope in ("module", "package"):
            return definitions[-1].baseid or None
    return None


def _rank(item: pytest.Item) -> tuple[int, bool]:
    group = next((m.args[0] for m in item.iter_markers("xdist_group")), None)
    where = group if group in SHARED_DEPLOYMENTS.values() else item.nodeid
    rank = next((i for i, p in enumerate(LONGEST_FIRST) if where.startswith(p)), len(LONGEST_FIRST))
    # Load smoke runs go last in their group: they leave the shared deployment's day busy.
    return rank, item.get_closest_marker("load") is not None


def mark_and_order(items: list[pytest.Item]) -> None:
    """Mark each test with its group and put the longest groups first (the order every
    worker collects in, and so the order xdist queues the groups in). The first test of
    a group also waits for the group's deployment to start, which takes minutes on a
    loaded two-core machine while the other workers start theirs: it gets the time."""
    for item in items:
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=_rank)
    started: set[str] = set()
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None or mark.args[0] in started:
            continue
        started.add(mark.args[0])
        timeout = item.get_closest_marker("timeout")
        if timeout is None or timeout.args[0] < FIRST_OF_GROUP_TIMEOUT_S:
            item.add_marker(pytest.mark.timeout(FIRST_OF_GROUP_TIMEOUT_S))


def tell_controller(session: pytest.Session) -> None:
    """In an xdist worker: write {node id: group} where the controller will read it."""
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is None or GROUPS_FILE not in workerinput:
        return
    groups = {}
    for item in session.items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            groups[item.nodeid] = str(mark.args[0])
    Path(workerinput[GROUPS_FILE]).write_text(json.dumps(groups))


def configure_node(node: WorkerController) -> None:
    """In the controller: name the file each worker writes its groups to."""
    config = node.config
    if GROUPS_DIR not in config.stash:
        config.stash[GROUPS_DIR] = Path(tempfile.mkdtemp(prefix="windowpay-xdist-"))
    node.workerinput[GROUPS_FILE] = str(config.stash[GROUPS_DIR] / f"{node.gateway.id}.json")


def clean_up(config: pytest.Config) -> None:
    if GROUPS_DIR in config.stash:
        shutil.rmtree(config.stash[GROUPS_DIR], ignore_errors=True)


class GroupScheduling(LoadScopeScheduling):
    """xdist's scope scheduling, where the scope of a test is its group (or itself)."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.groups: dict[str, str] = {}

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        path = Path(node.workerinput[GROUPS_FILE])
        if not self.groups and path.exists():
            self.groups = json.loads(path.read_text())
        super().add_node_collection(node, collection)

    def _split_scope(self, nodeid: str) -> str:
        return self.groups.get(nodeid, nodeid)


def scheduler(config: pytest.Config, log: Producer) -> GroupScheduling | None:
    """The controller's scheduler for `--dist loadgroup` (pyproject's addopts)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return GroupScheduling(config, log)
