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

"""Humble stays supported: every rclpy name the node uses exists in Humble's rclpy.

Humble's rclpy cannot be installed here, but its Python sources can: the pip package
rclpy-intellisense 1.2.0 ships them (tools/bootstrap.sh downloads the wheel; it is
read as a zip, never imported). The node's modules (canet_ros/ros/*.py) and the launch
helpers (canet_ros/launch_config.py, launch_multi_camera.py) are parsed, and every rclpy
name they use is looked up in Humble's sources: imported names, ``rclpy.x`` attributes,
class members such as enum values, Node methods called on ``self``/``node`` (and the
executor and logger methods), and the keyword arguments of those calls. Names that exist
in the installed (newer) rclpy but nowhere in Humble's are reported too.
"""
import ast
import importlib.util
import logging
import re
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WHEEL = Path(sys.prefix) / "share" / "canet_ros_test" / "rclpy_intellisense-1.2.0-py3-none-any.whl"
OUR_MODULES = sorted((REPO / "canet_ros" / "ros").glob("*.py")) + [
    REPO / "canet_ros" / "launch_config.py", REPO / "canet_ros" / "launch_multi_camera.py"]
# A variable our code names ``node`` holds an rclpy Node; so does ``self`` in a Node subclass.
NODE_VARIABLE = "node"
# rclpy calls whose return values our code uses, and the Humble class of that value.
RETURNS = {"get_logger": "RcutilsLogger", "create_publisher": "Publisher",
           "create_subscription": "Subscription", "create_timer": "Timer",
           "get_clock": "Clock", "get_parameter": "Parameter"}
# Variables that hold our own objects, never rclpy's: (file, class). A newer rclpy may
# name a member as they do (Kilted's has a ``namespace``, as SegmentLaunchPlan has); what
# is read from them must be a member of that class, which the name-only check asserts.
OWN_OBJECTS = {"plan": ("launch_config.py", "SegmentLaunchPlan")}
# Variables that hold a Python logging.Logger (log_forwarding.py): what is read from them
# is logging's (``level``, a name Jazzy's rclpy has and Humble's lacks), never rclpy's.
PYTHON_LOGGERS = {"python_logger"}


class RclpyIndex:
    """Modules, top-level names, classes (members, bases) and signatures of one rclpy."""

    def __init__(self, sources):
        self.modules, self.classes, self.functions, self.text = {}, {}, {}, ""
        for module, source in sources.items():
            self.text += source
            tree = ast.parse(source)
            names = set()
            for node in tree.body:
                names |= _defined(node)
                if isinstance(node, ast.ClassDef):
                    self._add_class(node)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.functions[module, node.name] = _params(node)
            self.modules[module] = names

    def _add_class(self, node):
        members, signatures = set(), {}
        for item in ast.walk(node):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                signatures.setdefault(item.name, _params(item))
            elif isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store):
                members.add(item.attr)  # self.x = ... inside methods
        for item in node.body:
            members |= _defined(item)
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        self.classes[node.name] = (members | set(signatures), signatures, bases)

    def member(self, cls, name, seen=()):
        """Signature (or True) of ``cls.name``, following base classes; None if absent."""
        if cls not in self.classes or cls in seen:
            return None
        members, signatures, bases = self.classes[cls]
        if name in members:
            return signatures.get(name, True)
        return next((found for base in bases
                     if (found := self.member(base, name, seen + (cls,))) is not None), None)

    def all_members(self):
        return set().union(*(m for m, _, _ in self.classes.values()), *self.modules.values())

    def all_keywords(self):
        found = set()
        for _, signatures, _ in self.classes.values():
            for params, _ in signatures.values():
                found |= params
        for params, _ in self.functions.values():
            found |= params
        return found


def _defined(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else \
        [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _params(func):
    args = func.args
    names = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
    return names, args.kwarg is not None


def _package_sources(files):
    """{'rclpy.node': source, ...} from (relative path, text) pairs."""
    sources = {}
    for path, text in files:
        parts = path[:-3].split("/")
        sources[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = text
    return sources


@pytest.fixture(scope="module")
def humble():
    if not WHEEL.is_file():
        pytest.skip(f"{WHEEL.name} (Humble's rclpy sources) is missing: run tools/bootstrap.sh")
    with zipfile.ZipFile(WHEEL) as wheel:
        return RclpyIndex(_package_sources(
            (n, wheel.read(n).decode()) for n in wheel.namelist()
            if n.startswith("rclpy/") and n.endswith(".py")))


class Usage(ast.NodeVisitor):
    """Collects (what, where) problems of one of our modules against an RclpyIndex."""

    def __init__(self, index, path, own_members):
        self.index, self.path, self.problems = index, path, []
        self.own_members = own_members  # defined by our code: not rclpy's to provide
        self.self_is_node = False
        self.imported = {}  # local name -> (module, name) for rclpy imports
        self.typed = {}  # local variable -> Humble class, from constructor/return values

    def problem(self, node, text):
        self.problems.append(f"{self.path.name}:{node.lineno}: {text}")

    def visit_ImportFrom(self, node):
        if (node.module or "").split(".")[0] == "rclpy":
            for alias in node.names:
                names = self.index.modules.get(node.module)
                if names is None:
                    self.problem(node, f"module {node.module} is not in Humble's rclpy")
                elif alias.name not in names:
                    self.problem(node, f"{node.module}.{alias.name} is not in Humble's rclpy")
                self.imported[alias.asname or alias.name] = (node.module, alias.name)

    def visit_Assign(self, node):
        kind = self.kind(node.value.func) if isinstance(node.value, ast.Call) else None
        for target in node.targets:
            if isinstance(target, ast.Name) and kind:
                self.typed[target.id] = kind
        self.generic_visit(node)

    def kind(self, func):
        """Return the Humble class a call returns, when our code calls rclpy for it."""
        if isinstance(func, ast.Name) and func.id in self.imported:
            name = self.imported[func.id][1]
            return name if name in self.index.classes else RETURNS.get(name)
        if isinstance(func, ast.Attribute):
            return RETURNS.get(func.attr) if self.owner(func.value) else None
        return None

    def owner(self, value):
        """Return the Humble class ``value`` (a name, rclpy.x, or a call) stands for, if known."""
        if isinstance(value, ast.Name):
            if value.id == NODE_VARIABLE or (value.id == "self" and self.self_is_node):
                return "Node"
            return self.typed.get(value.id) or self.imported.get(value.id, (None, None))[1]
        if isinstance(value, ast.Call):
            if isinstance(value.func, ast.Name) and value.func.id == "super":
                return "Node"
            return self.kind(value.func)
        return None

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id == "rclpy":
            if node.attr not in self.index.modules["rclpy"] and \
                    f"rclpy.{node.attr}" not in self.index.modules:
                self.problem(node, f"rclpy.{node.attr} is not in Humble's rclpy")
        elif not self.ours(node):
            cls = self.owner(node.value)
            # A class defined in C (SignalHandlerOptions) counts when Humble's Python uses it.
            known = f"{cls}.{node.attr}" in self.index.text or (
                cls in self.index.classes and self.index.member(cls, node.attr) is not None)
            imported = isinstance(node.value, ast.Name) and node.value.id in self.imported
            if (cls in self.index.classes or imported) and not known:
                self.problem(node, f"{cls}.{node.attr} is not in Humble's rclpy")
        self.generic_visit(node)

    def ours(self, node):
        return isinstance(node.value, ast.Name) and node.attr in self.own_members

    def visit_ClassDef(self, node):
        outer = self.self_is_node
        self.self_is_node = any(isinstance(b, ast.Name) and self.imported.get(b.id) ==
                                ("rclpy.node", "Node") for b in node.bases)
        self.generic_visit(node)
        self.self_is_node = outer

    def visit_Call(self, node):
        func, signature = node.func, None
        if isinstance(func, ast.Name) and func.id in self.imported:
            module, name = self.imported[func.id]
            signature = self.index.member(name, "__init__") if name in self.index.classes \
                else self.index.functions.get((module, name))
        elif isinstance(func, ast.Attribute) and not self.ours(func):
            cls = self.owner(func.value)
            if cls in self.index.classes:
                signature = self.index.member(cls, func.attr)
            elif isinstance(func.value, ast.Name) and func.value.id == "rclpy":
                signature = self.index.functions.get(("rclpy", func.attr))
        if isinstance(signature, tuple):
            params, open_kwargs = signature
            for keyword in node.keywords:
                known = keyword.arg in params or (open_kwargs and f"'{keyword.arg}'"
                                                  in self.index.text)
                if keyword.arg and not known:
                    self.problem(node, f"keyword {keyword.arg}= of {ast.unparse(func)} is "
                                       "not in Humble's rclpy")
        self.generic_visit(node)


def own_members(sources):
    """Attributes and functions our modules define themselves."""
    found = set()
    for source in sources:
        for n in ast.walk(ast.parse(source)):
            if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                found.add(n.attr)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.add(n.name)
    return found


def humble_problems(index, modules):
    """modules: {path: source}; every use of an rclpy name Humble lacks, as text."""
    ours, problems = own_members(modules.values()), []
    for path, source in modules.items():
        usage = Usage(index, path, ours)
        usage.visit(ast.parse(source))
        problems += usage.problems
    return problems


def test_node_and_launch_helper_use_only_humble_rclpy(humble):
    problems = humble_problems(humble, {path: path.read_text() for path in OUR_MODULES})
    assert not problems, "\n".join(problems)


def test_no_name_only_newer_rclpy_has():
    """Attributes and keywords we use that the installed rclpy has but Humble's lacks."""
    spec = importlib.util.find_spec("rclpy")
    if spec is None or not WHEEL.is_file():
        pytest.skip("needs the installed rclpy and Humble's sources (tools/bootstrap.sh)")
    root = Path(spec.origin).parent
    installed = RclpyIndex(_package_sources(
        (str(p.relative_to(root.parent)), p.read_text()) for p in root.rglob("*.py")))
    with zipfile.ZipFile(WHEEL) as wheel:
        humble = RclpyIndex(_package_sources(
            (n, wheel.read(n).decode()) for n in wheel.namelist()
            if n.startswith("rclpy/") and n.endswith(".py")))
    # Enum values of rclpy's C extension (ClockType.STEADY_TIME) are defined in no Humble
    # Python file, but Humble's own code using one shows Humble has it.
    c_enum_values = set(re.findall(r"\b[A-Z]\w*\.([A-Z][A-Z0-9_]+)\b", humble.text))
    newer = installed.all_members() - humble.all_members() - c_enum_values
    # Humble takes some as **kwargs (QoSProfile): there they appear as string literals.
    newer_keywords = {k for k in installed.all_keywords() - humble.all_keywords()
                      if f"'{k}'" not in humble.text}
    own = {name: _members_of(REPO / "canet_ros" / file, cls)
           for name, (file, cls) in OWN_OBJECTS.items()}
    used, keywords = set(), set()
    for path in OUR_MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in own:
                assert node.attr in own[node.value.id], (path.name, node.value.id, node.attr)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in PYTHON_LOGGERS:
                assert hasattr(logging.getLogger("canet_ros"), node.attr), (path.name, node.attr)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                keywords.add(node.arg)
    assert not used & newer and not keywords & newer_keywords, (used & newer,
                                                                keywords & newer_keywords)


def _members_of(path, name):
    """Fields and methods that class ``name`` of ``path`` defines."""
    cls = next(n for n in ast.parse(path.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == name)
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)} | {
        n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_the_check_sees_jazzy_only_usage(humble):
    """A node using Jazzy-only API must be reported: the check above can fail."""
    jazzy_only = (
        "import rclpy\nfrom rclpy.node import Node\nfrom rclpy.qos import QoSProfile\n"
        "from rclpy.event_handler import SubscriptionEventCallbacks\n"
        "class N(Node):\n"
        "    def __init__(self):\n"
        "        super().__init__('n', enable_logger_service=True)\n"
        "        self.t = self.create_timer(1.0, print, autostart=False)\n"
        "        self.get_logger().info('x', throttle_duration_sec=1.0)\n"
        "        self.get_logger().info('x', every_other_time=True)\n"
        "        q = QoSProfile(depth=1)\n")
    found = "\n".join(humble_problems(humble, {Path("jazzy_node.py"): jazzy_only}))
    for words in ("rclpy.event_handler", "enable_logger_service", "autostart",
                  "every_other_time"):
        assert words in found, found
    assert "throttle_duration_sec" not in found and "depth" not in found, found
