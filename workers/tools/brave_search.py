"""`brave_search`: Routex's name for web search through the Brave Search API (X-Subscription-Token).

    tools:
      - name: brave_search
        api_key: env:BRAVE_API_KEY
        max_results: 6

The same tool as `web_search` with `backend: brave`, under its own name, so a crew can have both a
Brave search and a DuckDuckGo `web_search`.
"""

from __future__ import annotations

from .web_search import WebSearch


class BraveSearch(WebSearch):
    name = "brave_search"
    description = "Search the web with Brave Search. Returns a list of results with title, url and snippet."

    @property
    def backend(self) -> str:
        return "brave"
