"""The packages' imports form no cycle, and the pure parts stay pure: the domain and the
channels' auth-code rules import nothing that does I/O (docs/PROVIDERS.md, "Adding a
channel"); redis is imported only by the store, the record, the entry points and the
modules named as exceptions.

The graph covers orchestrator/ (each of its packages and top-level modules a unit),
actors/ and loadtest/ (each one unit): bootstrap -> actors -> orchestrator is an edge
like any other, so a module under actors/ that reached back into the wiring would show
as a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import parse_python

ROOT = Path(__file__).resolve().parents[2]
# Entry points run as `python -m ...`; nothing imports them, so they add no edge.
ENTRY_POINTS = {"orchestrator.sandbox.__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


TOPS = ("orchestrator", "actors", "loadtest")


def _package(module: str) -> str:
    """orchestrator.channels.wechat.adapter -> orchestrator.channels; top-level modules
    (orchestrator.config) are their own unit; actors.runtime -> actors."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "orchestrator" else parts[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(path for top in TOPS for path in (ROOT / top).rglob("*.py")):
        module = _module_name(path)
        if module.startswith("orchestrator.generated") or module in ENTRY_POINTS:
            continue
        source = _package(module)
        edges = graph.setdefault(source, set())
        for node in ast.walk(parse_python(path)):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.split(".")[0] in TOPS and not name.startswith("orchestrator.generated"):
                    target = _package(name)
                    if target != source:
                        edges.add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(planted) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_package_import_cycles() -> None:
    graph = package_graph()
    assert "actors" in graph["orchestrator.bootstrap"]  # the edge the graph must see
    assert "orchestrator.servicepoint" in graph["actors"]
    assert "orchestrator.store" in graph["loadtest"]
    assert cycles(graph) == []


def test_only_the_wiring_imports_the_actors_and_nothing_imports_the_load_test() -> None:
    """actors/ is the Ray seam: orchestrator's bootstrap builds the actors, and nothing
    else in orchestrator/ knows Ray's classes; loadtest/ drives the service from outside."""
    graph = package_graph()
    assert sorted(unit for unit, edges in graph.items() if "actors" in edges) == [
        "orchestrator.bootstrap"
    ]
    assert [unit for unit, edges in graph.items() if "loadtest" in edges] == []
    assert not {"orchestrator.bootstrap", "orchestrator.cli"} & graph["actors"]


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("orchestrator.providers", "orchestrator.sandbox"),
        ("orchestrator.providers", "orchestrator.config"),
        ("orchestrator.providers", "orchestrator.channels"),
        ("orchestrator.config", "orchestrator.providers"),
        ("orchestrator.config", "orchestrator.channels"),
        ("orchestrator.sandbox", "orchestrator.channels"),
        ("orchestrator.domain", "orchestrator.providers"),
        ("orchestrator.domain", "orchestrator.channels"),
    ],
)
def test_layer_does_not_import_upwards(low: str, high: str) -> None:
    assert high not in package_graph()[low]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


IO_MODULES = {"aiohttp", "grpc", "ray", "redis", "cryptography", "orjson"}


@pytest.mark.parametrize(
    "module",
    [
        "orchestrator.channels.wechat.auth_codes",
        "orchestrator.channels.alipay.auth_codes",
        "orchestrator.channels.unionpay.auth_codes",
        "orchestrator.domain.order",
        "orchestrator.domain.ids",
        "orchestrator.domain.playbook",
        "orchestrator.config",
    ],
)
def test_pure_modules_pull_in_no_io(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert not {name.split(".")[0] for name in loaded} & IO_MODULES
    assert not any(name.startswith("orchestrator.providers") for name in loaded)


def test_the_records_codec_pulls_in_orjson_and_nothing_else_of_io() -> None:
    """domain/records.py is the stored records' one codec: orjson, no client of a store."""
    loaded = _loaded_after_import("orchestrator.domain.records")
    assert {name.split(".")[0] for name in loaded} & IO_MODULES == {"orjson"}
    assert not any(
        name.startswith(("orchestrator.providers", "orchestrator.store")) for name in loaded
    )


MOVED = ("channels", "providers", "sandbox")


def test_every_moved_module_imports_on_its_own() -> None:
    """A module that only imports after another one (a hidden cycle) fails here: each is
    imported first thing in a fresh interpreter."""
    modules = [
        _module_name(path)
        for package in MOVED
        for path in sorted((ROOT / "orchestrator" / package).rglob("*.py"))
        if path.name != "__main__.py"
    ] + ["orchestrator.config", "orchestrator.domain.playbook", "orchestrator.reconcile.job"]
    assert "orchestrator.channels.registry" in modules
    failed = []
    for module in modules:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode:
            failed.append((module, done.stderr.strip().splitlines()[-1]))
    assert failed == []


# Redis is the store's business: only store/ and record/ (the drainer, the reload, the
# record's reads composed with Redis's) speak to it, and the process entry points that
# start it or catch its errors; every connection is opened by store/connect.py (a single
# server or a Redis Cluster). Every other module that still imports redis is
# named here with the reason it is left; a new import fails, and so does a listed module
# that stops importing it (the list is exact: shorten it).
REDIS_PACKAGES = ("orchestrator.store", "orchestrator.record")
REDIS_ENTRY_POINTS = {
    "orchestrator.embedded_redis": "starts redis-server for `windowpay serve`",
    "orchestrator.reconcile.cli": "`windowpay reconcile` opens its connection",
    "orchestrator.audit.commands": "`windowpay audit close|verify` open their connection",
}
REDIS_EXCEPTIONS = {
    "orchestrator.frontdoor.telemetry": "metrics endpoint, service discovery and health",
    "orchestrator.telemetry": "announces a process's metrics endpoint in Redis",
    "orchestrator.access.supervisors": "catches the PIN lockout's RedisError",
    "orchestrator.audit.closer": "the drainer's day closing hands Redis to the audit",
    "orchestrator.audit.job": "the audit reads the chain heads and journals",
    "orchestrator.audit.verify": "verify cross-checks the record against Redis",
    "orchestrator.receipts.issuer": "the receipt issuer's outbox reader",
}


def imports_redis(tree: ast.Module) -> bool:
    """Whether the module imports redis anywhere (in a function or under TYPE_CHECKING
    too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name.split(".")[0] == "redis" for name in names):
            return True
    return False


def test_the_redis_import_finder_finds_a_planted_import() -> None:
    planted = "def f():\n    from redis.exceptions import RedisError\n    return RedisError\n"
    assert imports_redis(ast.parse(planted))
    assert imports_redis(ast.parse("import redis.asyncio as r\n"))
    assert not imports_redis(ast.parse("from orchestrator.store import redis_store\n"))
    assert not imports_redis(ast.parse("import redislike\n"))


def test_only_the_store_the_record_and_the_entry_points_import_redis() -> None:
    importers = {
        _module_name(path)
        for path in (ROOT / "orchestrator").rglob("*.py")
        if imports_redis(parse_python(path))
    }
    assert "orchestrator.store.redis_store" in importers  # the finder sees imports at all
    outside = {m for m in importers if not m.startswith(tuple(p + "." for p in REDIS_PACKAGES))}
    assert sorted(outside) == sorted(REDIS_ENTRY_POINTS | REDIS_EXCEPTIONS)
    frontdoor = sorted(m for m in outside if m.startswith("orchestrator.frontdoor."))
    assert frontdoor == ["orchestrator.frontdoor.telemetry"]
