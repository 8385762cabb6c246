"""OpenTelemetry spans: run → agent → turn → LLM call / tool call, in one process and across workers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from crewq.config.loader import load_crew
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers import tracing

from helpers import write_crew

CREW = """
    runtime: {name: traced, llm_provider: scripted}
    task: {input: "the secret word is {word}"}
    tools:
      - {name: echo, python: "fakes.sample_tools:slow_echo"}
    agents:
      - id: researcher
        tools: [echo]
        script:
          - tool_calls: [{name: echo, arguments: {text: one, delay: 0.5}}, {name: echo, arguments: {text: two, delay: 0.5}},
                         {name: echo, arguments: {text: three, delay: 0.5}}, {name: echo, arguments: {text: four, delay: 0.5}}]
          - text: "found {tool_results}"
      - {id: writer, depends_on: [researcher], script: [{text: "wrote it"}]}
    """
CALLER_TRACE, CALLER_SPAN = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7


def submit_as_caller(app, path, **inputs):
    """Submit inside a span of the caller's own, as an app that traces its requests would."""
    caller = NonRecordingSpan(SpanContext(CALLER_TRACE, CALLER_SPAN, is_remote=False,
                                          trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    with trace.use_span(caller):
        return submit_loaded(app, load_crew(path), inputs)


def check_tree(spans: list[dict], run_id: str) -> None:
    """spans: {name, trace, id, parent, attrs}. The tree run → agent → turn → llm_call / tool."""
    assert {s["trace"] for s in spans} == {CALLER_TRACE}
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    (run,) = by_name["run traced"]
    assert run["parent"] == CALLER_SPAN and run["id"] == tracing.run_span_id(run_id)
    assert run["attrs"]["crewq.status"] == "succeeded"
    agents = {a: by_name[f"agent {a}"][0] for a in ("researcher", "writer")}
    assert all(a["parent"] == run["id"] for a in agents.values())
    turns = {name: by_name[name][0] for name in ("turn researcher#0", "turn researcher#1", "turn writer#0")}
    assert turns["turn researcher#0"]["parent"] == agents["researcher"]["id"]
    assert turns["turn researcher#1"]["parent"] == agents["researcher"]["id"]
    assert turns["turn writer#0"]["parent"] == agents["writer"]["id"]
    llm_parents = sorted(s["parent"] for s in by_name["llm_call"])
    assert llm_parents == sorted(t["id"] for t in turns.values())
    assert all(s["attrs"]["gen_ai.system"] == "scripted" for s in by_name["llm_call"])
    tools = by_name["tool echo"]
    assert len(tools) == 4 and {t["parent"] for t in tools} == {turns["turn researcher#0"]["id"]}
    shown = repr([s["attrs"] for s in spans])
    assert "tides" not in shown and "found" not in shown  # no prompt or reply text in attributes


@pytest.fixture
def memory_spans():
    exporter = InMemorySpanExporter()
    tracing.install(tracing._provider(exporter, batch=False))
    yield exporter
    tracing.shutdown()


def test_spans_of_a_run_in_one_process(memory_spans, worker, tmp_path):
    run_id = submit_as_caller(worker, write_crew(tmp_path, CREW), word="tides")
    assert Client(worker).wait(run_id, timeout=60).output == "wrote it"
    spans = [{"name": s.name, "trace": s.context.trace_id, "id": s.context.span_id,
              "parent": s.parent.span_id if s.parent else None, "attrs": dict(s.attributes)}
             for s in memory_spans.get_finished_spans()]
    check_tree(spans, run_id)


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: decodes ExportTraceServiceRequest protobufs."""

    def __init__(self):
        self.spans: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            outer.spans.append({
                                "name": span.name, "trace": int.from_bytes(span.trace_id, "big"),
                                "id": int.from_bytes(span.span_id, "big"),
                                "parent": int.from_bytes(span.parent_span_id, "big") or None,
                                "attrs": {a.key: _value(a.value) for a in span.attributes}})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def test_spans_cross_workers_over_otlp(app, supervisor, worker_processes, tmp_path):
    collector = Collector()
    try:
        env = {"CREWQ_TRACING": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        hosts = [worker_processes.start(name, concurrency=2, env=env) for name in ("t1", "t2")]
        run_id = submit_as_caller(app, write_crew(tmp_path, CREW), word="tides")
        assert Client(app).wait(run_id, timeout=60).output == "wrote it"
        worker_processes.stop_all()  # a warm shutdown exports what the workers buffered
        check_tree(collector.spans, run_id)
        assert {s["attrs"].get("host.name") for s in collector.spans} >= set(hosts)
    finally:
        collector.close()
