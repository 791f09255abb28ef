"""Regenerate every language's stubs from proto/ with pinned local tools.

`python scripts/generate.py` writes the stubs; `--check` regenerates into a
temporary directory and fails when the committed output differs (stale).
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
# Generated Python lives once, in the client distribution; the server imports it from there.
PY_SUBDIR = Path("clients") / "python" / "src"
PY_PACKAGE = Path("smartpush") / "gateway" / "v1"

# The generator versions are part of the output: pin them and refuse others.
PINNED = {"grpcio-tools": "1.85.1", "mypy-protobuf": "5.1.0"}


def _check_toolchain() -> None:
    for dist, want in PINNED.items():
        have = importlib.metadata.version(dist)
        if have != want:
            sys.exit(f"generate: {dist} {have} installed, {want} pinned; run `make venv`")


def _protos(proto: Path) -> list[str]:
    return sorted(str(p.relative_to(proto)) for p in (proto / PY_PACKAGE).glob("*.proto"))


def generate_python(out: Path, proto: Path = PROTO) -> None:
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent
    target = out / PY_PACKAGE
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *_protos(proto),
    ]
    done = subprocess.run(cmd, check=False, cwd=proto, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"protoc failed:\n{done.stdout}{done.stderr}")
    # Package markers so the stubs import as `smartpush.gateway.v1`.
    for pkg in (out / "smartpush", out / "smartpush" / "gateway", target):
        (pkg / "__init__.py").write_text('"""Generated from proto/ by scripts/generate.py; do not edit."""\n')
    (out / "smartpush" / "py.typed").write_text("")


def _tree(path: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(path)): p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
    }


def check_python(root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate_python(fresh, root / "proto")
        want = _tree(fresh / "smartpush")
        have = _tree(root / PY_SUBDIR / "smartpush")
        for name in sorted(set(want) | set(have)):
            if name not in have:
                problems.append(f"missing generated file smartpush/{name}")
            elif name not in want:
                problems.append(f"stray file in generated tree smartpush/{name}")
            elif not filecmp.cmp(want[name], have[name], shallow=False):
                diff = difflib.unified_diff(
                    have[name].read_text().splitlines(),
                    want[name].read_text().splitlines(),
                    lineterm="",
                    n=1,
                )
                problems.append(f"stale smartpush/{name}:\n" + "\n".join(list(diff)[:20]))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args()
    _check_toolchain()
    if args.check:
        problems = check_python(args.root)
        for p in problems:
            print(f"generate --check: {p}", file=sys.stderr)
        if problems:
            print("generated code is stale: run `make generate` and commit", file=sys.stderr)
            return 1
        print("generated code is up to date")
        return 0
    out = args.root / PY_SUBDIR
    generate_python(out, args.root / "proto")
    print(f"generated Python stubs in {out / PY_PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
