# Copyright 2026 canet_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The package's own imports, read from the source: no loops, and nothing below cli uses it.

Every import counts: lazy ones inside functions and those under ``if TYPE_CHECKING:`` still
tie the modules together (the engine's torch side takes what it needs as arguments, so it
names no engine type).
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "canet_ros"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Map each module to the package modules it imports.

    A name imported from a package counts as the submodule of that name where there is one.
    """
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in files)
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in files:
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in files]
            deps.update(subs or [target])
        deps.discard(name)
        graph[name] = deps
    return graph


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_graph_reader_sees_a_known_loop(tmp_path):
    # Two modules importing each other, one of them lazily; two more, one side for typing.
    pkg = tmp_path / "canet_ros"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "sub" / "b.py").write_text("from .a import f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from .sub import a\n    from . import e\n")
    (pkg / "e.py").write_text("from .c import g\n")
    (pkg / "sub" / "d.py").write_text("from ..c import x\nfrom canet_ros.sub.b import y\n")
    graph = import_graph(pkg)
    assert graph["canet_ros.sub.a"] == {"canet_ros.sub.b"}
    assert graph["canet_ros.c"] == {"canet_ros.sub.a", "canet_ros.e"}
    assert graph["canet_ros.sub.d"] == {"canet_ros.c", "canet_ros.sub.b"}
    assert sorted(import_loops(graph)) == [["canet_ros.c", "canet_ros.e"],
                                           ["canet_ros.sub.a", "canet_ros.sub.b"]]


def test_no_import_loops():
    assert import_loops(import_graph()) == []


def test_nothing_below_the_command_line_imports_it():
    graph = import_graph()
    above = [name for name, deps in graph.items() if not name.startswith("canet_ros.cli")
             and any(d == "canet_ros.cli" or d.startswith("canet_ros.cli.") for d in deps)]
    assert above == []
