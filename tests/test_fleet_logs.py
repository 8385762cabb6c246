"""Structured logs: the run and agent of the task a line comes from, as text or JSON lines."""

from __future__ import annotations

import io
import json
import logging

from celery import signals

from crewq.workers import logs


class FakeTask:
    name = "crewq.tool_call"


def capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(f"crewq-test-{fmt}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logs.apply(logger, fmt)
    return logger, stream


def test_ids_come_from_the_task_arguments():
    assert logs.ids_of("crewq.agent_turn", ["r1", "writer", 2, 0]) == {"run_id": "r1", "agent_id": "writer"}
    assert logs.ids_of("crewq.advance", ["r1", 3]) == {"run_id": "r1"}
    assert logs.ids_of("crewq.advance", [[{"status": "ok"}], "r1", 3]) == {"run_id": "r1"}  # a chord body
    assert logs.ids_of("crewq.submit", ["runtime: ..."]) == {}  # YAML text is never a label


def test_lines_inside_a_task_carry_its_run_and_agent_as_json():
    logger, stream = capture("json")
    logger.info("before")
    signals.task_prerun.send(sender=FakeTask, task_id="t-1", task=FakeTask(), args=("run9", "reader", 0, 1, 0),
                             kwargs={})
    try:
        logger.info("calling %s", "read_file")
    finally:
        signals.task_postrun.send(sender=FakeTask, task_id="t-1", task=FakeTask(), args=(), kwargs={},
                                  retval=None, state="SUCCESS")
    logger.warning("after")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["before", "calling read_file", "after"]
    assert lines[1]["run_id"] == "run9" and lines[1]["agent_id"] == "reader"
    assert lines[1]["task"] == "crewq.tool_call" and lines[1]["task_id"] == "t-1"
    assert lines[0]["run_id"] is None and lines[2]["run_id"] is None and lines[2]["level"] == "WARNING"


def test_text_lines_and_a_bound_block():
    logger, stream = capture("text")
    with logs.bound("run7", "critic"):
        logger.info("deciding")
    logger.info("idle")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("[run=run7 agent=critic] deciding")
    assert second.endswith("[run=- agent=-] idle")


def test_exceptions_stay_inside_one_json_line():
    logger, stream = capture("json")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    (line,) = stream.getvalue().splitlines()
    assert "ValueError: bad" in json.loads(line)["exc"]
