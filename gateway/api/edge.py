"""The edge: one wrapper around every method of every service the gateway serves.

For each call it decodes the request without ever raising (undecodable bytes are
INVALID_ARGUMENT), refuses new calls while draining (UNAVAILABLE / SHUTTING_DOWN), opens the
SERVER span, maps `GatewayError`s through the one reason table, turns anything unexpected into
INTERNAL (no exception text to the caller; type, message and stack in the log), adds the retry
pushback that keeps clients' channels from retrying what the gateway already retried, and
writes one log line. No RPC can answer UNKNOWN.

Handlers are registered from the service descriptors directly (not through the generated
`add_*Servicer_to_server` helpers), because those install deserializers whose exceptions gRPC
answers with UNKNOWN and the exception text.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from smartpush.gateway.v1 import errors_pb2

from gateway import logs
from gateway.auth.callers import ANYONE, Caller
from gateway.auth.gate import Gate
from gateway.errors import FieldViolation, GatewayError, internal, invalid_argument, to_grpc_status
from gateway.telemetry import Telemetry
from gateway.telemetry.server_spans import RpcSpan, RpcSpans

log = logging.getLogger("gateway.calls")
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]
# gRFC A6: a negative pushback tells a client's retry policy not to retry this answer.
PUSHBACK = "grpc-retry-pushback-ms"
# Once, not per call: a member read from an Enum class goes through EnumType's __getattr__ hook
# (~700 instructions), its `.name` is a Python property, and hashing a member is a Python call.
# `_name_` is the member's plain attribute (a documented _sunder_ name).
_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_INTERNAL = grpc.StatusCode.INTERNAL


@dataclass(slots=True)
class Undecodable:
    """What a request deserializer returns for bytes that are not the expected message."""

    type_name: str

    def error(self) -> GatewayError:
        return invalid_argument([FieldViolation("(request)", f"not a valid {self.type_name} message")])


def safe_deserializer(cls: Any) -> Callable[[bytes], Any]:
    parse = cls.FromString
    name = cls.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:  # DecodeError, invalid UTF-8, nesting too deep: all the caller's bytes
            return Undecodable(name)

    return deserialize


@dataclass(slots=True)
class CallInfo:
    """What the edge knows of the call in progress; the servicer adds the RqUID and log fields."""

    rpc: str
    rq_uid: str | None = None
    fields: dict[str, object] = field(default_factory=dict)
    # Who is calling (set by the edge once admitted), for grants further in and for logs.
    caller: Caller | None = None


_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("gateway_call", default=None)


def current_call() -> CallInfo:
    """The running call's record (a fresh, unattached one outside an RPC, e.g. in unit tests)."""
    return _CALL.get() or CallInfo("")


def current_caller() -> Caller:
    """Who the edge admitted for the running call (`anonymous`, unrestricted, with auth.mode none)."""
    return current_call().caller or ANYONE


class Drain:
    """Calls in flight, and whether new ones are still taken (SIGTERM closes the door)."""

    def __init__(self) -> None:
        self.closing = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, within_s: float) -> bool:
        if self.in_flight == 0:
            return True
        try:
            async with asyncio.timeout(within_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def shutting_down() -> GatewayError:
    return GatewayError(
        errors_pb2.ERROR_REASON_SHUTTING_DOWN,
        "this gateway is shutting down and takes no new calls; nothing was sent, retry on another replica",
        retry_after_s=0.0,
    )


async def abort(context: Context, err: GatewayError) -> None:
    status = to_grpc_status(err)
    trailing = list(status.trailing_metadata)
    if err.client_may_retry:
        if err.retry_after_s:
            trailing.append((PUSHBACK, str(int(err.retry_after_s * 1000))))
    else:
        trailing.append((PUSHBACK, "-1"))
    await context.abort(status.code, status.details, tuple(trailing))


@dataclass(slots=True)
class Edge:
    telemetry: Telemetry
    drain: Drain
    # Admission of API calls (identity, grants, the process's cap); None admits everyone.
    gate: Gate | None = None

    async def _run(
        self,
        call: CallInfo,
        context: Context,
        full_method: str,
        api: bool,
        handle: RpcSpan | None,
        work: Callable[[], Awaitable[T]],
    ) -> T:
        """One call through the edge, unary or streaming: admission (caller, grants, the process's
        cap), errors mapped to precise statuses (never a bare UNKNOWN), and for API calls the drain
        count, the refusal metric and the access log line."""
        drain = self.drain
        start = time.perf_counter()
        code = _OK
        reason: str | None = None
        if api:
            drain.enter()
        try:
            if api and self.gate is not None:
                call.caller = await self.gate.admit(full_method, context, drain.in_flight)
                if handle is not None:
                    handle.caller(call.caller.name)
            return await work()
        except GatewayError as err:
            code, reason = err.code, err.reason_name
            self.telemetry.refusals.add(1, {"smartpush.error_reason": reason, "smartpush.caller": _caller_name(call)})
            if handle is not None:
                handle.error(err)
            await abort(context, err if err.rq_uid or not call.rq_uid else _with_rq_uid(err, call.rq_uid))
        except (grpc.aio.AbortError, asyncio.CancelledError):
            code = context.code() or _CANCELLED
            raise
        except Exception:
            code, reason = _INTERNAL, "ERROR_REASON_INTERNAL"
            log.exception("unexpected failure in %s", call.rpc, extra={"rpc": call.rpc, "rq_uid": call.rq_uid})
            await abort(context, internal(call.rq_uid))
        finally:
            if api:
                drain.leave()
                _log_call(call, code, reason, start)  # before the span ends: the line carries its ids
            if handle is not None:
                handle.end(code)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    def unary(
        self, service: str, method: str, behavior: Callable[[Any, Context], Awaitable[Any]], *, api: bool
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        """`api`: an API method (drained, traced, logged); otherwise health (always answers, silent)."""
        spans = RpcSpans(self.telemetry, service, method) if api and self.telemetry.enabled else None
        rpc = f"{service.rsplit('.', 1)[-1]}/{method}"
        full_method = f"{service}/{method}"
        drain = self.drain

        async def handler(request: Any, context: Context) -> Any:
            if api and drain.closing:
                await abort(context, shutting_down())
            call = CallInfo(rpc)
            _CALL.set(call)  # each call runs in its own task: the variable is the call's own

            async def work() -> Any:
                if isinstance(request, Undecodable):
                    raise request.error()
                return await behavior(request, context)

            handle = spans.begin(context) if spans is not None else None
            return await self._run(call, context, full_method, api, handle, work)

        return handler

    def unary_stream(
        self, service: str, method: str, behavior: Callable[[Any, Context], Any], *, api: bool
    ) -> Callable[[Any, Context], Awaitable[None]]:
        """A server-streaming method, whether it yields (a generator) or writes (grpc_health's Watch).
        API streams are admitted like unary calls (caller, grants, caps) and map errors the same way."""
        drain = self.drain
        rpc = f"{service.rsplit('.', 1)[-1]}/{method}"
        full_method = f"{service}/{method}"

        async def handler(request: Any, context: Context) -> None:
            if isinstance(request, Undecodable):
                await abort(context, request.error())
            if api and drain.closing:
                await abort(context, shutting_down())
            call = CallInfo(rpc)
            _CALL.set(call)

            async def work() -> None:
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    await result
                    return
                async for response in result:
                    await context.write(response)

            await self._run(call, context, full_method, api, None, work)

        return handler

    def stream_stream(
        self, behavior: Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]]
    ) -> Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]]:
        async def handler(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Undecodable):
                        await abort(context, request.error())
                    yield request

            async for response in behavior(checked(), context):
                yield response

        return handler

    def register(self, server: grpc.aio.Server, service: Any, servicer: object, *, api: bool = True) -> None:
        """Serve every method of `service` (a ServiceDescriptor) from `servicer`, each through the edge."""
        handlers = {m.name: self._handler(service, m, servicer, api) for m in service.methods}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))

    def _handler(
        self, service: Any, m: MethodDescriptor, servicer: object, api: bool
    ) -> grpc.RpcMethodHandler[Any, Any]:
        request_cls = message_factory.GetMessageClass(m.input_type)
        response_cls = message_factory.GetMessageClass(m.output_type)
        behavior = getattr(servicer, m.name)
        decode, encode = safe_deserializer(request_cls), response_cls.SerializeToString
        if not m.client_streaming and not m.server_streaming:
            return grpc.unary_unary_rpc_method_handler(
                self.unary(service.full_name, m.name, behavior, api=api),
                request_deserializer=decode,
                response_serializer=encode,
            )
        if not m.client_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self.unary_stream(service.full_name, m.name, behavior, api=api),
                request_deserializer=decode,
                response_serializer=encode,
            )
        if m.server_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self.stream_stream(behavior), request_deserializer=decode, response_serializer=encode
            )
        raise ValueError(f"{service.full_name}/{m.name}: client-streaming methods are not served")


def _with_rq_uid(err: GatewayError, rq_uid: str) -> GatewayError:
    err.rq_uid = rq_uid  # the edge stamps the call's RqUID on errors raised before one was known
    return err


def _caller_name(call: CallInfo) -> str:
    return call.caller.name if call.caller is not None else "(unidentified)"


def _log_call(call: CallInfo, code: grpc.StatusCode, reason: str | None, start: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    name: str = code._name_
    extra: dict[str, object] = {
        "rpc": call.rpc,
        "caller": _caller_name(call),
        "grpc_code": name,
        "duration_ms": round((time.perf_counter() - start) * 1000, 2),
        **call.fields,
    }
    if call.rq_uid:
        extra["rq_uid"] = call.rq_uid
    if reason:
        extra["reason"] = reason
    if not logs.write_direct(log, f"{call.rpc} {name}", extra):
        log.info("%s %s", call.rpc, name, extra=extra)
