"""A comment, docstring or doc that cites a file of this repository cites one that exists.

Files move (a module renamed, a package split) and the prose that named them stays
behind: this test reads the comments and docstrings under orchestrator/, actors/,
loadtest/ and tests/, and the Markdown of docs/ and the README, and fails on every cited
path, or dotted module name, that names nothing here.

A cited path resolves when it is a path from the repository's root or from the citing
file's folder, or the tail of one (`providers/signing.py` for
orchestrator/providers/signing.py); a bare file name (`commit.lua`) resolves when some
file has that name. Templates (`channels/<name>/auth_codes.py`) and globs are not
citations."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("orchestrator", "actors", "loadtest", "tests", "docs")
EXTENSIONS = "py|lua|proto|toml|md|sql|sh|cfg|ini"
PATH = re.compile(rf"(?<![\w/.<>{{*$-])((?:[\w.-]+/)*[\w-]+\.(?:{EXTENSIONS}))(?![\w/<>{{*-])")
DOTTED = re.compile(r"(?<![\w./])((?:orchestrator|actors|loadtest)(?:\.\w+)+)")
# Files whose citations point into another repository, by the prefix they share there.
UPSTREAM = {"tests/fixtures/wire/wechat/SOURCES.md": ("docs/",)}


def tracked() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.split() if (ROOT / name).exists()]


def prose(name: str, source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each comment and docstring of a Python file, or each line of a
    Markdown one."""
    if name.endswith(".md"):
        yield from enumerate(source.splitlines(), 1)
        return
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                yield first.lineno, first.value.value


class Repository:
    def __init__(self, files: list[str]) -> None:
        self.files = set(files)
        self.names = {Path(name).name for name in files}
        parts = [name.split("/") for name in files]
        self.tails = {"/".join(p[i:]) for p in parts for i in range(1, len(p) - 1)}
        self.modules: dict[str, str] = {}
        for name in files:
            if name.endswith(".py"):
                parts = name.removesuffix(".py").split("/")
                if parts[-1] == "__init__":
                    parts.pop()
                self.modules[".".join(parts)] = name

    def has_path(self, cited: str, citing: str) -> bool:
        if "/" not in cited:
            return cited in self.names
        beside = os.path.normpath(os.path.join(os.path.dirname(citing), cited))
        tail = cited.removeprefix("./")
        return tail in self.files or beside in self.files or tail in self.tails

    def has_module(self, dotted: str) -> bool:
        """The longest prefix that is a module, and the name after it (an attribute)
        appearing in that module's source."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            module = self.modules.get(".".join(parts[:end]))
            if module is not None:
                if end == len(parts):
                    return True
                source = (ROOT / module).read_text()
                return re.search(rf"\b{re.escape(parts[end])}\b", source) is not None
        return False


def dangling(files: list[str], planted: dict[str, str] | None = None) -> list[str]:
    """The citations that name nothing; `planted` adds files (name -> text) that are
    not on disk, and only they are then read for citations."""
    planted = planted or {}
    repo = Repository([*files, *planted])
    found = []
    for name in planted or files:
        in_scope = name.split("/")[0] in SCANNED or name == "README.md"
        if not in_scope or "generated" in name or not name.endswith((".py", ".md")):
            continue
        upstream = UPSTREAM.get(name, ())
        source = planted[name] if name in planted else (ROOT / name).read_text()
        for line, text in prose(name, source):
            for match in PATH.finditer(text):
                cited = match.group(1)
                if not cited.startswith(upstream or "\0") and not repo.has_path(cited, name):
                    found.append(f"{name}:{line}: {cited}")
            for match in DOTTED.finditer(text):
                if not repo.has_module(match.group(1).rstrip(".")):
                    found.append(f"{name}:{line}: {match.group(1)}")
    return found


def test_every_cited_file_exists() -> None:
    files = tracked()
    assert len(files) > 300
    assert dangling(files) == []


def test_a_planted_stale_citation_is_found() -> None:
    name = "orchestrator/_planted.py"
    text = (
        '"""Keys as unionpay_keys.py makes them; see providers/factory.py."""\n\n'
        "# the platform certificate (wechat_platform.py), then orchestrator.providers.factory\n"
        "# fine: store/commit.lua, servicepoint/core.py, channels/<name>/wiring.py,\n"
        "# orchestrator.store.keys.order, ../docs/DOMAIN.md, the README.md\n"
    )
    found = dangling(tracked(), {name: text})
    assert found == [
        f"{name}:3: wechat_platform.py",
        f"{name}:3: orchestrator.providers.factory",
        f"{name}:1: unionpay_keys.py",
        f"{name}:1: providers/factory.py",
    ]
