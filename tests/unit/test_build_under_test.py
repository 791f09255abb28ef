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


@pytest.mark.skipif(COMPILED is None, reason="the compiled pass")
def test_no_compiled_module_has_a_coroutine() -> None:
    """Coroutines stay CPython's. Compiled by mypyc (2.4), the gateway's coroutines got the
    exception state wrong across awaits: in the compiled pass of this suite an exception raised in
    one call surfaced in a later, unrelated await. The synchronous modules — validation, the wire
    JSON, answers, errors, the access log, the span encoder — are what is compiled; a coroutine
    added to one of them must move it to pyproject's exclude list, and this test says so."""
    with_coroutines = []
    for name in _compiled_modules():
        built = Path(str(importlib.import_module(name).__file__))  # e.g. validation.cpython-311-x86_64-linux-gnu.so
        source = built.with_name(built.name.split(".")[0] + ".py")  # the wheel keeps the sources beside
        tree = ast.parse(source.read_text())
        if any(
            isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncWith | ast.AsyncFor) for node in ast.walk(tree)
        ):
            with_coroutines.append(name)
    assert with_coroutines == []


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
