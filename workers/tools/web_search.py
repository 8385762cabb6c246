"""`web_search`: Brave, Tavily or DuckDuckGo instant answers, chosen by `extra.backend`.

    tools:
      - name: web_search
        api_key: env:BRAVE_API_KEY      # brave (X-Subscription-Token) or tavily (Bearer)
        max_results: 5
        extra: {backend: brave}         # brave | tavily | duckduckgo (no key; the default)

Every backend's answer becomes the same list of {title, url, snippet}.
"""

from __future__ import annotations

from typing import Any

from crewq.config.errors import ConfigError, ToolError

from .base import ToolContext
from .nettool import NetTool

BACKENDS = {
    "brave": "https://api.search.brave.com",
    "tavily": "https://api.tavily.com",
    "duckduckgo": "https://api.duckduckgo.com",
}
MAX_RESULTS_CAP = 20


class WebSearch(NetTool):
    name = "web_search"
    description = "Search the web. Returns a list of results with title, url and snippet."
    parameters = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "what to search for"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS_CAP},
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def __init__(self, spec=None):
        super().__init__(spec)
        self.backend  # a wrong backend is a config mistake: report it when the tool is built

    @property
    def backend(self) -> str:
        backend = str(self.spec.extra.get("backend", "duckduckgo")).lower()
        if backend not in BACKENDS:
            raise ConfigError(f"unknown web_search backend {backend!r} (brave, tavily or duckduckgo)",
                              key=f"tools.{self.spec.name}.extra.backend")
        return backend

    @property
    def default_base_url(self) -> str:  # type: ignore[override]
        return BACKENDS[self.backend]

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        limit = arguments.get("max_results") or self.spec.max_results or 5
        limit = min(int(limit), MAX_RESULTS_CAP)
        search = getattr(self, f"_{self.backend}")
        results = search(arguments["query"], limit, context)
        return {"backend": self.backend, **results}

    def _api_key(self, context: ToolContext) -> str:
        key = self.setting(self.spec.api_key, context, "api_key")
        if not key:
            raise ToolError(f"web_search backend {self.backend} needs api_key (e.g. env:{self.backend.upper()}_API_KEY)")
        return str(key)

    def _brave(self, query: str, limit: int, context: ToolContext) -> dict[str, Any]:
        data = self.fetch_json("GET", f"{self.base_url(context)}/res/v1/web/search", context,
                               params={"q": query, "count": limit},
                               headers={"X-Subscription-Token": self._api_key(context)})
        hits = (data.get("web") or {}).get("results") or []
        return {"results": [_result(h.get("title"), h.get("url"), h.get("description")) for h in hits[:limit]]}

    def _tavily(self, query: str, limit: int, context: ToolContext) -> dict[str, Any]:
        data = self.fetch_json("POST", f"{self.base_url(context)}/search", context,
                               json={"query": query, "max_results": limit},
                               headers={"Authorization": f"Bearer {self._api_key(context)}"})
        hits = data.get("results") or []
        out: dict[str, Any] = {"results": [_result(h.get("title"), h.get("url"), h.get("content")) for h in hits[:limit]]}
        if data.get("answer"):
            out["answer"] = data["answer"]
        return out

    def _duckduckgo(self, query: str, limit: int, context: ToolContext) -> dict[str, Any]:
        # Instant answers, not a full web index: an abstract, a direct answer and related topics.
        data = self.fetch_json("GET", f"{self.base_url(context)}/", context,
                               params={"q": query, "format": "json", "no_html": 1, "skip_disambig": 1})
        results = []
        if data.get("AbstractText"):
            results.append(_result(data.get("Heading"), data.get("AbstractURL"), data["AbstractText"]))
        for topic in _flatten(data.get("Results") or []) + _flatten(data.get("RelatedTopics") or []):
            results.append(_result(topic.get("Text", "").split(" - ")[0], topic.get("FirstURL"), topic.get("Text")))
        out: dict[str, Any] = {"results": results[:limit]}
        if data.get("Answer"):
            out["answer"] = data["Answer"]
        return out


def _flatten(topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for topic in topics:
        if "Topics" in topic:  # a named group of topics
            flat.extend(_flatten(topic["Topics"]))
        elif topic.get("FirstURL"):
            flat.append(topic)
    return flat


def _result(title: Any, url: Any, snippet: Any) -> dict[str, str]:
    return {"title": str(title or ""), "url": str(url or ""), "snippet": str(snippet or "")}
