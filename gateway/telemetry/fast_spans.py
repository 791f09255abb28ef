"""The SDK's tracer with a lighter span: the same sampler, ids, resource, scope, limits and span
processors (so the same batching, exporters and OTEL_* configuration), a cheaper span object.

The SDK's `Span` takes a lock per attribute, keeps attributes in a locked `BoundedAttributes`,
builds two `BoundedList`s per span and copies itself into a fresh `ReadableSpan` when it ends;
two spans per Send made that a large share of the event loop's time at full sampling. Spans
here are only touched from the event loop that made them (the gateway's spans never cross
threads), so a plain dict does: values are cleaned by the SDK's own function, the count limit
evicts the oldest like `BoundedAttributes`, and the span itself goes to `on_end` (it refuses
changes once ended, so nothing moves under the exporter). Mirrors opentelemetry-sdk 1.45.2; a
test encodes a span from each tracer and requires the same bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from random import getrandbits
from time import time_ns
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk._shared_internal import BatchProcessor
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from gateway.current_span import reads_context_directly

log = logging.getLogger(__name__)
_UNSET = Status(StatusCode.UNSET)
_PLAIN = (bool, int, float)
_SCALAR = (str, bool, int, float)  # sequence items that need no cleaning (strings: without a length limit)
_SAMPLED = TraceFlags.SAMPLED
_KEPT_BITS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID  # the flags a child's context takes from the decision
_FLAGS = tuple(TraceFlags(bits) for bits in range(_KEPT_BITS + 1))
_RANDOM_ID = TraceFlags.RANDOM_TRACE_ID
_LOW_64 = (1 << 64) - 1  # TraceIdRatioBased.TRACE_ID_LIMIT: the bits of a trace id its test reads
_NO_STATE = DEFAULT_TRACE_STATE
_INVALID_TRACE = trace_api.INVALID_TRACE_ID
_INVALID_SPAN = trace_api.INVALID_SPAN_ID


def _batch_queues(processor: Any) -> tuple[BatchProcessor[Any], ...] | None:
    """The batch queues behind the provider's processors when every one is the SDK's
    BatchSpanProcessor (whose on_start and _on_ending do nothing); None otherwise."""
    if type(processor) is not sdk_trace.SynchronousMultiSpanProcessor:
        return None
    found = processor._span_processors
    if not all(type(p) is BatchSpanProcessor for p in found):
        return None
    return tuple(p._batch_processor for p in found)  # type: ignore[attr-defined]


class _LastQueues:
    """_batch_queues of the last processor asked about, until its processors change (adding one
    replaces the provider's tuple of them). One tuple, swapped whole: a thread never reads one
    processor's queues under another's."""

    def __init__(self) -> None:
        self._last: tuple[Any, Any, tuple[BatchProcessor[Any], ...] | None] = (None, None, None)

    def __call__(self, processor: Any) -> tuple[BatchProcessor[Any], ...] | None:
        listed = getattr(processor, "_span_processors", None)
        last = self._last
        if processor is not last[0] or listed is not last[1]:
            last = self._last = (processor, listed, _batch_queues(processor))
        return last[2]


_only_batching = _LastQueues()


def _enqueue(queue: BatchProcessor[Any], span: Any) -> None:
    """BatchProcessor.emit (SDK 1.45.2) without its fork check per span: os.getpid is a system
    call, and the processor re-initialises in a forked child through os.register_at_fork."""
    q = queue._queue
    if queue._shutdown or len(q) == queue._max_queue_size:
        queue.emit(span)  # the SDK's own refusal: its warning and dropped-items count
        return
    q.appendleft(span)
    if len(q) >= queue._max_export_batch_size and not queue._worker_awaken.is_set():
        queue._worker_awaken.set()


class FastSpan(sdk_trace.Span):
    """An SDK span (readable by every exporter) without its per-attribute locking and copies."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        tracer: FastTracer,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[trace_api.Link],
        record_exception: bool,
        set_status_on_exception: bool,
        record_end_metrics: Callable[[], None] | None = None,
    ) -> None:
        # Not the SDK __init__: that is what this class exists to avoid. These are the fields the
        # SDK's ReadableSpan and Span read.
        limits = tracer._span_limits
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._resource = tracer.resource
        self._status = _UNSET
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = tracer.span_processor
        self._limits = limits
        self._lock = tracer._no_lock  # type: ignore[assignment]
        self._max_attributes = limits.max_span_attributes
        self._max_value_len = limits.max_span_attribute_length
        self._dropped_attributes = 0
        self._attributes: dict[str, types.AnyValue] = {}
        if attributes:
            self.set_attributes(attributes)
        # Events and links are rare on the gateway's spans: their bounded lists are made on first use.
        self._events = ()
        self._links = self._new_links(links) if links else ()
        self._record_end_metrics = record_end_metrics

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        stored = self._attributes
        kind = type(value)
        # The usual case in one step: a new key, a plain value, room left, no length limit to apply.
        if (
            self._end_time is None
            and type(key) is str
            and key
            and key not in stored
            and (kind in _PLAIN or (kind is str and self._max_value_len is None))
            and (self._max_attributes is None or len(stored) < self._max_attributes)
        ):
            stored[key] = value
            return
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        stored: dict[str, types.AnyValue] = self._attributes
        limit, most = self._max_value_len, self._max_attributes
        for key, value in attributes.items():
            if type(key) is not str or not key:
                self._dropped_attributes += 1
                continue
            kind = type(value)
            if kind is str:
                if limit is not None and len(value) > limit:  # type: ignore[arg-type]
                    value = value[:limit]  # type: ignore[index]
            elif kind not in _PLAIN:
                if (kind is list or kind is tuple) and limit is None and all(type(v) in _SCALAR for v in value):  # type: ignore[union-attr]
                    value = tuple(value)  # type: ignore[arg-type]
                else:
                    value = _clean_attribute_value(value, limit)
            if key in stored:
                del stored[key]  # re-set keys move to the end, as in BoundedAttributes
            elif most is not None and len(stored) >= most:
                self._dropped_attributes += 1
                if most == 0:
                    continue
                del stored[next(iter(stored))]
            stored[key] = value

    def _add_event(self, event: Any) -> None:
        if self._end_time is not None:
            log.warning("Tried calling _add_event on an ended span.")
            return
        if type(self._events) is tuple:
            self._events = self._new_events()  # type: ignore[no-untyped-call]
        self._events.append(event)  # type: ignore[attr-defined]

    def _add_link(self, link: trace_api.Link) -> None:
        if self._end_time is not None:
            log.warning("Tried calling _add_link on an ended span.")
            return
        if type(self._links) is tuple:
            self._links = self._new_links(())
        self._links.append(link)  # type: ignore[attr-defined]

    def start(self, start_time: int | None = None, parent_context: context_api.Context | None = None) -> None:
        if self._start_time is not None:
            log.warning("Calling start() on a started span.")
            return
        self._start_time = start_time if start_time is not None else time_ns()
        processor = self._span_processor
        if _only_batching(processor) is None:  # BatchSpanProcessor.on_start does nothing
            processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        if self._start_time is None:
            raise RuntimeError("Calling end() on a not started span.")
        if self._end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        if self._record_end_metrics:
            self._record_end_metrics()
        processor = self._span_processor
        queues = _only_batching(processor) if _FORK_HOOKS else None
        if queues is None:
            processor._on_ending(self)
            processor.on_end(self)
        elif self._context is not None and self._context[3] & _SAMPLED:  # BatchSpanProcessor.on_end's test
            for queue in queues:
                _enqueue(queue, self)


reads_context_directly(FastSpan)
_FORK_HOOKS = hasattr(os, "register_at_fork")  # what lets _enqueue skip the fork check


class _NoLock:
    """Stands in for the SDK span's lock in the methods it inherits (add_event, update_name...):
    the span is only used on the event loop that made it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class FastTracer(sdk_trace.Tracer):
    """The SDK tracer's `start_span` (sampling, ids, flags, trace state) making `FastSpan`s."""

    _no_lock = _NoLock()
    _sdk: sdk_trace.Tracer

    _lean = False  # a sampler _start_lean decides for, random ids, no SDK self-metrics
    _parent_based = False  # ParentBased with its default delegates: a valid parent decides
    _bound = 1 << 64  # what a root's trace id's low 64 bits must be below to be sampled (always_on)

    @classmethod
    def of(cls, tracer: sdk_trace.Tracer) -> FastTracer:
        fast = cls.__new__(cls)
        fast.__dict__.update(tracer.__dict__)  # same sampler, processors, scope, limits
        fast._sdk = tracer
        # The SDK's samplers as OTEL_TRACES_SAMPLER names them (always_on, always_off,
        # traceidratio, each bare or parentbased_), with random ids and no SDK self-metrics, decide
        # in a few lines what their objects decide in a dozen calls; anything else takes their path.
        s: Any = tracer.sampler
        fast._parent_based = (
            _decides_as(s, ParentBased)
            and s._remote_parent_sampled is ALWAYS_ON
            and s._local_parent_sampled is ALWAYS_ON
            and s._remote_parent_not_sampled is ALWAYS_OFF
            and s._local_parent_not_sampled is ALWAYS_OFF
        )
        root = s._root if fast._parent_based else s
        bound = _root_bound(root)
        fast._lean = (
            bound is not None
            and (fast._parent_based or not isinstance(s, ParentBased))
            and type(tracer.id_generator) is RandomIdGenerator
            and type(tracer._tracer_metrics) is NoOpTracerMetrics
        )
        if bound is not None:
            fast._bound = bound
        return fast

    # Read through the SDK's tracer, which its provider keeps current (a resource updated after a
    # fork, a tracer configurator set later); these properties take precedence over the copies.
    @property
    def resource(self) -> Any:  # type: ignore[override]
        return self._sdk.resource

    @property
    def _tracer_config(self) -> Any:  # type: ignore[override]
        return self._sdk._tracer_config

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        links = links or ()
        if self._lean and not links and self._tracer_config.is_enabled:
            return self._start_lean(
                name, context, kind, attributes, start_time, record_exception, set_status_on_exception
            )
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if not self._is_enabled():
            return trace_api.NonRecordingSpan(context=parent)  # type: ignore[arg-type]
        ids = self.id_generator
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = ids.generate_trace_id()
            random_trace_id = ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id, ids.generate_span_id(), is_remote=False, trace_flags=TraceFlags(flags),
            trace_state=result.trace_state,
        )  # fmt: skip
        end_metrics = self._tracer_metrics.start_span(parent, result.decision)
        if not result.decision.is_recording():  # type: ignore[no-untyped-call]
            return trace_api.NonRecordingSpan(context=span_context)
        span = FastSpan(
            name, span_context, parent, self, kind, result.attributes, links, record_exception,
            set_status_on_exception, end_metrics,
        )  # fmt: skip
        span.start(start_time=start_time, parent_context=context)
        return span

    def _start_lean(
        self,
        name: str,
        context: context_api.Context | None,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> trace_api.Span:
        """start_span as the SDK decides it under the samplers `of` accepts: a root is sampled when
        its trace id's low 64 bits are below the bound (TraceIdRatioBased's test; always_on and
        always_off are the bounds 2**64 and 0); under ParentBased a valid parent decides (its
        sampled flag), otherwise the root sampler decides on the parent's trace id; the parent's
        trace state and random-trace-id bit are kept; trace id then span id drawn from `random`
        as the SDK draws them, for dropped spans too."""
        # SpanContext fields by tuple index (trace_id, span_id, is_remote, trace_flags,
        # trace_state, is_valid): its properties are a Python call each.
        found = (context if context is not None else context_api.get_current()).get(_SPAN_KEY)
        if type(found) is FastSpan:
            parent: SpanContext | None = found._context
        elif found is None:
            parent = None
        else:
            parent = found.get_span_context() if isinstance(found, trace_api.Span) else None
        if parent is None or not parent[5]:
            parent = None
            trace_id = getrandbits(128)
            while trace_id == _INVALID_TRACE:
                trace_id = getrandbits(128)
            random_bit, state = _RANDOM_ID, _NO_STATE
            sampled = trace_id & _LOW_64 < self._bound
        else:
            trace_id, state = parent[0], parent[4]
            random_bit = parent[3] & _RANDOM_ID
            sampled = bool(parent[3] & _SAMPLED) if self._parent_based else trace_id & _LOW_64 < self._bound
        span_id = getrandbits(64)
        while span_id == _INVALID_SPAN:
            span_id = getrandbits(64)
        # What SpanContext.__new__ builds (ids drawn or inherited valid: is_valid is True).
        flags = _FLAGS[random_bit | _SAMPLED] if sampled else _FLAGS[random_bit]
        span_context = tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state, True))
        if not sampled:  # the sampler's DROP: a non-recording span that still carries the context
            return trace_api.NonRecordingSpan(context=span_context)
        span = FastSpan(
            name, span_context, parent, self, kind, attributes, (), record_exception, set_status_on_exception, None
        )
        span.start(start_time=start_time, parent_context=context)
        return span


def _root_bound(sampler: Any) -> int | None:
    """The bound of `_start_lean`'s test for a root sampler it can decide for; None for others."""
    if sampler is ALWAYS_ON:
        return 1 << 64
    if sampler is ALWAYS_OFF:
        return 0
    if _decides_as(sampler, TraceIdRatioBased):
        return int(sampler.bound)
    return None


def _decides_as(sampler: Any, kind: Any) -> bool:
    """`sampler` is a `kind` deciding with `kind`'s own should_sample: the SDK's subclasses that
    only choose the root (ParentBasedTraceIdRatio, which OTEL_TRACES_SAMPLER makes) are."""
    return isinstance(sampler, kind) and type(sampler).should_sample is kind.should_sample


def fast_tracer(tracer: Any) -> Any:
    """`tracer` with FastSpans when it is the SDK's own tracer; any other tracer as it is."""
    return FastTracer.of(tracer) if type(tracer) is sdk_trace.Tracer else tracer
