"""`agent_turn`: one LLM call of one agent, then either its final output or a chord of tool calls.

A turn never raises into its chord: it returns an envelope `{status, agent, attempt, output, error}`.
Its LLM reply is recorded before anything else happens, so a redelivered turn does not ask again.
"""

from __future__ import annotations

import logging
import time

from celery import chord, group, shared_task
from celery.exceptions import Ignore, Retry
from redis.exceptions import ConnectionError as RedisConnectionError

from crewq.config.errors import ConfigError, CrewqError
from crewq.config.states import AgentStatus
from crewq.config.words import plural

from . import budgets, tracing
from .agent_breaker import agent_breaker, open_reason
from .app import TOOL_TASK, TURN_TASK, requeue_after_outage, turn_signature
from .bounds import check_reply
from .conversation import rebuild
from .ledger import TERMINAL, Ledger
from .llm.chain import llm_chain
from .llm.dispatch import call_llm
from .llm.limits import Throttled, wait_for_limit
from .llm.pricing import estimate_cost
from .llm.retry import countdown
from .llm.types import LLMReply, LLMRequest
from .prompts import system_prompt
from .refs import ToolRef
from .resources import environment, tools_for

log = logging.getLogger(__name__)


def envelope(status: str, agent: str, attempt: int, error: str | None = None) -> dict:
    """What a turn returns to its chord. No output: conversations stay in the ledger, not in messages."""
    return {"status": status, "agent": agent, "attempt": attempt, "error": error}


@shared_task(name=TURN_TASK, bind=True, max_retries=None)
def agent_turn(self, run_id: str, agent_id: str, turn: int = 0, attempt: int = 0) -> dict:
    turn_ = Turn(self, run_id, agent_id, turn, attempt)
    try:
        run = turn_.ledger.run(run_id) if tracing.tracer() else {}
        with tracing.turn_span(run, run_id, agent_id, attempt, turn, self.request.hostname) as span:
            result = turn_.run()
            tracing.outcome(span, result)
            return result
    except (Retry, Ignore):
        raise
    except RedisConnectionError as exc:
        # Nothing could be recorded. The message goes back to its queue (or, with Redis down, stays in
        # kombu's unacked hash until the supervisor's sweep): the turn runs again and resumes from the
        # ledger. One line, not a traceback per turn.
        log.warning("turn %s/%s/%s: Redis is unreachable (%s); the turn runs again once it is back",
                    run_id, agent_id, turn, exc)
        raise requeue_after_outage(exc) from None
    except CrewqError as exc:  # a mistake in the crew file, a tool server that is down, ...: say it plainly
        log.warning("turn %s/%s/%s: %s", run_id, agent_id, turn, exc)
        # The error says whether a restart can fix it: a tool server that is down may be up again.
        label = "configuration error: " if isinstance(exc, ConfigError) else ""
        return turn_.fail(f"{label}{exc}", permanent=exc.permanent)
    except Exception as exc:  # a bug must fail the agent visibly, never hang the chord
        log.exception("turn %s/%s/%s failed", run_id, agent_id, turn)
        return turn_.fail(f"internal error: {type(exc).__name__}: {exc}")


class Turn:
    def __init__(self, task, run_id: str, agent_id: str, turn: int, attempt: int):
        self.task, self.run_id, self.agent_id, self.turn, self.attempt = task, run_id, agent_id, turn, attempt
        self.ledger: Ledger = task.app.ledger

    def run(self) -> dict:
        ledger = self.ledger
        spec = self.spec = ledger.spec(self.run_id)
        agent = self.agent = spec.crew.agent(self.agent_id)
        run, state = ledger.run_and_agent(self.run_id, self.agent_id)
        if run.get("status") in TERMINAL:
            return envelope(AgentStatus.SKIPPED, self.agent_id, self.attempt, error=f"run {run['status']}")
        if int(state.get("attempt", 0)) != self.attempt:
            return envelope(AgentStatus.SKIPPED, self.agent_id, self.attempt, error="superseded by a newer attempt")
        if state.get("status") == AgentStatus.SUCCEEDED:  # a redelivery after the agent finished
            return envelope("ok", self.agent_id, self.attempt)
        if state.get("status") in (AgentStatus.FAILED, AgentStatus.SKIPPED):
            return envelope(AgentStatus.FAILED, self.agent_id, self.attempt, error=state.get("error"))

        now = time.time()
        if spec.crew.task.max_duration and now - float(run.get("started_at") or now) > spec.crew.task.max_duration:
            return self.fail(f"the run's max_duration ({spec.crew.task.max_duration:g}s) is exceeded")
        started = self.started = ledger.start_turn(self.run_id, self.agent_id, self.task.request.hostname or "?",
                                                   self.turn, state=state, attempt=self.attempt,
                                                   retries=self.task.request.retries)
        if agent.timeout and now - started > agent.timeout:
            return self.fail(f"agent timeout ({agent.timeout:g}s) exceeded")

        policy = self.task.app.settings.policy
        tools = tools_for(spec, self.agent_id, policy)
        self.env = environment(spec, policy)  # once per turn: the crew's .env may be read from disk
        self.stands_for = state.get("stands_for") or None  # a standby in another agent's place
        conversation = rebuild(ledger, spec, self.agent_id, self.attempt, self.turn, set(tools), self.env,
                               stands_for=self.stands_for, limits=policy.limits)
        raw = conversation.reply
        if raw is None:
            if reason := budgets.exhausted(spec.crew.task, run):  # no new LLM call once a budget is spent
                return self.fail(reason, permanent=True)
            if self.turn == 0 and not self.task.request.retries and (reason := self.breaker_open(state)):
                return self.fail(reason, permanent=True, breaker_open=True)
            raw = self.ask(conversation.messages, tools, deadline=self.deadline(started, run))
            # an envelope, not a reply
            if isinstance(raw, dict) and raw.get("status") in (AgentStatus.FAILED, AgentStatus.SKIPPED):
                return raw
        reply = LLMReply.model_validate(raw)
        if reply.tool_calls:
            return self.call_tools(reply, conversation.budget)
        return self.succeed(reply.text)

    def breaker_open(self, state: dict) -> str | None:
        """The agent's own breaker, asked once per attempt (its first call): open, no call is made.
        Half-open, the run that got the probe keeps it for every attempt (its restarts are the probe too)."""
        if state.get("probe"):
            return None
        breaker = agent_breaker(self.ledger.redis, self.ledger.keys, self.spec.crew, self.agent)
        allowed = breaker.allow()
        if allowed == "probe":
            self.ledger.update_agent(self.run_id, self.agent_id, probe=1)
        return open_reason(breaker, self.agent) if allowed == "open" else None

    def deadline(self, started: float, run: dict) -> float:
        """Seconds this call may take: the read timeout, cut by the agent's and the run's limits."""
        limit = self.task.app.settings.llm_read_timeout
        now = time.time()
        if self.agent.timeout:
            limit = min(limit, started + self.agent.timeout - now)
        if self.spec.crew.task.max_duration and run.get("started_at"):
            limit = min(limit, float(run["started_at"]) + self.spec.crew.task.max_duration - now)
        return max(limit, 0.1)

    def ask(self, messages, tools, deadline: float) -> dict:
        ledger, retries = self.ledger, self.task.request.retries
        call_key = f"{self.attempt}:{self.turn}:{retries}"
        request = LLMRequest(system=system_prompt(self.agent, self.env), messages=messages,
                             tools=[t.schema() for t in tools.values()], timeout=deadline,
                             run_id=self.run_id, agent_id=self.agent_id,
                             call_index=ledger.call_index(self.run_id, self.agent_id, call_key))
        began = time.time()
        try:
            chain = llm_chain(self.spec.crew, self.agent, self.env)
            # Once the primary's retries are used up, the fallbacks (if any) get their turn.
            exhausted = retries >= self.agent.max_retries and len(chain) > 1
            try:
                reply = self.call(chain, request, retries, exhausted)
            except Throttled:
                raise
            except CrewqError as exc:
                if not (exc.retryable and not exhausted and len(chain) > 1 and retries >= self.retry_limit(exc)):
                    raise
                # This failure's own limit (a refused connection's) ends the primary's retries early.
                reply = self.call(chain, request, retries, exhausted=True)
        except Throttled as exc:  # a fleet limit: the same try, later, holding no worker slot meanwhile
            raise wait_for_limit(self.task, ledger, self.run_id, self.agent_id, self.turn, exc,
                                 ceiling=self.task.app.settings.visibility_timeout / 10)
        except CrewqError as exc:  # what may help is a property of the error, not of its class
            if not exc.retryable or retries >= self.retry_limit(exc):
                tries = f" (after {plural(retries + 1, 'try', 'tries')})" if exc.retryable else ""
                return self.fail(f"{exc}{tries}", permanent=exc.permanent)
            # A countdown near the visibility timeout would let Redis redeliver the waiting retry.
            ceiling = min(self.agent.max_backoff, self.task.app.settings.visibility_timeout / 10)
            wait = countdown(retries, getattr(exc, "retry_after", None), max_backoff=ceiling)
            ledger.event(self.run_id, "llm_retry", self.agent_id, turn=self.turn, error=str(exc),
                         countdown=round(wait, 3), retries=retries + 1)
            raise self.task.retry(countdown=wait, max_retries=self.agent.max_retries)
        data = reply.model_dump(mode="json")
        try:
            check_reply(data, self.task.app.settings.policy.limits, self.agent_id)
        except ConfigError as exc:
            return self.fail(str(exc), permanent=True)
        cost = estimate_cost(reply.provider, reply.model, reply.usage)
        usage = (reply.usage.input_tokens, reply.usage.output_tokens, cost)
        event = {"turn": self.turn, "provider": reply.provider, "model": reply.model,
                 "input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens,
                 "cost_usd": cost, "seconds": round(time.time() - began, 3),
                 "tool_calls": [c.name for c in reply.tool_calls]}
        # One script: the reply, its usage and its event, unless the run ended or a redelivery won.
        outcome, stored = ledger.record_call(self.run_id, self.agent_id, self.attempt, self.turn, data, event, usage)
        if outcome == "ended":
            # Cancelled (or ended) while the call was in flight: the reply is not the agent's work and
            # nothing goes in the event log after run_finished, but what the call cost was spent.
            ledger.add_usage(self.run_id, self.agent_id, *usage)
            ledger.settle_agent(self.run_id, self.agent_id, self.attempt, AgentStatus.CANCELLED, error="the run ended")
            return envelope(AgentStatus.SKIPPED, self.agent_id, self.attempt, error="the run ended during the LLM call")
        return stored or {}

    def call(self, chain, request: LLMRequest, retries: int, exhausted: bool) -> LLMReply:
        with tracing.child_span("llm_call", **{"crewq.retries": retries}) as span:
            reply = call_llm(chain, self.agent, request, redis=self.ledger.redis, prefix=self.ledger.keys.prefix,
                             exhausted=exhausted)
            if span is not None:
                span.set_attributes({"gen_ai.system": reply.provider, "gen_ai.request.model": reply.model or "",
                                     "gen_ai.usage.input_tokens": reply.usage.input_tokens,
                                     "gen_ai.usage.output_tokens": reply.usage.output_tokens,
                                     "crewq.tool_calls": len(reply.tool_calls)})
        return reply

    def retry_limit(self, exc: CrewqError) -> int:
        """Retries inside the turn: the agent's max_retries, or fewer when the error says so."""
        return min(self.agent.max_retries, exc.retry_limit if exc.retry_limit is not None else self.agent.max_retries)

    def call_tools(self, reply: LLMReply, budget) -> dict:
        limit = self.agent.turn_limit
        if self.turn + 1 >= limit:
            why = f"max_turns ({limit})" if self.agent.max_turns else (
                f"the tool budget ({self.agent.max_total_tool_calls} calls, so {limit} turns; set max_turns for more)")
            return self.fail(f"{why} reached while the model still asks for tools")
        to_run = []
        for index, call in enumerate(reply.tool_calls):
            reason = budget.check(call)
            if reason is None:
                to_run.append(index)
            else:
                self.ledger.record_result(self.run_id, self.agent_id, self.attempt, self.turn, index,
                                          {"content": reason, "is_error": True, "skipped": True})
                self.ledger.event(self.run_id, "tool_skipped", self.agent_id, turn=self.turn, index=index,
                                  name=call.name, reason=reason)
        app = self.task.app
        next_turn = turn_signature(app, self.spec, self.agent_id, self.turn + 1, self.attempt)
        if not to_run:
            return self.task.replace(next_turn)
        headers = tracing.inject()  # the tool calls' spans are children of this turn's
        refs = [ToolRef(self.run_id, self.agent_id, self.turn, self.attempt, i) for i in to_run]
        calls = group(app.signature(TOOL_TASK, args=ref.args(), immutable=True,
                                    **({"headers": headers} if headers else {})) for ref in refs)
        # Every tool call is its own task; they run at once and the next turn waits for all of them.
        return self.task.replace(chord(calls, next_turn))

    def succeed(self, output: str) -> dict:
        # First settlement wins: a redelivered or swept turn cannot overwrite it.
        # start_turn's answer is when the attempt started: no second read of the agent's hash. The event
        # goes with the settlement (one script), so only the settling call writes it.
        done = ("agent_succeeded", {"turns": self.turn + 1, "attempt": self.attempt,
                                    "seconds": round(time.time() - self.started, 3),
                                    **({"stands_for": self.stands_for} if self.stands_for else {})})
        if not self.ledger.settle_agent(self.run_id, self.agent_id, self.attempt, AgentStatus.SUCCEEDED, event=done,
                                        output=output, error=""):
            return envelope(AgentStatus.SKIPPED, self.agent_id, self.attempt, error="attempt already settled or superseded")
        if self.stands_for:  # its output stands for the agent it replaces, downstream and in the run's output
            self.ledger.stand_in(self.run_id, self.stands_for, self.agent_id, output)
        # The agent's breaker closes (a round trip of its own: the settlement is one script).
        agent_breaker(self.ledger.redis, self.ledger.keys, self.spec.crew, self.agent).success()
        trace_agent(self.ledger, self.run_id, self.agent_id, self.attempt, AgentStatus.SUCCEEDED)
        return envelope("ok", self.agent_id, self.attempt)

    def fail(self, error: str, permanent: bool = False, breaker_open: bool = False) -> dict:
        return report_failure(self.ledger, self.run_id, self.agent_id, self.attempt, self.turn, error, permanent,
                              breaker_open)


def report_failure(ledger: Ledger, run_id: str, agent_id: str, attempt: int, turn: int, error: str,
                   permanent: bool = False, breaker_open: bool = False) -> dict:
    """Settle the attempt as failed and append a FailureReport for the supervisor (once per attempt).
    A permanent failure (a refused key, a bad request, a configuration error) is one no restart can fix;
    `breaker_open`: the agent's breaker refused the attempt (not a failure of its own, so not counted)."""
    failed = ("agent_failed", {"turn": turn, "attempt": attempt, "error": error})
    if not ledger.settle_agent(run_id, agent_id, attempt, AgentStatus.FAILED, event=failed, error=error):
        return envelope(AgentStatus.SKIPPED, agent_id, attempt, error="attempt already settled or superseded")
    report = {"run_id": run_id, "agent_id": agent_id, "attempt": attempt, "turn": turn, "error": error,
              "ts": time.time(), "permanent": permanent, "breaker_open": breaker_open}
    ledger.report_failure(report)
    trace_agent(ledger, run_id, agent_id, attempt, AgentStatus.FAILED, error)
    return envelope(AgentStatus.FAILED, agent_id, attempt, error=error)


def trace_agent(ledger: Ledger, run_id: str, agent_id: str, attempt: int, status: str, error: str | None = None) -> None:
    """The agent attempt's span, now that it has settled (when tracing is on)."""
    if tracing.tracer() is None:
        return
    state, now = ledger.agent(run_id, agent_id), time.time()
    tracing.agent_ended(ledger.run(run_id), run_id, agent_id, attempt, status,
                        float(state.get("started_at") or now), float(state.get("finished_at") or now), error)
