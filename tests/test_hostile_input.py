"""Crew files and submissions from someone else: bounded parsing, refused numbers, checked arguments."""

from __future__ import annotations

import json
import textwrap
import tracemalloc

import pytest

from crewq.config.errors import ConfigError
from crewq.config.limits import Limits
from crewq.config.loader import load_crew, load_crew_text
from crewq.scheduler.runs import Client
from crewq.workers.bounds import arguments_problem, bound_result, check_reply

from helpers import write_crew

GOOD = textwrap.dedent("""
    runtime: {llm_provider: scripted}
    agents:
      - id: a
        script: [{text: hi}]
    """)


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nruntime: {{llm_provider: scripted}}\nagents: [{{id: a, script: [{{text: hi}}]}}]\n" \
        f"tools: [{{name: x, extra: {{bomb: *a{levels}}}}}]\n"


def test_an_alias_bomb_is_refused_cheaply(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(), encoding="utf-8")
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            load_crew(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "bomb.yaml:1: YAML anchors (&a0) are not allowed" in str(info.value)
    assert peak < 100 * 1024 * 1024


def test_anchors_alone_are_refused_too():
    with pytest.raises(ConfigError, match=r"anchors \(&base\)"):
        load_crew_text("runtime: &base {llm_provider: scripted}\nagents: [{id: a}]\n")


def test_a_file_over_the_size_limit_is_not_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "# " + "x" * (1024 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"over the limit of 1,048,576 bytes \(policy limits.max_file_bytes\)"):
        load_crew(path)
    with pytest.raises(ConfigError, match="limits.max_file_bytes"):
        load_crew_text(path.read_text())
    assert load_crew_text(path.read_text(), limits=Limits(max_file_bytes=2 * 1024 * 1024)).crew.agents[0].id == "a"


@pytest.mark.parametrize("text", ["[" * 20_000 + "]" * 20_000, "".join("{a: " for _ in range(5000)) + "1" + "}" * 5000,
                                  "\n".join("  " * i + "- " for i in range(500)) + "x"])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(text):
    with pytest.raises(ConfigError) as info:
        load_crew_text(text)
    assert "nested deeper than 50 levels (policy limits.max_depth)" in str(info.value)


def test_duplicate_keys_name_both_lines():
    text = "runtime: {llm_provider: scripted}\nagents:\n  - id: a\n    goal: one\n    goal: two\n"
    with pytest.raises(ConfigError) as info:
        load_crew_text(text, "crew.yaml")
    assert "crew.yaml:5: duplicate key 'goal' (lines 4 and 5)" in str(info.value)
    with pytest.raises(ConfigError, match=r"duplicate key 'runtime' \(lines 1 and 3\)"):
        load_crew_text("runtime: {}\nagents: [{id: a}]\nruntime: {}\n")


@pytest.mark.parametrize("field, value, message", [
    ("timeout", "1e309", "finite"),
    ("timeout", ".inf", "finite"),
    ("timeout", ".nan", "finite"),
    ("restart_window", "'1e309'", "finite"),
    ("timeout", "'99999999d'", "less than or equal to 31536000"),
    ("max_turns", str(10 ** 32), "less than or equal to 10000"),
    ("max_restarts", str(10 ** 20), "less than or equal to 1000"),
    ("max_turns", "1" * 5000, "malformed YAML"),
])
def test_absurd_numbers_are_refused(field, value, message):
    text = f"runtime: {{llm_provider: scripted}}\nagents:\n  - id: a\n    {field}: {value}\n    script: [{{text: hi}}]\n"
    with pytest.raises(ConfigError) as info:
        load_crew_text(text, "crew.yaml")
    assert message in str(info.value) and (field in str(info.value) or message == "malformed YAML")


def test_nan_temperature_is_refused():
    text = "runtime: {llm_provider: scripted}\nagents:\n  - id: a\n    llm: {temperature: .nan}\n"
    with pytest.raises(ConfigError, match="agents\\[0\\].llm.temperature"):
        load_crew_text(text)


def test_stored_replies_arguments_and_results_are_bounded():
    limits = Limits(max_reply_chars=100, max_tool_argument_chars=50, max_tool_result_chars=200)
    with pytest.raises(ConfigError, match=r"agent 'a'.s LLM reply .* \(policy limits.max_reply_chars\)"):
        check_reply({"text": "x" * 200}, limits, "a")
    assert "limits.max_tool_argument_chars" in arguments_problem({"q": "x" * 60}, limits)
    assert arguments_problem({"q": "x"}, limits) is None
    result = bound_result({"content": "y" * 1000, "is_error": False, "structured": ["z" * 1000]}, limits)
    assert len(json.dumps(result)) <= 200 and result["structured"] is None
    assert "limits.max_tool_result_chars" in result["content"]


# -- the door ---------------------------------------------------------------------------------------

def test_send_task_with_wrong_types_gets_clear_errors(worker, redis_url):
    from celery import Celery

    from crewq.workers.app import SUBMIT_TASK
    other = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)
    other.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
    for args, kwargs, expected in [
            ([123], {}, "the crew must be YAML text (a string), not int"),
            ([GOOD], {"inputs": ["topic"]}, "inputs must map names to strings, not list"),
            ([GOOD], {"inputs": {"topic": 5}}, "'topic' maps to int"),
            ([GOOD], {"task": {"x": 1}}, "the task must be a string, not dict"),
            ([GOOD], {"task": "t" * 300_000}, "limits.max_task_chars"),
            ([GOOD], {"inputs": {"topic": "t" * 200_000}}, "limits.max_input_chars"),
            (["a: &x 1\nb: *x\n"], {}, "anchors"),
    ]:
        with pytest.raises(Exception) as info:
            other.send_task(SUBMIT_TASK, args=args, kwargs=kwargs, queue="crewq.control").get(timeout=30)
        assert expected in str(info.value), (args, kwargs, str(info.value))
        assert "AttributeError" not in repr(info.value)
    other.close()


def test_a_task_too_big_once_filled_is_refused_before_it_is_built(worker, redis_url):
    """9 KB of crew and a 100 KB input that the task names 1000 times: 100 M characters, counted, never built."""
    import tracemalloc

    from celery import Celery

    from crewq.workers.app import SUBMIT_TASK
    other = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)
    other.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
    crew = GOOD.replace("runtime:", "task: {input: '" + "{a}" * 1000 + "'}\nruntime:")
    tracemalloc.start()  # the in-process worker's allocations are this process's
    try:
        with pytest.raises(Exception) as info:
            other.send_task(SUBMIT_TASK, args=[crew], kwargs={"inputs": {"a": "y" * 100_000}},
                            queue="crewq.control").get(timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        other.close()
    assert "the task (placeholders filled)" in str(info.value) and "limits.max_task_chars" in str(info.value)
    assert "100,000,000" in str(info.value) or "100000000" in str(info.value), str(info.value)
    assert peak < 20_000_000, f"{peak:,} bytes allocated to refuse it"


class _OpensAFile:
    """Unpickling this creates a file: proof that a pickled message was decoded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_message_is_refused_unread(worker, redis_url, tmp_path):
    import pickle

    import kombu
    from celery import Celery

    from crewq.workers.app import SUBMIT_TASK
    conf = worker.conf
    assert {conf.task_serializer, conf.result_serializer, conf.event_serializer} == {"json"}
    assert list(conf.accept_content) == ["json"] and list(conf.result_accept_content) == ["json"]
    assert worker.control.mailbox.accept == ["json"]  # `celery inspect`/`control` replies too
    marker = tmp_path / "unpickled"
    # Sent as raw bytes with pickle's content type, as an attacker with Redis access would: no client
    # of ours is configured with any serializer but JSON.
    payload = pickle.dumps(((_OpensAFile(str(marker)),), {}, {}))
    with kombu.Connection(redis_url) as connection:
        connection.Producer().publish(payload, routing_key="crewq.control", content_type="application/x-python-serialize",
                                      content_encoding="binary", headers={"task": SUBMIT_TASK, "id": "forged-1"})
    other = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)
    other.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
    # The queue is read in order: once a JSON task sent after it has an answer, the forged one was seen.
    with pytest.raises(Exception, match="YAML text"):
        other.send_task(SUBMIT_TASK, args=[123], queue="crewq.control").get(timeout=30)
    assert not marker.exists()
    other.close()


def test_client_submit_checks_the_same(app, tmp_path):
    client = Client(app)
    with pytest.raises(ConfigError, match="not int"):
        client.submit(123)  # type: ignore[arg-type]
    path = write_crew(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="limits.max_input_chars"):
        client.submit(path, inputs={"topic": "t" * 200_000})
    with pytest.raises(ConfigError, match="limits.max_inputs"):
        client.submit(path, inputs={f"k{i}": "v" for i in range(101)})
    with pytest.raises(ConfigError, match=r"task \(placeholders filled\).*limits.max_task_chars"):
        client.submit(write_crew(tmp_path, GOOD.replace("runtime:", "task: {input: '{a}{a}{a}'}\nruntime:"),
                                 "t.yaml"), inputs={"a": "x" * 90_000})


def test_crewq_submit_checks_the_same(tmp_path, redis_url, monkeypatch):
    from click.testing import CliRunner

    from crewq.scheduler.cli import main
    monkeypatch.setenv("CREWQ_REDIS_URL", redis_url)
    path = write_crew(tmp_path, GOOD)
    result = CliRunner().invoke(main, ["submit", str(path), "--input", "topic=" + "t" * 200_000])
    assert result.exit_code != 0 and "limits.max_input_chars" in result.output


@pytest.fixture
def small_prompt_fleet(redis_url):
    """A worker and a supervisor on a policy whose prompt limit is 5,000 characters."""
    from crewq.config.policy import Policy
    from crewq.config.settings import Settings
    from crewq.scheduler.embedded import in_process_worker
    from crewq.scheduler.supervisor import SupervisorThread
    from crewq.workers.app import create_app

    from conftest import FAST, HOST
    app = create_app(Settings(redis_url=redis_url, policy=Policy(limits=Limits(max_prompt_chars=5000)), **FAST))
    with SupervisorThread(app), in_process_worker(app, concurrency=4, hostname=f"prompt@{HOST}"):
        yield app
    app.close()


def fan_in(tmp_path, each: int, name: str):
    from helpers import write_crew
    return write_crew(tmp_path, f"""
        runtime: {{llm_provider: scripted}}
        task: {{input: short task}}
        agents:
          - {{id: a, script: [{{text: "{'a' * each}"}}]}}
          - {{id: b, script: [{{text: "{'b' * (each - 10)}"}}]}}
          - {{id: sink, depends_on: [a, b], script: [{{text: joined}}]}}
        """, name)


@pytest.mark.parametrize("each,expected", [
    (3000, "is 6,000 characters"),  # read, then counted: over by its characters
    (12000, "is at least 6,007 characters"),  # over by the stored sizes alone (bytes/4): refused before reading
])
def test_a_fan_in_over_the_prompt_limit_fails_the_agent_before_its_prompt_is_built(small_prompt_fleet, tmp_path,
                                                                                    monkeypatch, each, expected):
    from crewq.workers import prompts

    from helpers import run_crew
    built: list = []
    real_first = prompts.first_message
    monkeypatch.setattr("crewq.workers.conversation.first_message",
                        lambda task, upstream: built.append(sorted(upstream)) or real_first(task, upstream))
    status = run_crew(small_prompt_fleet, fan_in(tmp_path, each, f"c{each}.yaml"), timeout=30)
    assert status.status == "failed"
    sink = status.agents["sink"]
    assert sink.status == "failed" and sink.attempt == 0  # permanent: no restart makes it smaller
    assert sink.error.startswith("configuration error: agent 'sink''s first message (the task and the outputs of "
                                 "the 2 agents it depends on; largest: a ("), sink.error
    assert expected in sink.error and "over the limit of 5,000 characters (policy " \
        "limits.max_prompt_chars)" in sink.error, sink.error
    assert ["a", "b"] not in built  # the sink's prompt was never put together


def test_a_fan_in_under_the_prompt_limit_runs(small_prompt_fleet, tmp_path):
    from helpers import run_crew
    status = run_crew(small_prompt_fleet, fan_in(tmp_path, 2000, "small.yaml"), timeout=30)
    assert status.status == "succeeded", status
    assert Limits().max_prompt_chars == 1_000_000
