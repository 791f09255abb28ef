"""Build the shipped gateway — its modules compiled to C extensions by mypyc — and unpack it.

    python scripts/build_compiled.py DIR

builds the wheel the image builds (pyproject's mypyc hook, HATCH_BUILD_HOOK_ENABLE_MYPYC=1) and
installs it, without its dependencies, into DIR: `PYTHONPATH=DIR` then runs the compiled gateway
on this venv's packages (`make test` runs the suite a second time that way, `make bench` measures
it). The hook compiles in place, so the build runs on a copy of the tree: no extension module is
ever left beside the sources, where it would shadow every later edit. No build isolation: the
compiler is this venv's mypy, with the stubs `make typecheck` uses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from (pyproject's sdist includes, and the file naming them).
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "gateway", "clients/python-protos"]


def tracked(paths: list[str]) -> list[str]:
    """The files git knows under `paths` (tracked or new, not ignored): never a stray build product."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def build(dest: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="smartpush-compiled-") as tmp:
        tree, wheels = Path(tmp) / "tree", Path(tmp) / "wheels"
        for name in tracked(SOURCES):
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        env = {**os.environ, "HATCH_BUILD_HOOK_ENABLE_MYPYC": "1"}
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run(
            [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(tree)],
            check=True, env=env,
        )  # fmt: skip
        (wheel,) = wheels.glob("smartpush_gateway-*.whl")
        if "-cp3" not in wheel.name:
            raise SystemExit(f"build_compiled: {wheel.name} is a pure-Python wheel: the mypyc hook did not run")
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run([*pip, "install", "--no-deps", "--target", str(dest), str(wheel)], check=True)
        return wheel.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="directory to install the compiled gateway into")
    args = parser.parse_args()
    dest: Path = args.dest.resolve()
    built = build(dest)
    modules = sorted(p.relative_to(dest) for p in (dest / "gateway").rglob("*.so"))
    print(f"compiled gateway in {dest}: {len(modules)} extension modules ({built})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
