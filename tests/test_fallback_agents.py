"""Fallback agents: a given-up agent's work handed to a standby, on a real worker and supervisor."""

from __future__ import annotations

from crewq.scheduler.runs import Client

from helpers import run_crew, write_crew

CREW = """
    runtime: {name: fallback-crew, llm_provider: scripted}
    task: {input: "tides"}
    agents:
      - {id: planner, script: [{text: "plan for tides"}]}
      - id: researcher
        depends_on: [planner]
        fallback: [standby_researcher]
        script: [{error: {status: 400, message: "the researcher always fails"}}]
      - id: standby_researcher
        standby: true
        script: [{text: "standby notes from <{input}>"}]
      - {id: writer, depends_on: [researcher], script: [{text: "writer got <{input}>"}]}
    """


def kinds(ledger, run_id):
    return [(e["type"], e["agent"]) for e in ledger.events(run_id, count=None)]


def test_a_given_up_agent_is_replaced_by_its_standby_and_the_writer_gets_its_output(app, ledger, worker, tmp_path):
    status = run_crew(app, write_crew(tmp_path, CREW))
    assert status.status == "succeeded", status
    events = ledger.events(status.run_id, count=None)
    decision = next(e for e in events if e["type"] == "decision")
    assert (decision["agent"], decision["action"]) == ("researcher", "give_up")
    assert "permanent" in decision["reason"] and "always fails" in decision["error"]
    handed = next(e for e in events if e["type"] == "handed_over")
    assert (handed["agent"], handed["fallback"], handed["stands_for"]) == ("researcher", "standby_researcher",
                                                                           "researcher")
    order = kinds(ledger, status.run_id)
    assert order.index(("decision", "researcher")) < order.index(("handed_over", "researcher")) \
        < order.index(("turn_started", "standby_researcher")) < order.index(("turn_started", "writer"))
    # The standby had the researcher's task and upstream output; the writer got the standby's, labelled.
    standby = ledger.agent(status.run_id, "standby_researcher")["output"]
    assert standby.startswith("standby notes from <Task:\ntides") and "Output of planner:\nplan for tides" in standby
    assert status.output == f"writer got <Task:\ntides\n\nOutput of researcher (by standby_researcher):\n{standby}>"
    assert status.agents["researcher"].status == "succeeded" and status.agents["researcher"].served_by == \
        "standby_researcher"
    assert status.agents["standby_researcher"].stands_for == "researcher"
    assert status.agents["researcher"].usage.llm_calls == 0  # a 400 is not answered: no usage counted
