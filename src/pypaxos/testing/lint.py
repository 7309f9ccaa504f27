"""A linter for replicated classes: the usual sources of nondeterminism in their commands.

It reads the source of every command, of the snapshot hooks, and of every method they call on
``self`` (transitively), and flags what would let two replicas disagree (``RULES``): a clock, a
random or unique number, the process's identity or environment, I/O, ``id()``/``hash()``
(``hash`` of a string changes with the hash seed), threads, module-level state written through
``global``, and iteration over a set (whose order, for strings, changes with the hash seed).
Names are resolved against the method's own module, so ``from time import time as now`` is
caught as well as ``time.time()``.  A set is recognised when it is built in the method (a
literal, a comprehension, ``set(...)``, set operators on sets) or is a field of the class
annotated ``set[...]``/``frozenset[...]``; a set reached otherwise goes unseen, which is why
``pypaxos.testing.check`` runs the class too.  Static and incomplete on purpose: a finding is a
place to look, not a proof.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pypaxos.objects.api import HOOKS, MethodTable
from pypaxos.objects.state import declared_fields

RULE_CLOCK = "clock"
RULE_RANDOM = "random"
RULE_ENVIRONMENT = "environment"
RULE_IO = "io"
RULE_IDENTITY = "identity"
RULE_THREADS = "threads"
RULE_GLOBAL = "global-state"
RULE_SET_ORDER = "set-order"
RULES = {
    RULE_CLOCK: "reads the replica's clock: use log_time_ms(), the time carried in the log",
    RULE_RANDOM: "draws a random or unique value: pass it in as an argument instead",
    RULE_ENVIRONMENT: "reads the process or its environment, which differ between replicas",
    RULE_IO: "does I/O: a command must compute from the state and its arguments alone",
    RULE_IDENTITY: "id() and hash() differ between processes (hash of a str with the seed)",
    RULE_THREADS: "uses threads or processes: a command runs alone, start to end",
    RULE_GLOBAL: "writes module-level state, which is not replicated",
    RULE_SET_ORDER: "iterates a set, whose order (for strings) changes with the hash seed: "
    "sort it, or keep a dict (insertion order)",
}

# module -> rule for every callable or attribute reached through it
_MODULE_RULES = {
    "time": RULE_CLOCK,
    "datetime": RULE_CLOCK,
    "random": RULE_RANDOM,
    "secrets": RULE_RANDOM,
    "uuid": RULE_RANDOM,
    "os": RULE_ENVIRONMENT,
    "posix": RULE_ENVIRONMENT,  # what os's functions report as their module
    "nt": RULE_ENVIRONMENT,
    "socket": RULE_IO,
    "subprocess": RULE_IO,
    "threading": RULE_THREADS,
    "multiprocessing": RULE_THREADS,
    "asyncio": RULE_THREADS,
}
_RANDOM_IN_OS = {"urandom", "getrandom"}
_BUILTIN_RULES = {
    "id": RULE_IDENTITY,
    "hash": RULE_IDENTITY,
    "open": RULE_IO,
    "input": RULE_IO,
    "print": RULE_IO,
}
# Calls that walk their argument in its iteration order (``sorted``, ``len``, ``sum`` of ints
# and ``in`` do not depend on it; ``sum`` of floats does, but is not worth the noise).
_ORDER_CONSUMERS = {"list", "tuple", "iter", "next", "enumerate", "zip", "map", "filter", "dict"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspicious place: ``path:line`` in ``method`` breaks ``rule``."""

    path: str
    line: int
    cls: str
    method: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.cls}.{self.method}: [{self.rule}] {self.detail}: "
            f"{RULES[self.rule]}"
        )


def lint(cls: type) -> list[Finding]:
    """Every finding in the commands and hooks of ``cls`` (and what they call on ``self``)."""
    table = MethodTable(cls)
    try:
        set_fields = {name for name, hint in declared_fields(cls).items() if _is_set_hint(hint)}
    except Exception:  # unresolvable annotations: no field is known to be a set
        set_fields = set()
    todo = [*table.commands(), *(h for h in HOOKS if callable(getattr(cls, h, None)))]
    seen: set[str] = set()
    findings: list[Finding] = []
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        function = _function_of(cls, name)
        if function is None:
            continue
        checker = _MethodChecker(cls, name, function, set_fields)
        findings.extend(checker.run())
        todo.extend(sorted(checker.self_calls - seen))
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule))


def _function_of(cls: type, name: str) -> types.FunctionType | None:
    attribute = inspect.getattr_static(cls, name, None)
    attribute = getattr(attribute, "__func__", attribute)
    return attribute if isinstance(attribute, types.FunctionType) else None


def _is_set_hint(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return origin in (set, frozenset)


class _MethodChecker(ast.NodeVisitor):
    def __init__(
        self, cls: type, name: str, function: types.FunctionType, set_fields: set[str]
    ) -> None:
        self.cls = cls
        self.name = name
        self.function = function
        self.globals = function.__globals__
        self.set_fields = set_fields
        self.self_calls: set[str] = set()
        self.set_locals: set[str] = set()
        self.findings: list[Finding] = []
        self.path = inspect.getsourcefile(function) or "<unknown>"
        self.first_line = 1

    def run(self) -> list[Finding]:
        try:
            lines, self.first_line = inspect.getsourcelines(self.function)
        except (OSError, TypeError):
            return []
        tree = ast.parse(textwrap.dedent("".join(lines)))
        for node in ast.walk(tree):  # names bound to sets anywhere in the method
            if isinstance(node, ast.Assign) and self._is_set(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.set_locals.add(target.id)
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
                and self._is_set(node.value)
            ):
                self.set_locals.add(node.target.id)
        self.visit(tree)
        return self.findings

    def _report(self, node: ast.AST, rule: str, detail: str) -> None:
        line = self.first_line + getattr(node, "lineno", 1) - 1
        self.findings.append(Finding(self.path, line, self.cls.__name__, self.name, rule, detail))

    # -- what is called or read ------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "self"
        ):
            self.self_calls.add(func.attr)
        first_is_set = bool(node.args) and self._is_set(node.args[0])
        if isinstance(func, ast.Name) and self._resolves_to_builtin(func.id):
            if func.id in _ORDER_CONSUMERS and first_is_set:
                self._report(node, RULE_SET_ORDER, f"{func.id}() of a set")
            if func.id in _BUILTIN_RULES:
                self._report(node, _BUILTIN_RULES[func.id], f"{func.id}()")
        if isinstance(func, ast.Attribute):
            if func.attr == "join" and first_is_set:
                self._report(node, RULE_SET_ORDER, "join() of a set")
            if func.attr == "pop" and not node.args and self._is_set(func.value):
                self._report(node, RULE_SET_ORDER, "set.pop() removes an arbitrary member")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not self._check_reference(node):
            self.generic_visit(node)  # ``datetime.datetime.now``: one finding, not two

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._check_reference(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._check_module(node, node.module, f"from {node.module} import ...")

    def visit_Global(self, node: ast.Global) -> None:
        self._report(node, RULE_GLOBAL, "global " + ", ".join(node.names))

    # -- iteration -------------------------------------------------------------------------

    def visit_For(self, node: ast.For) -> None:
        if self._is_set(node.iter):
            self._report(node, RULE_SET_ORDER, "for loop over a set")
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if self._is_set(node.iter):
            self._report(node.iter, RULE_SET_ORDER, "comprehension over a set")
        self.generic_visit(node)

    def visit_Starred(self, node: ast.Starred) -> None:
        if self._is_set(node.value):
            self._report(node, RULE_SET_ORDER, "unpacking a set")
        self.generic_visit(node)

    # -- helpers ---------------------------------------------------------------------------

    def _check_reference(self, node: ast.Attribute | ast.Name) -> bool:
        """Report a reference into a flagged module (``time.time``, ``now``...); whether it
        did."""
        target = self._resolve(node)
        if target is None:
            return False
        module = _module_name(target)
        rule = _MODULE_RULES.get(module.split(".")[0]) if module else None
        if rule is None:
            return False
        if rule == RULE_ENVIRONMENT and getattr(target, "__name__", "") in _RANDOM_IN_OS:
            rule = RULE_RANDOM
        if isinstance(node, ast.Name) and isinstance(target, types.ModuleType):
            return False  # the bare module name; its attribute is what gets reported
        self._report(node, rule, _dotted(node))
        return True

    def _check_module(self, node: ast.AST, module: str, detail: str) -> None:
        rule = _MODULE_RULES.get(module.split(".")[0])
        if rule is not None:
            self._report(node, rule, detail)

    def _resolve(self, node: ast.expr) -> object | None:
        if isinstance(node, ast.Name):
            value: object = self.globals.get(node.id)
            return value
        if isinstance(node, ast.Attribute):
            base = self._resolve(node.value)
            if base is None:
                return None
            found: object = getattr(base, node.attr, None)
            return found
        return None

    def _resolves_to_builtin(self, name: str) -> bool:
        return name not in self.globals and hasattr(builtins, name)

    def _is_set(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Set | ast.SetComp):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node.func.id in ("set", "frozenset") and self._resolves_to_builtin(node.func.id)
        if isinstance(node, ast.Name):
            return node.id in self.set_locals
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.value.id == "self" and node.attr in self.set_fields
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.BitOr | ast.BitAnd | ast.Sub | ast.BitXor
        ):
            return self._is_set(node.left) or self._is_set(node.right)
        return False


def _module_name(target: object) -> str | None:
    if isinstance(target, types.ModuleType):
        return target.__name__
    module = getattr(target, "__module__", None)
    if isinstance(module, str):
        return module.lstrip("_")  # _random, _datetime, _socket -> their public module
    owner = getattr(target, "__self__", None)  # a bound method of a module-level instance
    if owner is not None:
        return _module_name(type(owner))
    return None


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "..."


def iter_lint_lines(findings: list[Finding]) -> Iterator[str]:
    for finding in findings:
        yield str(finding)


LintFunction = Callable[[type], list[Finding]]
