"""A Go module proxy (the GOPROXY protocol over HTTP) serving Debian's Go sources, for module-mode
builds on a machine without proxy.golang.org.

Debian ships each Go library once, as a source tree under /usr/share/gocode/src. Module mode asks
for exact versions (whatever the go.mod files in the graph name), so every version asked of a
module Debian has is answered with Debian's tree and go.mod; a module Debian lacks gets a go.mod
with no requirements and no source — enough for the graph, and a build that would need its code
fails loudly with "not found". Checksums are Debian's, not sum.golang.org's: use GOSUMDB=off.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GOCODE = Path("/usr/share/gocode/src")


def _unescape(path: str) -> str:
    # Module paths escape capitals as "!" + lower case.
    out, bang = [], False
    for ch in path:
        if ch == "!":
            bang = True
            continue
        out.append(ch.upper() if bang else ch)
        bang = False
    return "".join(out)


def _module_of(tree: Path) -> str | None:
    gomod = tree / "go.mod"
    if not gomod.is_file():
        return None
    for line in gomod.read_text().splitlines():
        if line.startswith("module "):
            return line.split()[1].strip('"')
    return None


def debian_modules(root: Path = GOCODE) -> dict[str, Path]:
    """Module path -> source tree, for every tree with a go.mod (a tree without one is not a module)."""
    found: dict[str, Path] = {}
    for gomod in root.rglob("go.mod"):
        module = _module_of(gomod.parent)
        if module and "testdata" not in gomod.parts:
            found[module] = gomod.parent
    return found


def _zip(module: str, version: str, tree: Path) -> bytes:
    nested = {p.parent for p in tree.rglob("go.mod") if p.parent != tree}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(tree.rglob("*")):
            if not path.is_file() or path.is_symlink() or "vendor" in path.relative_to(tree).parts:
                continue
            if any(parent in nested for parent in path.parents):
                continue  # another module's files
            zf.write(path, f"{module}@{version}/{path.relative_to(tree)}")
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    modules: dict[str, Path]
    zips: dict[tuple[str, str], bytes]
    lock: threading.Lock

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        module_part, _, rest = self.path.lstrip("/").partition("/@v/")
        module = _unescape(module_part)
        tree = self.modules.get(module)
        if rest == "list":
            return self._answer(b"", "text/plain")
        version, dot, kind = rest.rpartition(".")
        if not dot:
            return self._answer(b"not found", "text/plain", 404)
        if kind == "info":
            body = json.dumps({"Version": version, "Time": "2023-01-01T00:00:00Z"}).encode()
            return self._answer(body, "application/json")
        if kind == "mod":
            text = (tree / "go.mod").read_text() if tree else f"module {module}\n"
            return self._answer(text.encode(), "text/plain")
        if kind == "zip" and tree:
            with self.lock:
                if (module, version) not in self.zips:
                    self.zips[module, version] = _zip(module, version, tree)
                body = self.zips[module, version]
            return self._answer(body, "application/zip")
        return self._answer(b"not found", "text/plain", 404)

    def _answer(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def debian_goproxy(root: Path = GOCODE) -> Iterator[str]:
    """Serve on a free loopback port for the block's duration; yields the GOPROXY URL."""
    handler = type("Handler", (_Handler,), {"modules": debian_modules(root), "zips": {}, "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
