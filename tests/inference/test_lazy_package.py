"""The package ``sfumato.inference`` lists its names three times (the imports type checkers
see, the lazy table, ``__all__``, which linters need as a literal): they must agree."""

from __future__ import annotations

import ast
import importlib
import inspect

import sfumato.inference as package


def test_every_lazy_name_resolves_and_type_checkers_see_the_same_names() -> None:
    tree = ast.parse(inspect.getsource(package))
    guarded = next(
        node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    static = {alias.asname or alias.name for node in guarded.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert static == set(package.__all__) == set(package._LAZY)
    for name in package.__all__:
        module = importlib.import_module(f"sfumato.inference.{package._LAZY[name]}")
        assert getattr(package, name) is getattr(module, name)
