"""Cost estimates from the price table, the user's price file, and the retry countdown."""

from __future__ import annotations

import json

import pytest

from crewq.workers.llm import pricing
from crewq.workers.llm.pricing import estimate_cost
from crewq.workers.llm.retry import countdown
from crewq.workers.llm.types import Usage

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.fixture(autouse=True)
def no_user_prices(monkeypatch):
    monkeypatch.delenv(pricing.ENV_VAR, raising=False)
    yield
    pricing._registered.clear()


def test_default_prices_match_dated_snapshots_by_prefix():
    assert estimate_cost("anthropic", "claude-sonnet-4-5-20250929", MILLION) == pytest.approx(18.0)
    assert estimate_cost("openai", "gpt-4o-mini-2024-07-18", MILLION) == pytest.approx(0.75)  # not gpt-4o's
    assert estimate_cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=500)) == pytest.approx(0.0075)


def test_unknown_models_have_no_price_and_local_ones_are_free():
    assert estimate_cost("openai", "my-finetune", MILLION) is None
    assert estimate_cost("openai-compatible", "gpt-4o", MILLION) is None
    assert estimate_cost("ollama", "llama3.1", MILLION) == 0.0
    assert estimate_cost("nobody", None, MILLION) is None


def test_a_price_file_extends_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"openai": {"gpt-4o": {"input": 1, "output": 2}},
                                "openai-compatible": {"*": {"input": 0.5, "output": 0.5}}}))
    monkeypatch.setenv(pricing.ENV_VAR, str(path))
    assert estimate_cost("openai", "gpt-4o-2024-08-06", MILLION) == pytest.approx(3.0)
    assert estimate_cost("openai-compatible", "qwen", MILLION) == pytest.approx(1.0)
    assert estimate_cost("openai", "gpt-4.1", MILLION) == pytest.approx(10.0)  # defaults still there


def test_a_broken_price_file_is_ignored(tmp_path, monkeypatch, caplog):
    path = tmp_path / "prices.json"
    path.write_text('{"openai": {"gpt-4o": {"input": "cheap"}}}')
    monkeypatch.setenv(pricing.ENV_VAR, str(path))
    assert estimate_cost("openai", "gpt-4o", MILLION) == pytest.approx(12.5)
    assert "ignoring price file" in caplog.text


def test_register_prices():
    pricing.register_prices({"anthropic": {"claude-next": {"input": 1, "output": 1}}})
    assert estimate_cost("anthropic", "claude-next-2026", MILLION) == pytest.approx(2.0)


def test_countdown_honours_retry_after_within_the_cap():
    assert countdown(0, 2.0) == 2.0
    assert countdown(3, 500.0) == 60.0
    assert countdown(0, 500.0, max_backoff=10) == 10


@pytest.mark.parametrize("retries,low,high", [(0, 0.5, 1), (2, 2, 4), (10, 30, 60)])
def test_countdown_backs_off_exponentially_with_jitter(retries, low, high):
    waits = [countdown(retries, None) for _ in range(50)]
    assert all(low <= w <= high for w in waits) and len(set(waits)) > 1
