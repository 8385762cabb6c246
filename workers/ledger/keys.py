"""Every Redis key crewq writes, named in one place.

    {p}:runs                          zset   run ids by submission time, trimmed to the retention (`crewq runs`)
    {p}:active                        set    runs not yet ended (the supervisor sweeps them)
    {p}:inflight                      hash   task id → {name, args, host, since} of tasks a worker holds
    {p}:released                      hash   task id → when its worker finished it (its ack follows)
    {p}:worker:{host}                 string a worker's heartbeat (expires when it goes silent)
    {p}:supervisor:leader             string the active supervisor's token (expires when it dies)
    {p}:decision:{run}:{agent}:{n}    string the supervisor's decision on attempt n's failure
    {p}:decision:{run}:{agent}:{n}:applied  string present once that decision has been carried out
    {p}:failures                      stream FailureReports from failed turns (the supervisor reads it)
    {p}:beat                          hash   beat entry → {last_run_at, total_run_count} (JSON)
    {p}:metrics                       hash   crewq's Prometheus counters (crewq.workers.ledger.metrics)
    {p}:breaker:{{provider:model}}:*  strings a circuit breaker's state (workers.llm.breaker)
    {p}:agent-breaker:{{crew#digest/agent}}:*  strings  an agent's breaker across runs of its crew (workers.agent_breaker)
    {p}:limits                        hash   "provider[/model]" → an operator's fleet limit, JSON (workers.llm.limits)
    {p}:limit:{scope}:slots           zset   concurrency leases: holder → when its lease expires (ms)
    {p}:limit:{scope}:not_before      string present while a 429's retry-after holds the fleet back
    {p}:limit:LIMITER/{scope}/rpm/..  list   the `limits` library's moving window of that scope's rpm
    {p}:limit:{LIMITER/{scope}/tpm/..}[/-1]  strings  its sliding-window counters of the tpm (now, before)
    {p}:run:{run}                     hash   the run's status projection
    {p}:run:{run}:spec                string the crew spec by value, env: references unresolved
    {p}:run:{run}:events              stream the run's append-only event log (source of truth)
    {p}:run:{run}:wave:{n}            string "claimed:{task id}", then "advanced": `advance` acts once
    {p}:run:{run}:agent:{agent}       hash   per-agent state: status, attempt, output, usage, host;
                                             stands_for / fallback_of (a standby), served_by (its stand-in),
                                             probe (this run probes the agent's half-open breaker)
    {p}:run:{run}:agent:{agent}:hosts set    every worker that ran one of its turns
    {p}:run:{run}:agent:{agent}:replies  hash  "{attempt}:{turn}" → the recorded LLM reply
    {p}:run:{run}:agent:{agent}:results  hash  "{attempt}:{turn}:{i}" → a recorded tool result
    {p}:run:{run}:agent:{agent}:calls    hash  "{attempt}:{turn}:{try}" → LLM call index
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "crewq"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    @property
    def failures(self) -> str:
        return f"{self.prefix}:failures"

    @property
    def beat(self) -> str:
        return f"{self.prefix}:beat"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}:metrics"

    def breaker(self, name: str) -> str:
        """The breaker's key base; the braces keep its keys in one Redis Cluster slot."""
        return f"{self.prefix}:breaker:{{{name}}}"

    def agent_breaker(self, crew: str, agent: str) -> str:
        """An agent's breaker key base, per crew (`agent_breaker.crew_identity`: name#digest) and agent id."""
        return f"{self.prefix}:agent-breaker:{{{crew}/{agent}}}"

    @property
    def limits(self) -> str:
        return f"{self.prefix}:limits"

    def limit(self, scope: str) -> str:
        """The key base of one fleet limit's state (`scope` is "provider" or "provider/model")."""
        return f"{self.prefix}:limit:{scope}"

    @property
    def active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def inflight(self) -> str:
        return f"{self.prefix}:inflight"

    @property
    def released(self) -> str:
        return f"{self.prefix}:released"

    @property
    def leader(self) -> str:
        return f"{self.prefix}:supervisor:leader"

    def heartbeat(self, host: str) -> str:
        return f"{self.prefix}:worker:{host}"

    def decision(self, run_id: str, agent_id: str, attempt: int) -> str:
        return f"{self.prefix}:decision:{run_id}:{agent_id}:{attempt}"

    def applied(self, run_id: str, agent_id: str, attempt: int) -> str:
        return f"{self.decision(run_id, agent_id, attempt)}:applied"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def spec(self, run_id: str) -> str:
        return f"{self.run(run_id)}:spec"

    def events(self, run_id: str) -> str:
        return f"{self.run(run_id)}:events"

    def wave(self, run_id: str, wave: int) -> str:
        return f"{self.run(run_id)}:wave:{wave}"

    def agent(self, run_id: str, agent_id: str) -> str:
        return f"{self.run(run_id)}:agent:{agent_id}"

    def hosts(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:hosts"

    def replies(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:replies"

    def results(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:results"

    def calls(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:calls"

    def run_pattern(self, run_id: str) -> str:
        return f"{self.run(run_id)}*"
