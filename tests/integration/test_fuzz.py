"""Property-based fuzzing of every RPC of every service, over a real gateway process.

Hypothesis drives malformed messages (any field value, unknown enum numbers, NaN in Structs,
hostile strings), raw bytes and hostile JSON at the gateway (`serve --emulator`, its own
process, on loopback). Every answer must be precise: never UNKNOWN or INTERNAL, every error
with `ErrorInfo`, every answer small enough for a default client; the gateway serves afterwards.
Bounded: a fixed number of examples per property, no shrinking past a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smartpush.gateway.v1 import (
    delivery_service_pb2,
    permission_service_pb2,
    push_service_pb2,
    smartapp_service_pb2,
    template_service_pb2,
)

from tests.helpers import free_port, send_request

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "smartpush-gateway")

SERVICES = [
    push_service_pb2.DESCRIPTOR.services_by_name["PushService"],
    permission_service_pb2.DESCRIPTOR.services_by_name["PermissionService"],
    template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"],
    smartapp_service_pb2.DESCRIPTOR.services_by_name["SmartAppService"],
    delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"],
]
API_METHODS = [
    (f"/{s.full_name}/{m.name}", m.input_type) for s in SERVICES for m in s.methods if not m.server_streaming
]
JSON_PATHS = [p for p, d in API_METHODS if {"json", "message_json"} & set(d.fields_by_name)]
UNARY_PATHS = [p for p, _ in API_METHODS] + ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/List"]
# What a default client accepts of metadata (grpc.max_metadata_size is 8 KiB by default).
DEFAULT_CLIENT_METADATA = 8 * 1024
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("FUZZ_RANDOM") is None,  # CI repeatable; FUZZ_RANDOM=1 explores
)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gateway process with its built-in emulator; its log is checked at the end."""
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = {
        **os.environ,
        "SMARTPUSH_GATEWAY_STATE__SQLITE_PATH": str(tmp / "state.sqlite3"),
        "SMARTPUSH_GATEWAY_READINESS_CHECKS_TOKEN": "false",
    }
    log = (tmp / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [CLI, "serve", "--emulator", "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    assert proc.stdout is not None
    assert b"listening" in proc.stdout.readline(), "the gateway did not start"
    try:
        yield f"127.0.0.1:{port}"
        assert proc.poll() is None, "the gateway process died under fuzzing"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def call(channel: grpc.Channel, path: str, payload: bytes) -> tuple[grpc.StatusCode, Any]:
    """One unary call with raw bytes; the code and the trailing metadata of its answer."""
    rpc = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        _, outcome = rpc.with_call(payload, timeout=10)
    except grpc.RpcError as err:
        return err.code(), err.trailing_metadata()
    return grpc.StatusCode.OK, outcome.trailing_metadata()


def assert_precise(code: grpc.StatusCode, trailing: Any, where: str) -> None:
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), f"{where}: {code.name}"
    size = sum(len(k) + (len(v) if isinstance(v, bytes | str) else 0) for k, v in trailing or ())
    assert size < DEFAULT_CLIENT_METADATA // 2, f"{where}: {size} bytes of trailing metadata"
    if code == grpc.StatusCode.OK:
        return
    raw = dict(trailing or ()).get("grpc-status-details-bin")
    assert raw is not None, f"{where}: {code.name} without details"
    status = status_pb2.Status.FromString(raw)
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert infos, f"{where}: {code.name} without ErrorInfo"
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert info.domain == "smartpush.gateway", where
    assert info.reason.startswith("ERROR_REASON_"), where


# --- strategies ----------------------------------------------------------------------------------
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\r\n", "[::1", "http://[x]/", "http://a:99999/", "ftp://x", "ы" * 400]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=300, max_size=3000),
)
CALLBACK_URLS = st.one_of(
    st.sampled_from(
        [
            "http://[::1",
            "http://[zz]/cb",
            "https://ex\u00e4mple.org/cb",
            "http://example.org/cb\r\nX-Injected: 1",
            "http://example.org/\x00",
            "http://example.org:port/",
            "http://example.org:70000/",
            "//example.org/cb",
            "javascript:alert(1)",
        ]
    ),
    st.text(max_size=60).map(lambda t: "http://example.org/" + t),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


def _nested(depth: int, opener: str, closer: str) -> str:
    return opener * depth + closer * depth


HOSTILE_JSON = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.just(300_000).map(lambda n: '"' + "a" * n + '"'),  # past the size bound
    st.integers(min_value=30, max_value=5000).map(lambda d: _nested(d, "[", "]")),
    st.integers(min_value=30, max_value=2000).map(lambda d: '{"a":' * d + "1" + "}" * d),
    st.sampled_from(
        [
            '{"type": "smart_app_data", "smart_app_data": {"x": NaN}}',
            '{"type": "smart_app_data", "smart_app_data": {"x": Infinity}}',
            '{"type": "smart_app_data", "smart_app_data": {"x": 1e999}}',
            '{"type": "text", "text": "\\ud800"}',
            '{"type": "request_permissions", "permissions": ["push", 7]}',
            '{"action_id": "PAY_DIALOG_FINISHED", "parameters": {"payment_response": {"response_code": 99999999999}}}',
            '{"messageName": "TAKE_RUNTIME_PERMISSIONS", "payload": {"status_code": {"code": 123456789012345}}}',
            '{"messageName": "TAKE_RUNTIME_PERMISSIONS", "uuid": [], "payload": {"permitted_actions": []}}',
            '{"messageName": "X", "uuid": {"sub": {}}, "payload": {"permitted_actions": ["service_push"]}}',
            '{"messageName": "X", "uuid": {"sub": "s"}, "payload": {"permitted_actions": [], "app_info": 1}}',
            "[]",
            "",
            "\x00",
        ]
    ),
    st.text(max_size=50),
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        if field.name in ("json", "message_json"):
            return HOSTILE_JSON
        if field.name == "callback_url":
            return CALLBACK_URLS
        return HOSTILE_TEXT
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(min_value=-(2**31), max_value=2**31 - 1))
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=64 if t == FieldDescriptor.TYPE_DOUBLE else 32)
    bits = 64 if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64) else 32
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(min_value=0, max_value=2**32 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(min_value=0, max_value=2**64 - 1)
    return st.integers(min_value=-(2 ** (bits - 1)), max_value=2 ** (bits - 1) - 1)


def _struct_value(data: st.DataObject, depth: int) -> struct_pb2.Value:
    kind = data.draw(
        st.sampled_from(["number", "string", "bool", "null", "list", "struct"] if depth < 3 else ["number"])
    )
    value = struct_pb2.Value()
    if kind == "number":
        value.number_value = data.draw(st.floats(allow_nan=True, allow_infinity=True))
    elif kind == "string":
        value.string_value = data.draw(st.text(max_size=10))
    elif kind == "bool":
        value.bool_value = data.draw(st.booleans())
    elif kind == "null":
        value.null_value = struct_pb2.NULL_VALUE
    elif kind == "list":
        value.list_value.values.extend(_struct_value(data, depth + 1) for _ in range(data.draw(st.integers(0, 2))))
    else:
        for key in data.draw(st.lists(st.text(max_size=5), max_size=2)):
            value.struct_value.fields[key].CopyFrom(_struct_value(data, depth + 1))
    return value


def build(data: st.DataObject, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of `descriptor` with fields drawn at random, nested messages to a few levels."""
    msg = message_factory.GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Struct":
        for key in data.draw(st.lists(st.text(max_size=6), max_size=3)):
            msg.fields[key].CopyFrom(_struct_value(data, depth))  # type: ignore[attr-defined]
        return msg
    for field in descriptor.fields:
        if not data.draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for _ in range(data.draw(st.integers(0, 3))):
                key = data.draw(HOSTILE_TEXT)
                container = getattr(msg, field.name)
                if value_field.message_type is not None:
                    container[key].CopyFrom(build(data, value_field.message_type, depth + 1))
                else:
                    container[key] = data.draw(_scalar(value_field))
            continue
        repeated = field.is_repeated
        count = data.draw(st.integers(0, 3)) if repeated else 1
        for _ in range(count):
            if field.message_type is not None:
                if depth >= 4:
                    break
                sub = build(data, field.message_type, depth + 1)
                if repeated:
                    getattr(msg, field.name).add().CopyFrom(sub)
                else:
                    getattr(msg, field.name).CopyFrom(sub)
            else:
                value = data.draw(_scalar(field))
                if repeated:
                    getattr(msg, field.name).append(value)
                else:
                    setattr(msg, field.name, value)
    return msg


# --- properties ----------------------------------------------------------------------------------
@FUZZ
@given(path=st.sampled_from(UNARY_PATHS), payload=st.binary(max_size=200))
def test_raw_bytes_to_any_unary_method_are_answered_precisely(channel: grpc.Channel, path: str, payload: bytes) -> None:
    code, trailing = call(channel, path, payload)
    assert_precise(code, trailing, path)


@FUZZ
@given(data=st.data(), method=st.sampled_from(API_METHODS))
def test_malformed_messages_to_every_api_method_are_answered_precisely(
    channel: grpc.Channel, data: st.DataObject, method: tuple[str, Descriptor]
) -> None:
    path, descriptor = method
    code, trailing = call(channel, path, build(data, descriptor).SerializeToString())
    assert_precise(code, trailing, path)


@FUZZ
@given(data=st.data())
def test_sends_with_hostile_fields_are_answered_precisely(channel: grpc.Channel, data: st.DataObject) -> None:
    # Mostly valid requests with one part replaced: reaches deeper than fully random messages.
    req = send_request()
    part = data.draw(st.sampled_from(["callback_url", "delivery", "template_content", "sub", "profile", "credentials"]))
    if part == "callback_url":
        req.callback_url = data.draw(CALLBACK_URLS)
    elif part == "delivery":
        req.delivery.CopyFrom(build(data, req.delivery.DESCRIPTOR))  # type: ignore[arg-type]
    elif part == "template_content":
        req.delivery.template_content.CopyFrom(build(data, req.delivery.template_content.DESCRIPTOR))  # type: ignore[arg-type]
    elif part == "credentials":
        req.credentials.CopyFrom(build(data, req.credentials.DESCRIPTOR))  # type: ignore[arg-type]
    else:
        setattr(req, part, data.draw(HOSTILE_TEXT))
    req.validate_only = data.draw(st.booleans())
    code, trailing = call(channel, "/smartpush.gateway.v1.PushService/Send", req.SerializeToString())
    assert_precise(code, trailing, f"Send({part})")


@FUZZ
@given(
    path=st.sampled_from(
        [p for p, d in API_METHODS if "json" in d.fields_by_name or "message_json" in d.fields_by_name]
    ),
    text=HOSTILE_JSON,
)
def test_hostile_json_is_refused_or_read_never_crashes(channel: grpc.Channel, path: str, text: str) -> None:
    descriptor = dict(API_METHODS)[path]
    msg = message_factory.GetMessageClass(descriptor)()
    setattr(msg, "json" if "json" in descriptor.fields_by_name else "message_json", text)
    code, trailing = call(channel, path, msg.SerializeToString())
    assert_precise(code, trailing, path)


def test_streams_refuse_undecodable_bytes(channel: grpc.Channel) -> None:
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as caught:
        list(watch(b"\xff\xff\xff", timeout=5))
    assert_precise(caught.value.code(), caught.value.trailing_metadata(), "Health/Watch")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.RpcError) as caught:
        list(info(iter([b"\x0a\xff\xff"]), timeout=5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_gateway_serves_after_fuzzing(channel: grpc.Channel) -> None:
    # Runs after the properties above (file order): the same process still answers correctly.
    code, _ = call(channel, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest().SerializeToString())
    assert code == grpc.StatusCode.OK
    rpc = channel.unary_unary(
        "/smartpush.gateway.v1.PushService/Send",
        request_serializer=push_service_pb2.SendRequest.SerializeToString,
        response_deserializer=push_service_pb2.SendResponse.FromString,
    )
    response = rpc(send_request(), timeout=10)
    assert [r.status_code for r in response.results] == [0]
