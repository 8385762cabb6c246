"""OpenTelemetry traces of a run: run → agent → turn → LLM call / tool call, across workers.

Optional: `pip install 'crewq[tracing]'`, then `CREWQ_TRACING=otlp` in every crewq process (the
exporter reads the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`...) or
`CREWQ_TRACING=console`. Off (the default, or without the packages) every function here returns
at once and nothing is imported.

A run and an agent attempt outlive any task, so their spans are written when they end, by the
process that ends them, with start times from the ledger and span ids derived from their ids (the
run's from the run id, an attempt's from run, agent and attempt). A turn on any worker so names
its parent without asking anyone. A turn is a span in the worker that runs it, its LLM call a
child; each tool call task carries the turn's context in its message headers (W3C `traceparent`)
and is a child of the turn that asked for it. The trace id is the submitter's when it submits
inside a span of its own, else derived from the run id; the run hash keeps it (`trace_id`).
Attributes carry ids, names, token counts and outcomes: never a prompt, a reply or a secret.
"""

from __future__ import annotations

import atexit
import contextvars
import hashlib
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from crewq.config.settings import Settings
from crewq.config.states import RunStatus

_state: dict[str, Any] = {"pid": None, "tracer": None, "provider": None}
_lock = threading.Lock()
_forced_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("crewq_span_id", default=None)
_forced_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("crewq_trace_id", default=None)
TRACEPARENT = "traceparent"


def _derived(*parts: Any, bits: int) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def run_trace_id(run_id: str) -> int:
    return _derived("trace", run_id, bits=128)


def run_span_id(run_id: str) -> int:
    return _derived("run", run_id, bits=64)


def agent_span_id(run_id: str, agent_id: str, attempt: int) -> int:
    return _derived("agent", run_id, agent_id, attempt, bits=64)


# -- the tracer of this process ---------------------------------------------------------------------

def tracer():
    """This process's tracer, or None when tracing is off. Set up once per process (a forked
    pool child sets up its own: the parent's export thread does not survive a fork)."""
    if _state["pid"] == os.getpid():
        return _state["tracer"]
    with _lock:
        if _state["pid"] != os.getpid():
            mode = Settings.env_value("tracing")
            if mode == "off":
                _state.update(tracer=None, provider=None)
                _state["pid"] = os.getpid()  # last: other threads read the tracer once the pid matches
            else:
                install(_provider(_exporter(mode)))
    return _state["tracer"]


def install(provider) -> None:
    """Use `provider` (an SDK TracerProvider built by `_provider`) in this process."""
    _state.update(provider=provider, tracer=provider.get_tracer("crewq"))
    _state["pid"] = os.getpid()  # last: other threads read the tracer once the pid matches


def shutdown() -> None:
    """Export what is buffered (worker shutdown, process exit)."""
    provider = _state["provider"]
    if provider is not None and _state["pid"] == os.getpid():
        provider.shutdown()
        _state.update(tracer=None, provider=None)


def _exporter(mode: str):
    try:
        if mode == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            return OTLPSpanExporter()
        if mode == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter
            return ConsoleSpanExporter()
    except ImportError as exc:
        raise RuntimeError(f"CREWQ_TRACING={mode} needs the tracing extra: pip install 'crewq[tracing]' "
                           f"({exc})") from None
    raise RuntimeError(f"CREWQ_TRACING={mode!r}: use otlp or console")


def _provider(exporter, batch: bool = True):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class LedgerIds(RandomIdGenerator):
        """Random ids, except where a span's id is derived from the ledger's ids (runs, agents)."""

        def generate_span_id(self) -> int:
            return _forced_span_id.get() or super().generate_span_id()

        def generate_trace_id(self) -> int:
            return _forced_trace_id.get() or super().generate_trace_id()

    service = os.environ.get("OTEL_SERVICE_NAME", "crewq")
    provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=LedgerIds())
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    atexit.register(shutdown)
    return provider


def _flush_on_worker_exit() -> None:
    # A prefork pool child leaves with os._exit, past atexit: flush on Celery's signal instead.
    from celery import signals
    signals.worker_process_shutdown.connect(lambda **_: shutdown(), weak=False)
    signals.worker_shutdown.connect(lambda **_: shutdown(), weak=False)


_flush_on_worker_exit()


# -- contexts -----------------------------------------------------------------------------------------

def _context(trace_id: int, span_id: int):
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    parent = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def trace_id_of(run: dict, run_id: str) -> int:
    return int(run["trace_id"], 16) if run.get("trace_id") else run_trace_id(run_id)


def submit_fields(run_id: str) -> dict[str, str]:
    """What the run hash keeps at submission: the trace id, and the submitter's span if it has one."""
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return {}
    return {"trace_id": f"{current.trace_id:032x}", "trace_parent": f"{current.span_id:016x}"}


def inject() -> dict[str, str]:
    """Headers that carry the current span to another task."""
    if tracer() is None:
        return {}
    from opentelemetry.propagate import inject as otel_inject
    carrier: dict[str, str] = {}
    otel_inject(carrier)
    return {TRACEPARENT: carrier[TRACEPARENT]} if TRACEPARENT in carrier else {}


# -- spans --------------------------------------------------------------------------------------------

@contextmanager
def turn_span(run: dict, run_id: str, agent_id: str, attempt: int, turn: int, host: str | None) -> Iterator[Any]:
    """One turn, a child of its agent attempt's span."""
    found = tracer()
    if found is None:
        yield None
        return
    parent = _context(trace_id_of(run, run_id), agent_span_id(run_id, agent_id, attempt))
    # Celery's Retry and Ignore (a turn that hands over to its tool calls) leave as exceptions:
    # they are not errors, so the outcome is set from the turn's envelope instead (`outcome`).
    with found.start_as_current_span(f"turn {agent_id}#{turn}", context=parent, record_exception=False,
                                     set_status_on_exception=False, attributes={
            "crewq.run_id": run_id, "crewq.agent_id": agent_id, "crewq.attempt": attempt, "crewq.turn": turn,
            "host.name": host or ""}) as span:
        yield span


def outcome(span: Any, envelope: dict) -> None:
    """Mark a turn's span with what the turn returned."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode
    span.set_attribute("crewq.outcome", envelope.get("status", ""))
    if envelope.get("status") == "failed":
        span.set_status(Status(StatusCode.ERROR, (envelope.get("error") or "failed")[:500]))


@contextmanager
def child_span(name: str, **attributes: Any) -> Iterator[Any]:
    """A child of the current span (an LLM call inside its turn)."""
    found = tracer()
    if found is None:
        yield None
        return
    with found.start_as_current_span(name, attributes=_clean(attributes)) as span:
        yield span


@contextmanager
def tool_span(request_headers: Any, run: dict, run_id: str, agent_id: str, attempt: int, turn: int,
              index: int, name: str, host: str | None) -> Iterator[Any]:
    """A tool call, a child of the turn that asked for it (from the message headers)."""
    found = tracer()
    if found is None:
        yield None
        return
    from opentelemetry.propagate import extract
    traceparent = request_headers.get(TRACEPARENT) if request_headers is not None else None
    parent = (extract({TRACEPARENT: traceparent}) if traceparent
              else _context(trace_id_of(run, run_id), agent_span_id(run_id, agent_id, attempt)))
    with found.start_as_current_span(f"tool {name}", context=parent, attributes={
            "crewq.run_id": run_id, "crewq.agent_id": agent_id, "crewq.turn": turn, "crewq.tool.index": index,
            "crewq.tool.name": name, "host.name": host or ""}) as span:
        yield span


def agent_ended(run: dict, run_id: str, agent_id: str, attempt: int, status: str, started_at: float,
                ended_at: float, error: str | None = None) -> None:
    """The span of an agent attempt, written when it settles."""
    _ended(f"agent {agent_id}", _context(trace_id_of(run, run_id), run_span_id(run_id)),
           agent_span_id(run_id, agent_id, attempt), started_at, ended_at, status, error,
           {"crewq.run_id": run_id, "crewq.agent_id": agent_id, "crewq.attempt": attempt})


def run_ended(run: dict, run_id: str, status: str, ended_at: float) -> None:
    """The run's span, written when it ends; a child of the submitter's span, if there was one."""
    trace_id = trace_id_of(run, run_id)
    if run.get("trace_parent"):
        parent, root_trace = _context(trace_id, int(run["trace_parent"], 16)), None
    else:
        from opentelemetry.context import Context
        parent, root_trace = Context(), trace_id  # a root span: its trace id comes from the generator
    started = float(run.get("started_at") or run.get("submitted_at") or ended_at)
    _ended(f"run {run.get('name') or run_id}", parent, run_span_id(run_id), started, ended_at, status,
           run.get("error") or None, {"crewq.run_id": run_id, "crewq.crew": run.get("name", "")},
           root_trace=root_trace)


def _ended(name: str, parent, span_id: int, started_at: float, ended_at: float, status: str,
           error: str | None, attributes: dict[str, Any], root_trace: int | None = None) -> None:
    found = tracer()
    if found is None:
        return
    from opentelemetry.trace import Status, StatusCode
    tokens = _forced_span_id.set(span_id), _forced_trace_id.set(root_trace)
    try:
        span = found.start_span(name, context=parent, start_time=int(started_at * 1e9),
                                attributes=_clean({**attributes, "crewq.status": status}))
    finally:
        _forced_span_id.reset(tokens[0])
        _forced_trace_id.reset(tokens[1])
    if status in (RunStatus.FAILED, RunStatus.CANCELLED):  # an agent's failed is the same string
        span.set_status(Status(StatusCode.ERROR, (error or status)[:500]))
    span.end(end_time=int(max(ended_at, started_at) * 1e9))


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}
