"""Import contracts between the rooms, checked in CI.

Static: every ``import`` statement (module level or lazy, inside functions) of each room is
read with ``ast`` and checked against the room's rules below. Runtime: a fresh interpreter
imports every module of the torch-free rooms and then looks at ``sys.modules``, which also
catches a third-party package that drags in torch or Qt behind our back.

Cycles: the modules of each room in ``ACYCLIC`` must not import each other in a circle,
counting every import (lazy ones and ``TYPE_CHECKING`` ones too): a lazy import that dodges
a cycle is still a cycle. (The canvas once had ``document`` importing ``commands`` lazily
while ``commands`` imported ``document``; the model now imports no command.)

Why not import-linter: it cannot follow setuptools ``package-dir`` mappings (our rooms are
top-level folders mapped into the ``sfumato`` namespace), so it cannot see the modules.

Usage: ``python tools/check_imports.py`` — prints each violation, exits 1 if any.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Folder on disk -> package name in the sfumato namespace.
ROOMS = {
    "canvas": "sfumato.canvas",
    "inference": "sfumato.inference",
    "planner": "sfumato.planner",
    "desktop": "sfumato.desktop",
    "resources": "sfumato.resources",
    "vocabulary": "sfumato.vocabulary",
    "sfumato": "sfumato",
}

HEAVY = ("torch", "diffusers", "transformers", "accelerate", "peft")
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")
# Modules of the inference room that import no torch, not even lazily: other rooms may
# import them. (The package ``sfumato.inference`` itself is lazy; importing it is allowed as
# the parent of these, and the runtime probe checks it loads no torch.)
TORCH_FREE_INFERENCE = (
    "sfumato.inference.request",
    "sfumato.inference.preprocess",
    "sfumato.inference.catalog",
    "sfumato.inference.detect",
    "sfumato.inference.model_parts",
    "sfumato.inference.transformer_keys",
    "sfumato.inference.errors",
    "sfumato.inference.modes",
    "sfumato.inference.steps",
    "sfumato.inference.fast_presets",
)
# Inference modules that load no torch when imported (only inside the functions that run
# a model): the planner reads the families' sizing facts and folder test from them.
IMPORT_TIME_TORCH_FREE_INFERENCE = ("sfumato.inference.families", "sfumato.inference.embeddings")


@dataclass(frozen=True)
class Rule:
    """Modules whose names start with ``forbidden`` may not be imported, except ``allowed``."""

    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


RULES: dict[str, Rule] = {
    # The painting library stands on nothing but the vocabulary: no engine, no planner.
    "sfumato.canvas": Rule(
        forbidden=(*QT, *HEAVY, "sfumato.inference", "sfumato.desktop", "sfumato.planner"),
    ),
    "sfumato.planner": Rule(
        forbidden=(*QT, *HEAVY, "sfumato.inference", "sfumato.desktop"),
        allowed=(*TORCH_FREE_INFERENCE, *IMPORT_TIME_TORCH_FREE_INFERENCE),
    ),
    "sfumato.inference": Rule(forbidden=(*QT, "sfumato.canvas", "sfumato.planner", "sfumato.desktop")),
    "sfumato.resources": Rule(forbidden=(*QT, *HEAVY)),
    # Names every room may use: it imports none of them (and no Qt, no torch); only the
    # data package sfumato.resources, to find the built-in models.
    "sfumato.vocabulary": Rule(forbidden=(*QT, *HEAVY, "sfumato"), allowed=("sfumato.vocabulary", "sfumato.resources")),
    "sfumato.desktop": Rule(forbidden=()),  # the one room that imports Qt (torch only lazily)
    # The CLI may start the GUI lazily (sfumato.desktop) but never imports Qt itself.
    "sfumato": Rule(forbidden=QT),
}
# Stricter rules for single modules (and packages, with their submodules), on top of their
# room's: what other rooms may import may itself import only what they may.
MODULE_RULES: dict[str, Rule] = {
    **{
        name: Rule(forbidden=(*HEAVY, "sfumato.inference"), allowed=TORCH_FREE_INFERENCE)
        for name in TORCH_FREE_INFERENCE
    },
    **{
        name: Rule(
            forbidden=("sfumato.inference",),
            allowed=(*TORCH_FREE_INFERENCE, *IMPORT_TIME_TORCH_FREE_INFERENCE),
        )
        for name in IMPORT_TIME_TORCH_FREE_INFERENCE
    },
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    package = ROOMS[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from sfumato.inference import request" imports the submodule.
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violates(name: str, rule: Rule) -> bool:
    if any(_matches(name, a) or a.startswith(name + ".") for a in rule.allowed):
        # An allowed module, or a parent package of one ("from sfumato.inference import request").
        return False
    return any(_matches(name, f) for f in rule.forbidden)


# Rooms whose modules must form no import cycle (every import counted, lazy ones too).
ACYCLIC = ("sfumato.canvas", "sfumato.planner", "sfumato.inference", "sfumato.desktop", "sfumato.vocabulary")


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same room it imports (any import: lazy, TYPE_CHECKING)."""
    folder = next(f for f, p in ROOMS.items() if p == package)
    paths = {module_name(path): path for path in sorted((ROOT / folder).rglob("*.py"))}
    return {
        module: {name for _, name in imports_of(path, module) if name in paths and name != module}
        for module, path in paths.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path ``[a, b, ..., a]``) per group of modules that import
    each other in a circle (Tarjan's strongly connected components, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A closed path through ``group`` (a strongly connected set), from its first module."""
    first = min(group)
    # Breadth-first from first's successors back to first: the shortest cycle through it.
    previous: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & group):
                if child == first:
                    path = [node]  # walk back: node, ..., first
                    while path[-1] != first:
                        path.append(previous[path[-1]])
                    return [*reversed(path), first]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError("not a cycle")  # pragma: no cover - a strongly connected group has one


def cycle_check() -> list[str]:
    problems = []
    for package in ACYCLIC:
        for cycle in find_cycles(import_graph(package)):
            problems.append(f"import cycle in {package}: {' -> '.join(cycle)}")
    return problems


def static_check() -> list[str]:
    problems: list[str] = []
    for folder in ROOMS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = module_name(path)
            room = max((r for r in RULES if _matches(module, r)), key=len)
            rules = [RULES[room]] + [r for m, r in MODULE_RULES.items() if _matches(module, m)]
            for lineno, name in imports_of(path, module):
                # "from x import Name" also yields "x.Name"; only real modules matter, and
                # a forbidden prefix match on either is a violation.
                for rule in rules:
                    if violates(name, rule):
                        problems.append(
                            f"{path.relative_to(ROOT)}:{lineno}: {module} must not import {name}"
                        )
                        break
    return sorted(set(problems))


_RUNTIME_PROBE = r"""
import importlib, pkgutil, sys, json
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[2]))
print(json.dumps(loaded))
"""


def _modules_under(package: str) -> list[str]:
    folder = next(f for f, p in ROOMS.items() if p == package)
    names = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        name = module_name(path)
        if name.endswith("__main__"):
            continue
        names.append(name)
    return names


def runtime_check() -> list[str]:
    import json

    problems: list[str] = []
    torch_free = [
        *_modules_under("sfumato.canvas"),
        *_modules_under("sfumato.planner"),
        *_modules_under("sfumato.vocabulary"),
        *[
            m
            for m in _modules_under("sfumato.inference")
            if m == "sfumato.inference"
            or any(_matches(m, t) for t in TORCH_FREE_INFERENCE + IMPORT_TIME_TORCH_FREE_INFERENCE)
        ],
        *_modules_under("sfumato"),
    ]
    checks = [
        ("torch-free rooms (canvas, planner, vocabulary, CLI, inference's torch-free modules)", torch_free,
         [*HEAVY, *QT]),
        ("the engine (inference)", _modules_under("sfumato.inference"), list(QT)),
    ]
    for label, names, banned in checks:
        result = subprocess.run(
            [sys.executable, "-c", _RUNTIME_PROBE, json.dumps(names), json.dumps(banned)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if result.returncode != 0:
            problems.append(f"importing {label} failed:\n{result.stderr.strip()}")
            continue
        loaded = json.loads(result.stdout.strip().splitlines()[-1])
        if loaded:
            problems.append(f"importing {label} loaded {', '.join(sorted({m.split('.')[0] for m in loaded}))}")
    return problems


def main() -> int:
    problems = static_check() + cycle_check() + runtime_check()
    for problem in problems:
        print(problem)
    if problems:
        print(f"import contracts: {len(problems)} violation(s)")
        return 1
    print("import contracts: kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
