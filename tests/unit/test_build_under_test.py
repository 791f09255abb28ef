"""Which build of the gateway the suite runs on: the sources, or the compiled build that ships.

`make test` runs the suite twice — on the sources, then with SMARTPUSH_TEST_COMPILED naming the
mypyc build (scripts/build_compiled.py) first on PYTHONPATH. Either way the modules imported must
be that build's: an extension module left beside the sources would shadow every edit to them, and
a compiled pass that imported the sources would prove nothing about what ships."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.machinery
import inspect
import os
import pkgutil
from pathlib import Path

import pytest

import gateway

COMPILED = os.environ.get("SMARTPUSH_TEST_COMPILED")
# On the send path, and compiled in the shipped build (pyproject's mypyc hook).
HOT = [
    "gateway.validation", "gateway.errors", "gateway.logs", "gateway.smartpush.wire", "gateway.smartpush.answers",
    "gateway.quota_leases", "gateway.state.limits", "gateway.telemetry.span_wire", "gateway.telemetry.policy",
    "gateway.send_keys", "gateway.proto_maps", "gateway.idempotency", "gateway.state.sqlite_store",
    "gateway.state.store", "gateway.clock", "gateway.auth.gate", "gateway.auth.identity", "gateway.auth.jwt_auth",
    "gateway.smartpush.tokens", "gateway.smartpush.attempt_timer", "gateway.smartpush.client",
    "gateway.state.message_ids",
]  # fmt: skip
EXTENSION = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@pytest.mark.parametrize("name", HOT)
def test_the_modules_are_the_build_under_test(name: str) -> None:
    origin = str(importlib.import_module(name).__file__)
    if COMPILED is None:
        assert origin.endswith(".py"), f"{origin}: a compiled module shadows the sources (remove it)"
        assert Path(origin).is_relative_to(Path(__file__).resolve().parents[2])
    else:
        assert origin.endswith(EXTENSION), f"{origin}: the compiled pass imported the sources"
        assert Path(origin).is_relative_to(Path(COMPILED)), origin


def test_the_package_comes_from_the_build_under_test() -> None:
    where = Path(gateway.__path__[0]).resolve()
    expected = Path(COMPILED).resolve() if COMPILED else Path(__file__).resolve().parents[2]
    assert where == expected / "gateway"


@functools.cache  # (the package walked and imported once for the tests below)
def _all_modules() -> tuple[str, ...]:
    return tuple(m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.") if not m.name.endswith("__main__"))


@functools.cache
def _compiled_modules() -> tuple[str, ...]:
    return tuple(n for n in _all_modules() if str(importlib.import_module(n).__file__).endswith(EXTENSION))


@pytest.mark.skipif(COMPILED is None, reason="the compiled pass")
def test_no_compiled_class_is_native_over_an_interpreted_base() -> None:
    """mypyc compiles a subclass of an interpreted class (a logging.Handler, a generated servicer,
    an OTel exporter) as a native class unless told otherwise, and such a class's instances, once
    dropped, leave their weak references dangling: the next garbage collection that walks them (the
    logging module's weak set of handlers) crashes the process. Every such class is marked
    `mypyc_attr(native_class=False)` and stays a Python class; a new one must be too."""
    modules = _compiled_modules()
    assert "gateway.logs" in modules
    native_over_interpreted = []
    for name in modules:
        for cls in vars(importlib.import_module(name)).values():
            if not inspect.isclass(cls) or cls.__module__ != name or "__mypyc_attrs__" not in vars(cls):
                continue
            # typing's Protocol and Generic are markers mypyc compiles natively.
            if any(b.__module__ not in (*modules, "builtins", "typing") for b in cls.__mro__[1:]):
                native_over_interpreted.append(f"{name}.{cls.__qualname__}")
    assert native_over_interpreted == []


def _suspends_while_handling(tree: ast.AST) -> list[int]:
    """Lines where a coroutine may suspend while an exception is being handled or unwound: an
    await (or async with/for) inside an `except` or `finally` block, and every `async with` and
    `async for` (their exits and iterations await on the way out of an exception)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncWith | ast.AsyncFor):
            lines.append(node.lineno)
        if isinstance(node, ast.Try | ast.TryStar):
            handling = [stmt for handler in node.handlers for stmt in handler.body] + node.finalbody
            lines += [
                sub.lineno
                for stmt in handling
                for sub in ast.walk(stmt)
                if isinstance(sub, ast.Await | ast.AsyncWith | ast.AsyncFor)
            ]
    return sorted(set(lines))


@pytest.mark.skipif(COMPILED is None, reason="the compiled pass")
def test_no_compiled_coroutine_suspends_while_handling_an_exception() -> None:
    """Compiled by mypyc (2.4), coroutines that suspend while an exception is being handled got the
    exception state wrong: with every module compiled, an exception raised in one call surfaced in
    a later, unrelated await (the SmartPush client's POST, whose `finally` awaits; mypyc/mypyc#1114
    and #1177 are of the same kind). So the compiled modules' coroutines never do (the send path's
    orchestration, gateway.push and gateway.quotas, is compiled); a module whose coroutine must is
    left interpreted (pyproject's exclude list), and this test says which."""
    compiled = _compiled_modules()
    assert {"gateway.push", "gateway.quotas"} <= set(compiled)
    suspending = {}
    for name in compiled:
        built = Path(str(importlib.import_module(name).__file__))  # e.g. push.cpython-311-x86_64-linux-gnu.so
        source = built.with_name(built.name.split(".")[0] + ".py")  # the wheel keeps the sources beside
        if lines := _suspends_while_handling(ast.parse(source.read_text())):
            suspending[name] = lines
    assert suspending == {}


def test_the_pattern_check_finds_what_it_looks_for() -> None:
    """The check above on code that has each pattern, and on code that has none."""
    risky = """
async def a(x):
    try:
        await x()
    except ValueError:
        await x()
async def b(x):
    try:
        pass
    finally:
        await x()
async def c(x):
    async with x:
        pass
async def d(x):
    async for _ in x:
        pass
"""
    assert _suspends_while_handling(ast.parse(risky)) == [6, 11, 13, 16]
    safe = """
async def a(x):
    try:
        return await x()
    except ValueError:
        raise
    finally:
        x.close()
"""
    assert _suspends_while_handling(ast.parse(safe)) == []


@pytest.mark.skipif(COMPILED is None, reason="the compiled pass")
def test_no_interpreted_class_subclasses_a_compiled_one() -> None:
    """A compiled (native) class takes no interpreted subclasses: mypyc refuses one at instantiation,
    and `allow_interpreted_subclasses` on an exception crashed the process when the error was
    answered. Such a subclass lives in a compiled module (StoreUnavailable sits in gateway.errors)."""
    compiled = set(_compiled_modules())
    over_compiled = []
    for name in set(_all_modules()) - compiled:
        for cls in vars(importlib.import_module(name)).values():
            if inspect.isclass(cls) and cls.__module__ == name:
                bases = [b for b in cls.__mro__[1:] if b.__module__ in compiled and "__mypyc_attrs__" in vars(b)]
                over_compiled += [f"{name}.{cls.__qualname__} <- {b.__module__}.{b.__qualname__}" for b in bases]
    assert over_compiled == []
