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

"""Find the tests that skip without CUDA, by reading the test files (no imports).

Three forms count: a module's ``pytestmark = pytest.mark.skipif(not ...cuda.is_available()
...)``, the same mark on a test function or method, and a test whose body starts with
``if not ...cuda.is_available(): pytest.skip(...)``. A skip *when* CUDA is present (no
``not``) marks a CPU-only test and is left out.
"""
from __future__ import annotations

import ast
from pathlib import Path


def _no_cuda(node: ast.AST) -> bool:
    """``not <...>.cuda.is_available()``."""
    if not (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return False
    call = node.operand
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr == "is_available" and isinstance(call.func.value, ast.Attribute)
            and call.func.value.attr == "cuda")


def _skipif_no_cuda(node: ast.AST) -> bool:
    """``pytest.mark.skipif(not ...cuda.is_available(), ...)`` or a list holding one."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return any(_skipif_no_cuda(n) for n in node.elts)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "skipif" and bool(node.args) and _no_cuda(node.args[0]))


def _body_skips(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for stmt in func.body[:3]:  # the guard comes first, after a docstring at most
        if isinstance(stmt, ast.If) and _no_cuda(stmt.test):
            return True
    return False


def _gated(func: ast.AST) -> bool:
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    return func.name.startswith("test") and (
        any(_skipif_no_cuda(d) for d in func.decorator_list) or _body_skips(func))


def cuda_tests_in(path: Path) -> list[str]:
    """Node ids (relative to the test folder's parent) of ``path``'s CUDA-only tests."""
    tree = ast.parse(path.read_text(), str(path))
    rel = f"{path.parent.name}/{path.name}"
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                 for t in stmt.targets)
                and _skipif_no_cuda(stmt.value)):
            return [rel]
    ids = [f"{rel}::{f.name}" for f in tree.body if _gated(f)]
    for cls in (s for s in tree.body if isinstance(s, ast.ClassDef)):
        if any(_skipif_no_cuda(d) for d in cls.decorator_list):
            ids.append(f"{rel}::{cls.name}")
        else:
            ids += [f"{rel}::{cls.name}::{f.name}" for f in cls.body if _gated(f)]
    return ids


def find_cuda_tests(test_dir: Path) -> list[str]:
    """Every CUDA-only test under ``test_dir`` (``test_*.py``), files in name order."""
    ids: list[str] = []
    for path in sorted(test_dir.glob("test_*.py")):
        ids += cuda_tests_in(path)
    return ids
