"""Which build of the gateway the suite runs on: the sources, or the compiled build that ships.

`make test` runs the suite twice — on the sources, then with SMARTPUSH_TEST_COMPILED naming the
mypyc build (scripts/build_compiled.py) first on PYTHONPATH. Either way the modules imported must
be that build's: an extension module left beside the sources would shadow every edit to them, and
a compiled pass that imported the sources would prove nothing about what ships."""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import os
import pkgutil
from pathlib import Path

import pytest

import gateway

COMPILED = os.environ.get("SMARTPUSH_TEST_COMPILED")
# The send path: each of these is compiled in the shipped build (pyproject's mypyc hook).
HOT = [
    "gateway.push", "gateway.api.edge", "gateway.api.push_service", "gateway.validation", "gateway.errors",
    "gateway.smartpush.client", "gateway.smartpush.wire", "gateway.smartpush.answers", "gateway.quotas",
    "gateway.idempotency", "gateway.logs", "gateway.state.sqlite_store", "gateway.telemetry.span_wire",
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


def _compiled_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.") if not m.name.endswith("__main__")]
    return [n for n in names if str(importlib.import_module(n).__file__).endswith(EXTENSION)]


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
