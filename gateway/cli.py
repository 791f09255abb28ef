"""`smartpush-gateway serve | emulator | send | health | permissions | templates`.

gRPC and the generated stubs are imported by the commands that use them: the `serve --workers`
supervisor only parses settings and starts processes, and stays ~15 MB smaller without them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import SecretStr

from gateway import __version__, logs
from gateway.config import ConfigError, ProfileSettings, Settings, load_settings
from gateway.heap import freeze_startup_heap

if TYPE_CHECKING:
    from smartpush.gateway.v1 import push_service_pb2

log = logging.getLogger("gateway.cli")


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --- serve --------------------------------------------------------------------------------------
async def _serve(settings: Settings, with_emulator: bool) -> int:
    from gateway.server import run_until_signalled, start_gateway

    emulator = None
    if with_emulator:
        # Imported only here: the emulator's web server would add ~3 MB to every production process.
        from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, DEMO_TEMPLATE_ID, start_emulator

        emulator = await start_emulator("127.0.0.1", 0)
        profiles = dict(settings.profiles)
        profiles.setdefault(
            settings.default_profile,
            ProfileSettings(client_id=DEMO_CLIENT_ID, secret=SecretStr(DEMO_SECRET)),
        )
        sp = settings.smartpush.model_copy(update={"base_url": emulator.url, "token_url": None})
        settings = settings.model_copy(update={"profiles": profiles, "smartpush": sp})
    gateway = await start_gateway(settings)
    target = gateway.address
    # Last before serving: every module is imported and every long-lived object made (gateway/heap.py).
    frozen = freeze_startup_heap()
    log.info("start-up heap frozen for the garbage collector", extra={"frozen_objects": frozen})
    if settings.auth.mode == "none":
        log.warning("auth.mode none: callers are not identified; anyone reaching the port may send (local use only)")
    print(f"smartpush-gateway listening on {target}", flush=True)
    if emulator is not None:
        print(f"SmartPush emulator on {emulator.url} (admin API under {emulator.url}/_emulator/)", flush=True)
        print(
            "try:\n"
            f"  .venv/bin/smartpush-gateway send --target {target} \\\n"
            "      --project demo-project --sub demo-user \\\n"
            f"      --template {DEMO_TEMPLATE_ID} --surface COMPANION --mode broadcast\n"
            f"  grpcurl -plaintext {target} list",
            flush=True,
        )
    try:
        await run_until_signalled(gateway)
    finally:
        if emulator is not None:
            await emulator.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.listen:
        overrides["listen"] = args.listen
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.workers:
        overrides["workers"] = args.workers
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as err:
        if not (args.emulator and err.setting == "auth"):
            raise
        # --emulator is local use: with no caller identity configured, say so and let anyone in.
        settings = load_settings(args.config, **overrides, auth={"mode": "none"})
    logs.configure(settings.log_level, settings.log_format)
    if settings.workers > 1:
        if args.emulator:
            print("--emulator runs in one process; drop --workers or start `emulator` apart", file=sys.stderr)
            return 2
        from gateway.workers import supervise

        passthrough = [
            *(["--config", args.config] if args.config else []),
            *(["--log-format", args.log_format] if args.log_format else []),
        ]
        salt = settings.telemetry.sub_hash_salt
        return supervise(
            settings.workers,
            settings.listen,
            passthrough,
            settings.telemetry.prometheus_listen,
            salt.get_secret_value() if salt else None,
        )
    return _run(_serve(settings, args.emulator))


# --- emulator -----------------------------------------------------------------------------------
async def _emulator(host: str, port: int, config: Any, faults: dict[str, Any]) -> int:
    import signal

    from gateway.emulator import start_emulator
    from gateway.emulator.state import Faults

    server = await start_emulator(host, port, config)
    if faults:
        server.state.faults = Faults.model_validate(faults)
    print(f"SmartPush emulator on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from gateway.emulator.state import EmulatorConfig

    host, _, port = args.listen.rpartition(":")
    raw = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    if args.token_ttl is not None:
        raw["token_ttl_s"] = args.token_ttl
    config = EmulatorConfig.model_validate(raw or {})
    faults: dict[str, Any] = {}
    if args.latency_ms:
        faults["latency_ms"] = args.latency_ms
    if args.error_rate:
        faults["error_rates"] = dict(_pair(x) for x in args.error_rate)
    if args.retry_after is not None:
        faults["retry_after_s"] = args.retry_after
    logs.configure("WARNING", "auto")
    return _run(_emulator(host or "127.0.0.1", int(port), config, faults))


# --- send ---------------------------------------------------------------------------------------
def _pair(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, float(value) if key.isdigit() else value


def build_send_request(args: argparse.Namespace) -> push_service_pb2.SendRequest:
    from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, template_pb2

    content = template_pb2.TemplateContent(
        id=args.template,
        header_values=dict(_pair(x) for x in args.header),
        body_values=dict(_pair(x) for x in args.body),
    )
    if args.button_text or args.deeplink_android or args.deeplink_ios:
        content.mobile_app_parameters.CopyFrom(
            template_pb2.MobileAppParameters(
                button_text=args.button_text or "",
                deeplink_android=args.deeplink_android or "",
                deeplink_ios=args.deeplink_ios or "",
            )
        )
    elif args.deeplink or args.product_filter:
        content.device_parameters.CopyFrom(
            template_pb2.DeviceParameters(deeplink=args.deeplink or "", product_filter=args.product_filter or "")
        )
    mode = {
        "broadcast": delivery_pb2.DELIVERY_MODE_BROADCAST,
        "sequential": delivery_pb2.DELIVERY_MODE_SEQUENTIAL,
    }[args.mode]
    return push_service_pb2.SendRequest(
        profile=args.profile or "",
        project_id=args.project,
        sub=args.sub,
        delivery=delivery_pb2.DeliveryConfig(
            delivery_mode=mode,
            destinations=[
                delivery_pb2.Destination(surface=delivery_pb2.Surface.Value(f"SURFACE_{s.upper()}"))
                for s in args.surface
            ],
            template_content=content,
        ),
        idempotency_key=args.idempotency_key or "",
        validate_only=args.validate_only,
        callback_url=args.callback_url or "",
    )


def _channel(args: argparse.Namespace) -> Any:
    """Plaintext, or TLS when --ca is given (with --cert/--key for a gateway that requires mTLS)."""
    import grpc

    if not args.ca:
        if args.cert or args.key:
            raise SystemExit("--cert and --key need --ca (TLS)")
        return grpc.insecure_channel(args.target)
    if bool(args.cert) != bool(args.key):
        raise SystemExit("give both --cert and --key, or neither")
    creds = grpc.ssl_channel_credentials(
        Path(args.ca).read_bytes(),
        Path(args.key).read_bytes() if args.key else None,
        Path(args.cert).read_bytes() if args.cert else None,
    )
    return grpc.secure_channel(args.target, creds)


def _bearer(args: argparse.Namespace) -> tuple[tuple[str, str | bytes], ...]:
    """`authorization: Bearer <--token-file>` for a gateway with auth.mode jwt; nothing without it."""
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    return (("authorization", f"Bearer {token}"),) if token else ()


def _send_flags(command: argparse.ArgumentParser) -> None:
    """What `send` and `send-bulk` share: where to, the template and surfaces, and how to connect."""
    command.add_argument("--target", default="127.0.0.1:50051")
    command.add_argument("--template", required=True)
    command.add_argument("--surface", action="append", required=True, help="COMPANION, SBERBOX, ... (repeatable)")
    command.add_argument("--mode", choices=["broadcast", "sequential"], default="broadcast")
    command.add_argument("--button-text")
    command.add_argument("--deeplink-android")
    command.add_argument("--deeplink-ios")
    command.add_argument("--deeplink", help="device deeplink")
    command.add_argument("--product-filter")
    command.add_argument("--profile")
    command.add_argument("--callback-url")
    command.add_argument("--token-file", help="a JWT to send as `authorization: Bearer` (auth.mode jwt)")
    command.add_argument("--ca", help="CA bundle: talk TLS to the gateway")
    command.add_argument("--cert", help="client certificate (PEM) for a gateway with auth.mode mtls")
    command.add_argument("--key", help="the client certificate's key (PEM)")


def cmd_send(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format
    from smartpush.gateway.v1 import push_service_pb2_grpc

    from gateway.status_text import describe_error

    try:
        request = build_send_request(args)
    except ValueError as exc:
        print(json.dumps({"code": "INVALID_ARGUMENT", "message": str(exc)}), file=sys.stderr)
        return 2
    # A bearer token for a gateway with auth.mode jwt (e.g. a projected service-account token).
    metadata = _bearer(args)
    with _channel(args) as channel:
        stub = push_service_pb2_grpc.PushServiceStub(channel)
        try:
            response = stub.Send(request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as err:
            print(json.dumps(describe_error(err), ensure_ascii=False, indent=2))
            return 1
    out = json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


# --- send-bulk ----------------------------------------------------------------------------------
def _bulk_progress(total: int) -> Any:
    """A rich progress bar on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeRemainingColumn(),
        console=Console(stderr=True),
    )  # fmt: skip
    progress.start()
    progress.add_task("rows", total=total)
    return progress


def cmd_send_bulk(args: argparse.Namespace) -> int:
    import grpc
    from smartpush.gateway.v1 import push_service_pb2, push_service_pb2_grpc

    from gateway import bulk

    path = Path(args.file)
    try:
        rows = list(bulk.read_rows(path, args.project or ""))
        shared = build_send_request(argparse.Namespace(**{**vars(args), "sub": "-", "project": args.project or "-"}))
    except (OSError, ValueError) as exc:
        print(json.dumps({"code": "INVALID_ARGUMENT", "message": str(exc)}), file=sys.stderr)
        return 2
    key = bulk.file_key(path)
    results_path = Path(args.results or f"{path}.results.jsonl")
    metadata = _bearer(args)
    summary = bulk.Summary()
    progress = _bulk_progress(len(rows))
    done = 0
    try:
        with _channel(args) as channel, results_path.open("w") as out:
            stub = push_service_pb2_grpc.PushServiceStub(channel)
            for start in range(0, len(rows), args.batch_size):
                chunk = rows[start : start + args.batch_size]
                batch = push_service_pb2.SendBatchRequest(requests=[bulk.request_for(r, shared, key) for r in chunk])
                reply = stub.SendBatch(batch, timeout=args.timeout, metadata=metadata)
                for row, result in zip(chunk, reply.results, strict=True):
                    out.write(json.dumps(bulk.outcome(row, result, summary)) + "\n")
                out.flush()
                done += len(chunk)
                if progress is not None:
                    progress.update(progress.task_ids[0], completed=done)
    except KeyboardInterrupt:
        if progress is not None:
            progress.stop()
        print(
            f"interrupted after {done} of {len(rows)} rows; run the same file again to finish (nothing is sent twice)"
        )
        return 130
    except grpc.RpcError as err:
        if progress is not None:
            progress.stop()
        from gateway.status_text import describe_error

        print(json.dumps(describe_error(err), ensure_ascii=False), file=sys.stderr)
        print(f"stopped after {done} of {len(rows)} rows; run the same file again to finish (nothing is sent twice)")
        return 1
    if progress is not None:
        progress.stop()
    totals = {"rows": len(rows), "sent": summary.sent, "replayed": summary.replayed, "failed": summary.failed}
    print(json.dumps({**totals, "results": str(results_path)}, ensure_ascii=False))
    return 1 if summary.failures else 0


# --- permissions / templates (local, from configuration) ---------------------------------------
def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def _print_message(message: Any) -> None:
    from google.protobuf import json_format

    out = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    print(json.dumps(out, ensure_ascii=False, indent=2))


def _print_error(path: str, message: str) -> int:
    error = {"code": "INVALID_ARGUMENT", "field_violations": [{"field": path, "description": message}]}
    print(json.dumps(error, ensure_ascii=False, indent=2))
    return 1


# --- health -------------------------------------------------------------------------------------
async def _health(target: str, service: str, ca_pem: bytes | None, wait_s: float) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    creds = grpc.ssl_channel_credentials(ca_pem) if ca_pem else None
    channel = grpc.aio.secure_channel(target, creds) if creds else grpc.aio.insecure_channel(target)
    async with channel:
        try:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stubs only know the sync stub
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=wait_s)
        except grpc.aio.AioRpcError as err:
            print(f"{service or '(overall)'}: {err.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{service or '(overall)'}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the service is SERVING: for Docker HEALTHCHECK and scripts."""
    ca_pem = Path(args.ca).read_bytes() if args.ca else None
    return asyncio.run(_health(args.target, args.service, ca_pem, args.timeout))


def cmd_permissions_parse(args: argparse.Namespace) -> int:
    from gateway.smartapp.codec_error import CodecError
    from gateway.smartapp.permissions import load_message, parse_take_runtime_permissions

    try:
        result = parse_take_runtime_permissions(load_message(_read(args.file)))
    except CodecError as err:
        return _print_error(err.path, err.detail)
    _print_message(result)
    return 0


def _registry(args: argparse.Namespace) -> Any:
    from gateway.templates import TemplateRegistry

    # Only the template registry is read here: who may call a server does not matter.
    settings = load_settings(args.config, auth={"mode": "none"}, callers={})
    return TemplateRegistry.from_settings(settings.templates, strict=settings.strict_templates)


def cmd_templates_list(args: argparse.Namespace) -> int:
    from smartpush.gateway.v1 import template_service_pb2

    _print_message(template_service_pb2.ListTemplatesResponse(templates=_registry(args).all()))
    return 0


def cmd_templates_validate(args: argparse.Namespace) -> int:
    from google.protobuf import json_format
    from smartpush.gateway.v1 import delivery_pb2, template_pb2, template_service_pb2

    registry = _registry(args)
    try:
        content = json_format.Parse(_read(args.file), template_pb2.TemplateContent())
    except json_format.ParseError as err:
        return _print_error("template_content", str(err))
    template = registry.get(content.id)
    if template is None:
        print(json.dumps({"code": "NOT_FOUND", "reason": "ERROR_REASON_TEMPLATE_UNKNOWN", "template_id": content.id}))
        return 1
    surfaces = [delivery_pb2.Surface.Value(f"SURFACE_{s.upper()}") for s in args.surface]
    rendered = registry.check(template, content, surfaces, prefix="template_content", surface_path="surfaces[{i}]")
    _print_message(
        template_service_pb2.ValidateTemplateContentResponse(
            valid=not rendered.violations,
            violations=[
                template_service_pb2.TemplateViolation(field=v.field, description=v.description)
                for v in rendered.violations
            ],
            rendered_header=rendered.header,
            rendered_body=rendered.body,
        )
    )
    return 0 if not rendered.violations else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smartpush-gateway", description="gRPC gateway for Sber SmartPush")
    p.add_argument("--version", action="version", version=f"smartpush-gateway {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--listen", help="HOST:PORT (default from settings: 127.0.0.1:50051)")
    s.add_argument("--config", help="YAML settings file (also SMARTPUSH_GATEWAY_CONFIG)")
    s.add_argument("--emulator", action="store_true", help="start the SmartPush emulator in-process and use it")
    s.add_argument("--log-format", choices=["json", "text", "auto"])
    s.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT); default 1")
    s.set_defaults(func=cmd_serve)

    e = sub.add_parser("emulator", help="run the SmartPush emulator")
    e.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT")
    e.add_argument("--config", help="YAML EmulatorConfig (clients, templates, quotas, ...)")
    e.add_argument("--token-ttl", type=float, help="token lifetime in seconds")
    e.add_argument("--latency-ms", type=float, default=0.0, help="added latency for every request")
    e.add_argument("--error-rate", action="append", default=[], help="HTTPSTATUS=PROBABILITY, e.g. 503=0.1")
    e.add_argument("--retry-after", type=int, help="Retry-After seconds on injected errors")
    e.set_defaults(func=cmd_emulator)

    b = sub.add_parser("send-bulk", help="one push per row of a CSV or JSON Lines file, resumable")
    b.add_argument("file", help="CSV (sub, project_id, header.<name>, body.<name>) or .jsonl")
    b.add_argument("--project", help="project id for rows without project_id")
    _send_flags(b)
    b.add_argument("--batch-size", type=int, default=100, help="rows per SendBatch call (at most 1000)")
    b.add_argument("--timeout", type=float, default=60.0, help="seconds per SendBatch call")
    b.add_argument("--results", help="the results file (default: FILE.results.jsonl)")
    b.set_defaults(func=cmd_send_bulk, header=[], body=[], idempotency_key=None, validate_only=False)

    c = sub.add_parser("send", help="send one push through a running gateway")
    c.add_argument("--project", required=True)
    c.add_argument("--sub", required=True)
    _send_flags(c)
    c.add_argument("--header", action="append", default=[], metavar="K=V")
    c.add_argument("--body", action="append", default=[], metavar="K=V")
    c.add_argument("--idempotency-key")
    c.add_argument("--validate-only", action="store_true")
    c.add_argument("--timeout", type=float, default=10.0)
    c.set_defaults(func=cmd_send)

    h = sub.add_parser("health", help="check a gateway's grpc.health.v1 status (exit 0 when SERVING)")
    h.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT")
    h.add_argument("--service", default="", help="'' (ready to serve, the default), 'liveness' or an API service")
    h.add_argument("--ca", help="CA bundle when the gateway serves TLS")
    h.add_argument("--timeout", type=float, default=2.0)
    h.set_defaults(func=cmd_health)

    perm = sub.add_parser("permissions", help="runtime push consent messages").add_subparsers(dest="op", required=True)
    pp = perm.add_parser("parse", help="parse a TAKE_RUNTIME_PERMISSIONS message (JSON) into the typed result")
    pp.add_argument("file", help="a JSON file, or - for standard input")
    pp.set_defaults(func=cmd_permissions_parse)

    tpl = sub.add_parser("templates", help="the template registry from configuration").add_subparsers(
        dest="op", required=True
    )
    tl = tpl.add_parser("list", help="list the configured templates")
    tl.add_argument("--config", help="YAML settings file (also SMARTPUSH_GATEWAY_CONFIG)")
    tl.set_defaults(func=cmd_templates_list)
    tv = tpl.add_parser("validate", help="check a TemplateContent (proto JSON) against its template and render it")
    tv.add_argument("file", help="a JSON file, or - for standard input")
    tv.add_argument("--config", help="YAML settings file (also SMARTPUSH_GATEWAY_CONFIG)")
    tv.add_argument("--surface", action="append", default=[], help="surface it will be sent to (repeatable)")
    tv.set_defaults(func=cmd_templates_validate)
    return p


def startup_error(err: ConfigError, log_format: str | None) -> None:
    """One line on stderr naming the setting (JSON when logs are JSON); never a traceback or a value."""
    fmt = log_format or os.environ.get("SMARTPUSH_GATEWAY_LOG_FORMAT", "auto")
    if fmt not in ("json", "text"):
        fmt = "text" if sys.stderr.isatty() else "json"
    if fmt == "json":
        line = {"level": "ERROR", "logger": "gateway.config", "msg": "configuration error"}
        line |= {"setting": err.setting, "error": err.problem}
        print(json.dumps(line, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"smartpush-gateway: configuration error: {err.setting}: {err.problem}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as err:
        startup_error(err, getattr(args, "log_format", None))
        return 2
    return result
