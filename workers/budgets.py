"""A run's budgets from its crew file (`task.max_tokens`, `task.max_cost`), checked before each LLM call.

The run's usage is summed in its ledger hash by every call (`Ledger.add_usage`), so the check reads
what the turn has read already. Calls in flight when a budget runs out still finish (their replies
are kept): a budget stops the next call, it cannot take back one that has started.
"""

from __future__ import annotations

from typing import Any, Mapping

from crewq.config.schema import TaskSpec


def spent(run: Mapping[str, Any]) -> dict[str, Any]:
    """What a run has spent so far: tokens, cost (USD) and calls to models without a price."""
    return {"tokens": int(run.get("input_tokens") or 0) + int(run.get("output_tokens") or 0),
            "cost_usd": float(run.get("cost_usd") or 0), "unpriced_calls": int(run.get("unpriced_calls") or 0)}


def exhausted(task: TaskSpec, run: Mapping[str, Any]) -> str | None:
    """Why no new LLM call may start (the budget named, and what was spent), or None."""
    used = spent(run)
    if task.max_tokens and used["tokens"] >= task.max_tokens:
        return f"budget task.max_tokens ({task.max_tokens}) is spent: {used['tokens']} tokens used"
    if task.max_cost and used["cost_usd"] >= task.max_cost:
        unpriced = f"; {used['unpriced_calls']} calls to models without a price not counted" \
            if used["unpriced_calls"] else ""
        return f"budget task.max_cost (${task.max_cost:g}) is spent: ${used['cost_usd']:.4f} used{unpriced}"
    return None
