"""`tool_call`: run one tool call that a turn's recorded reply asked for, and record its result.

The message carries ids only; the call's name and arguments come from the ledger. A call whose
result is already recorded (a redelivery) is not run again. Anyone who can send a task can send
this one: arguments that do not fit, a run that has ended and a call its turn's reply does not have
are refused (a result with `refused`, one log line), and nothing runs.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from redis.exceptions import ConnectionError as RedisConnectionError

from crewq.config.errors import ConfigError, ToolServerUnavailable

from . import bounds, tracing
from .app import TOOL_TASK, requeue_after_outage
from .ledger import TERMINAL
from .llm.types import LLMReply
from .refs import ToolRef
from .resources import environment, tools_for
from .tool_llm import run_llm
from .tools.base import ToolContext, ToolResult

log = logging.getLogger(__name__)


@shared_task(name=TOOL_TASK, bind=True)
def tool_call(self, run_id: str, agent_id: str, turn: int, attempt: int, index: int) -> dict:
    try:
        return run_tool_call(self, run_id, agent_id, turn, attempt, index)
    except RedisConnectionError as exc:  # as in agent_turn: the message goes back and the call runs again
        log.warning("tool call %s/%s/%s/%s: Redis is unreachable (%s); it runs again once Redis is back",
                    run_id, agent_id, turn, index, exc)
        raise requeue_after_outage(exc) from None


def run_tool_call(task, run_id: str, agent_id: str, turn: int, attempt: int, index: int) -> dict:
    ledger = task.app.ledger
    if problem := ToolRef(run_id, agent_id, turn, attempt, index).problem():
        return refuse(run_id, agent_id, turn, index, problem)
    done, reply = ledger.tool_call_state(run_id, agent_id, attempt, turn, index)
    if done is not None:
        return {"index": index, "is_error": bool(done.get("is_error")), "repeated": True}
    status = ledger.run_status(run_id)
    if status is None or status in TERMINAL:  # an ended run's calls are history: none starts now
        return refuse(run_id, agent_id, turn, index, f"run {run_id} is {status or 'unknown'}")
    calls = LLMReply.model_validate(reply).tool_calls if reply is not None else []
    if index >= len(calls):
        return refuse(run_id, agent_id, turn, index, f"turn {turn} (attempt {attempt}) of agent {agent_id!r} "
                      f"asked for {len(calls)} tool calls, so there is no call {index}")
    spec = ledger.spec(run_id)
    call = calls[index]
    key = f"{run_id}:{agent_id}:{attempt}:{turn}:{index}"
    started = time.time()
    ledger.event(run_id, "tool_call", agent_id, turn=turn, index=index, name=call.name, host=task.request.hostname)
    run = ledger.run(run_id) if tracing.tracer() else {}
    with tracing.tool_span(task.request, run, run_id, agent_id, attempt, turn, index, call.name,
                           task.request.hostname) as span:
        # Whatever goes wrong becomes the call's result: a raised error would leave the chord's
        # next turn waiting for a header that never succeeds.
        try:
            policy = task.app.settings.policy
            tool = tools_for(spec, agent_id, policy).get(call.name)
            too_big = bounds.arguments_problem(call.arguments, policy.limits)
            if tool is None:
                result = ToolResult(f"unknown tool {call.name!r}", is_error=True)
            elif too_big:
                result = ToolResult(f"{call.name}: {too_big}", is_error=True)
            else:
                context = ToolContext(run_id=run_id, agent_id=agent_id, idempotency_key=key,
                                      source_dir=spec.source_dir, env=environment(spec, policy),
                                      llm=run_llm(ledger, run_id, agent_id, spec.crew.task))
                result = tool.execute(call.arguments, context)
        except (ConfigError, ToolServerUnavailable) as exc:  # e.g. its MCP server is down on this worker
            result = ToolResult(f"tool {call.name!r} is not available: {exc}", is_error=True)
        except RedisConnectionError:
            raise
        except Exception as exc:
            log.exception("tool call %s/%s/%s/%s failed", run_id, agent_id, turn, index)
            result = ToolResult(f"tool {call.name!r} failed: internal error: {type(exc).__name__}: {exc}",
                                is_error=True)
        if span is not None:
            span.set_attribute("crewq.tool.is_error", result.is_error)
    finished = time.time()
    stored = bounds.bound_result(result.to_json(), task.app.settings.policy.limits)
    # First write wins, and only the winner records the event (one script): after a Redis restart the
    # same call can be running twice, and the ledger must show one result.
    event = {"turn": turn, "index": index, "name": call.name, "is_error": result.is_error, "started_at": started,
             "finished_at": finished, "chars": len(result.content)}
    if not ledger.record_tool_result(run_id, agent_id, attempt, turn, index, stored, event):
        return {"index": index, "is_error": result.is_error, "repeated": True}
    return {"index": index, "is_error": result.is_error}


def refuse(run_id: object, agent_id: object, turn: object, index: object, reason: str) -> dict:
    """A message no turn of ours sent (or sent for a run that has ended): nothing runs, one log line."""
    log.warning("tool call %r/%r/%r/%r refused: %s", run_id, agent_id, turn, index, reason)
    return {"index": index, "is_error": True, "refused": reason}
