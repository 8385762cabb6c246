"""`standby`, `fallback` and `breaker` in the crew file: what validate accepts and refuses, by file and agent."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from crewq.config.errors import ConfigError
from crewq.scheduler import plan
from crewq.scheduler.cli import main
from crewq.scheduler.validate import check, crew_warnings

from helpers import write_crew

HEAD = """
    runtime: {llm_provider: scripted}
    agents:
      - {id: planner, script: [{text: x}]}
"""


def error_of(tmp_path, agents: str) -> str:
    path = write_crew(tmp_path, HEAD + agents)
    with pytest.raises(ConfigError) as info:
        check(path)
    return str(info.value)


def test_a_standby_is_in_no_wave_and_breaker_settings_are_typed(tmp_path):
    path = write_crew(tmp_path, HEAD + """
      - id: researcher
        depends_on: [planner]
        fallback: [backup, second]
        breaker: {failures: 3, cooldown: 1m30s}
        script: [{text: x}]
      - {id: backup, standby: true, depends_on: [planner], fallback: [second], script: [{text: x}]}
      - {id: second, standby: true, script: [{text: x}]}
      - {id: writer, depends_on: [researcher], script: [{text: x}]}
    """)
    loaded, waves = check(path)
    assert waves == [["planner"], ["researcher"], ["writer"]] == plan.waves(loaded.crew)
    researcher = loaded.crew.agent("researcher")
    assert (researcher.breaker.failures, researcher.breaker.cooldown) == (3, 90.0)
    assert (loaded.crew.agent("writer").breaker.failures, loaded.crew.agent("writer").breaker.cooldown) == (5, 60.0)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_an_unknown_fallback_is_named_with_the_agent_and_a_suggestion(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, fallback: [bakup], script: [{text: x}]}
      - {id: backup, standby: true, script: [{text: x}]}
    """)
    assert "crew.yaml:6: agents[1].fallback[0]: agent 'researcher' names unknown fallback agent 'bakup'" in message
    assert "did you mean 'backup'?" in message


def test_a_fallback_that_is_not_standby_is_refused(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, fallback: [planner], script: [{text: x}]}
    """)
    assert "agents[1].fallback[0]: agent 'researcher''s fallback 'planner' is not a standby agent" in message
    assert "crew.yaml:6" in message


def test_an_agent_that_depends_on_a_standby_is_refused(tmp_path):
    message = error_of(tmp_path, """
      - {id: backup, standby: true, script: [{text: x}]}
      - {id: writer, depends_on: [backup], script: [{text: x}]}
    """)
    assert "crew.yaml:7: agents[2].depends_on[0]: agent 'writer' depends on standby agent 'backup'" in message


def test_a_fallback_that_depends_on_the_agent_it_stands_in_for_is_refused(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, fallback: [backup], script: [{text: x}]}
      - {id: summary, depends_on: [researcher], script: [{text: x}]}
      - {id: backup, standby: true, depends_on: [summary], script: [{text: x}]}
    """)
    assert ("crew.yaml:6: agents[1].fallback: agent 'researcher''s fallback 'backup' depends on 'researcher', "
            "the agent it stands in for") in message


def test_a_fallback_of_a_fallback_is_checked_too(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, fallback: [backup], script: [{text: x}]}
      - {id: summary, depends_on: [researcher], script: [{text: x}]}
      - {id: backup, standby: true, fallback: [last], script: [{text: x}]}
      - {id: last, standby: true, depends_on: [summary], script: [{text: x}]}
    """)
    assert "agent 'researcher''s fallback 'last' (through backup) depends on 'researcher'" in message


def test_a_fallback_that_needs_an_output_not_upstream_is_refused(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, fallback: [backup], script: [{text: x}]}
      - {id: other, script: [{text: x}]}
      - {id: late, depends_on: [other], script: [{text: x}]}
      - {id: backup, standby: true, depends_on: [late], script: [{text: x}]}
    """)
    assert "agent 'researcher''s fallback 'backup' depends on late, not upstream of 'researcher'" in message


def test_fallback_cycles_are_refused_once_with_their_path(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, fallback: [a], script: [{text: x}]}
      - {id: a, standby: true, fallback: [b], script: [{text: x}]}
      - {id: b, standby: true, fallback: [a], script: [{text: x}]}
    """)
    assert "crew.yaml:7: agents[2].fallback: fallback cycle: a → b → a" in message
    assert message.count("fallback cycle") == 1


def test_an_agent_naming_itself_as_fallback_is_refused(tmp_path):
    message = error_of(tmp_path, """
      - {id: a, standby: true, fallback: [a], script: [{text: x}]}
    """)
    assert "agents[1].fallback[0]: agent 'a' names itself as its fallback" in message


def test_bad_breaker_settings_name_the_key(tmp_path):
    message = error_of(tmp_path, """
      - {id: researcher, breaker: {failures: 0, cooldown: soon}, script: [{text: x}]}
    """)
    assert "agents[1].breaker.failures" in message and "agents[1].breaker.cooldown" in message
    assert "bad duration 'soon'" in message


def test_a_standby_that_no_agent_names_is_a_warning(tmp_path):
    path = write_crew(tmp_path, HEAD + """
      - {id: idle, standby: true, script: [{text: x}]}
    """)
    loaded, _ = check(path)
    assert any("crew.yaml:6: agents[1].standby: standby agent 'idle' is no agent's fallback: it never runs" in w
               for w in crew_warnings(loaded))
