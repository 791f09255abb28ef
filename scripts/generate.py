"""Regenerate every language's stubs from proto/ with pinned local tools (no remote plugins).

`python scripts/generate.py` writes the stubs; `--check` regenerates into a temporary
directory and fails when any committed output differs (stale or edited by hand).

| language   | output                                  | generator                                      |
| ---------- | --------------------------------------- | ---------------------------------------------- |
| Python     | clients/python-protos/src/smartpush/    | grpcio-tools + mypy-protobuf (.pyi)            |
| TypeScript | clients/typescript/src/gen/             | @bufbuild/protoc-gen-es (npm, clients/typescript) |
| Go         | clients/go/src/github.com/smartpush-gateway/go/smartpush/ | Debian protoc-gen-go + protoc-gen-go-grpc |
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path("smartpush") / "gateway" / "v1"
# google.rpc error details, for languages whose gRPC runtime does not ship them (TypeScript).
GOOGLE_RPC = ["google/rpc/error_details.proto", "google/rpc/status.proto"]

# The generator versions are part of the output: pin them and refuse others.
PINNED_PY = {"grpcio-tools": "1.85.1", "mypy-protobuf": "5.1.0"}
PINNED_TOOLS = {"protoc-gen-go": "protoc-gen-go v1.28.1", "protoc-gen-go-grpc": "protoc-gen-go-grpc 1.0"}


@dataclass(frozen=True)
class Target:
    name: str
    committed: Path  # relative to the repository root
    generate: Callable[[Path, Path], None]  # (proto dir, output dir)


def _includes() -> tuple[Path, Path]:
    import grpc_tools

    wkt = Path(grpc_tools.__file__).parent / "_proto"
    from google.rpc import status_pb2

    googleapis = Path(str(status_pb2.__file__)).parent.parent.parent
    return wkt, googleapis


def _protos(proto: Path) -> list[str]:
    return sorted(str(p.relative_to(proto)) for p in (proto / PACKAGE).glob("*.proto"))


def _protoc(proto: Path, args: list[str], files: list[str]) -> None:
    wkt, googleapis = _includes()
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"-I{wkt}", f"-I{googleapis}", *args, *files]
    done = subprocess.run(cmd, check=False, cwd=proto, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"protoc failed:\n{done.stdout}{done.stderr}")


def _bin(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        sys.exit(f"generate: {name} not found; run `make toolchains` (Debian packages and npm modules)")
    return Path(found)


def python(proto: Path, out: Path) -> None:
    bin_dir = Path(sys.executable).parent
    out.mkdir(parents=True, exist_ok=True)
    _protoc(
        proto,
        [
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={out.parent}",
            f"--grpc_python_out={out.parent}",
            f"--mypy_out={out.parent}",
            f"--mypy_grpc_out={out.parent}",
        ],
        _protos(proto),
    )
    # Package markers so the stubs import as `smartpush.gateway.v1`.
    for pkg in (out, out / "gateway", out / "gateway" / "v1"):
        (pkg / "__init__.py").write_text('"""Generated from proto/ by scripts/generate.py; do not edit."""\n')
    (out / "py.typed").write_text("")


def typescript(proto: Path, out: Path) -> None:
    plugin = ROOT / "clients" / "typescript" / "node_modules" / ".bin" / "protoc-gen-es"
    if not plugin.exists():
        sys.exit("generate: protoc-gen-es missing; run `make toolchains` (npm ci in clients/typescript)")
    out.mkdir(parents=True, exist_ok=True)
    _protoc(
        proto,
        [f"--plugin=protoc-gen-es={plugin}", f"--es_out={out}", "--es_opt=target=ts,import_extension=js"],
        _protos(proto) + GOOGLE_RPC,
    )


def go(proto: Path, out: Path) -> None:
    for tool, want in PINNED_TOOLS.items():
        have = subprocess.run([_bin(tool), "--version"], capture_output=True, text=True, check=False).stdout.strip()
        if have != want:
            sys.exit(f"generate: {tool} reports {have!r}, {want!r} pinned; run `make toolchains`")
    # GOPATH layout: the import path from go_package is the directory under src/.
    src = out.parents[3]  # out = <src>/github.com/smartpush-gateway/go/smartpush
    src.mkdir(parents=True, exist_ok=True)
    _protoc(
        proto,
        [
            f"--plugin=protoc-gen-go={_bin('protoc-gen-go')}",
            f"--plugin=protoc-gen-go-grpc={_bin('protoc-gen-go-grpc')}",
            f"--go_out={src}",
            "--go_opt=paths=import",
            f"--go-grpc_out={src}",
            "--go-grpc_opt=paths=import",
        ],
        _protos(proto),
    )


TARGETS = [
    Target("python", Path("clients/python-protos/src/smartpush"), python),
    Target("typescript", Path("clients/typescript/src/gen"), typescript),
    Target("go", Path("clients/go/src/github.com/smartpush-gateway/go/smartpush"), go),
]


def _check_toolchain() -> None:
    for dist, want in PINNED_PY.items():
        have = importlib.metadata.version(dist)
        if have != want:
            sys.exit(f"generate: {dist} {have} installed, {want} pinned; run `make venv`")


def _tree(path: Path) -> dict[str, Path]:
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
    }


def check(root: Path, targets: list[Target]) -> list[str]:
    problems: list[str] = []
    for target in targets:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / target.committed
            target.generate(root / "proto", fresh)
            want, have = _tree(fresh), _tree(root / target.committed)
            for name in sorted(set(want) | set(have)):
                shown = f"{target.committed}/{name}"
                if name not in have:
                    problems.append(f"missing generated file {shown}")
                elif name not in want:
                    problems.append(f"stray file in generated tree {shown}")
                elif not filecmp.cmp(want[name], have[name], shallow=False):
                    diff = difflib.unified_diff(
                        have[name].read_text().splitlines(), want[name].read_text().splitlines(), lineterm="", n=1
                    )
                    problems.append(f"stale {shown}:\n" + "\n".join(list(diff)[:20]))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    parser.add_argument("--only", action="append", choices=[t.name for t in TARGETS], help="limit to a language")
    args = parser.parse_args()
    _check_toolchain()
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    if args.check:
        problems = check(args.root, targets)
        for p in problems:
            print(f"generate --check: {p}", file=sys.stderr)
        if problems:
            print("generated code is stale: run `make generate` and commit", file=sys.stderr)
            return 1
        print(f"generated code is up to date ({', '.join(t.name for t in targets)})")
        return 0
    for target in targets:
        out = args.root / target.committed
        if out.exists():
            shutil.rmtree(out)
        target.generate(args.root / "proto", out)
        print(f"generated {target.name} stubs in {target.committed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
