"""A channel lives in its package and its one registry entry: no other module of
orchestrator/ imports a channel package or names a channel in code, and the shipped
sample names none (docs/PROVIDERS.md, "Adding a channel"). Comments and docstrings may
mention a provider; code may not."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.channels import registry
from orchestrator.config import PROVIDER_CHANNELS, channel_defaults
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.support import parse_python

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "orchestrator"
CHANNELS = SOURCE / "channels"
PACKAGES = sorted(p.name for p in CHANNELS.iterdir() if (p / "__init__.py").is_file())
REGISTRY = CHANNELS / "registry.py"
# The one list of channels is the proto's enum; `make proto` generates the domain's copy.
THE_ENUM = (SOURCE / "domain" / "channel.py", "Channel")
WORDS = sorted(set(PACKAGES) | {channel.value.lower() for channel in registry.CHANNELS})


def outside_the_packages() -> list[Path]:
    return [
        path
        for path in sorted(SOURCE.rglob("*.py"))
        if path.relative_to(SOURCE).parts[0] != "generated"
        and not (path.parent.parent == CHANNELS and path.parent.name in PACKAGES)
        and path != REGISTRY
    ]


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            assert isinstance(body, list)
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _code_words(node: ast.AST, docstrings: set[int]) -> Iterator[str]:
    """Every identifier and string literal of the code (not docstrings, not comments)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if id(node) not in docstrings:
            yield node.value
    elif isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.arg):
        yield node.arg
    elif isinstance(node, ast.alias):
        yield node.name
        yield node.asname or ""
    elif isinstance(node, ast.ImportFrom):
        yield node.module or ""


def channels_named(path: Path) -> list[str]:
    tree = parse_python(path)
    if path == THE_ENUM[0]:
        assert isinstance(tree, ast.Module)
        tree.body = [
            s for s in tree.body if not (isinstance(s, ast.ClassDef) and s.name == THE_ENUM[1])
        ]
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        for text in _code_words(node, docstrings):
            found += [
                f"{getattr(node, 'lineno', '?')}: {text!r}" for w in WORDS if w in text.lower()
            ]
    return found


def test_the_scan_sees_a_channel_named_in_code_but_not_in_a_docstring(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""Mentions WeChat Pay, which is fine."""\n'
        "# so does a comment: alipay\n"
        "def fee(channel):\n"
        '    """UnionPay too."""\n'
        '    return 1 if channel == "UNIONPAY" else channel.wechat_rate\n'
    )
    assert sorted(channels_named(planted)) == ["5: 'UNIONPAY'", "5: 'wechat_rate'"]


def test_the_channel_words_are_the_registered_channels() -> None:
    assert set(WORDS) == {"wechat", "alipay", "unionpay"}  # the scan looks for these


@pytest.mark.parametrize("path", outside_the_packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_the_channel_packages_names_a_channel(path: Path) -> None:
    assert channels_named(path) == []


def _imported(path: Path) -> Iterator[str]:
    for node in ast.walk(parse_python(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_only_the_registry_imports_a_channel_package() -> None:
    inside = tuple(f"orchestrator.channels.{name}" for name in PACKAGES)
    importers = {
        str(path.relative_to(ROOT))
        for path in sorted(SOURCE.rglob("*.py"))
        if not (path.parent.parent == CHANNELS and path.parent.name in PACKAGES)
        for module in _imported(path)
        if module.startswith(inside)
    }
    assert importers == {str(REGISTRY.relative_to(ROOT))}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)
    elif isinstance(value, str):
        yield value


def test_the_sample_config_names_no_channel() -> None:
    sample = tomllib.loads((SOURCE / "sample" / "windowpay.toml").read_text(encoding="utf-8"))
    assert [s for s in _strings(sample) if any(w in s.lower() for w in WORDS)] == []


def test_the_domain_enum_and_the_proto_enum_agree() -> None:
    assert {channel.value for channel in Channel} == set(pb.Channel.keys()) - {
        "CHANNEL_UNSPECIFIED"
    }


def test_every_registered_channel_ships_its_defaults() -> None:
    assert set(registry.CHANNELS) == set(PROVIDER_CHANNELS)
    for channel in registry.CHANNELS:
        shipped = channel_defaults(channel)
        assert set(shipped) == {"playbook", "provider"}, channel
        assert shipped["provider"]["merchant_id"], channel
