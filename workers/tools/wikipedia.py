"""`wikipedia`: search titles (action=query&list=search) or read a page's summary (rest_v1).

    tools:
      - name: wikipedia
        max_results: 5
        extra: {language: en}     # base_url defaults to https://{lang}.wikipedia.org

Wikimedia asks API clients for a descriptive User-Agent; `extra.user_agent` overrides ours.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import quote

from crewq.config.errors import ToolError

from .base import ToolContext
from .nettool import NetTool

_LANG = re.compile(r"^[a-z][a-z0-9-]{1,15}$")  # it becomes part of a host name
_TAGS = re.compile(r"<[^>]+>")  # search snippets carry <span class="searchmatch"> only


class Wikipedia(NetTool):
    name = "wikipedia"
    description = ("Search Wikipedia (action 'search': titles and snippets) or read the summary of "
                   "one page (action 'summary': query is the page title).")
    default_base_url = "https://{lang}.wikipedia.org"
    parameters = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "search terms, or a page title"},
            "action": {"type": "string", "enum": ["search", "summary"], "default": "search"},
            "language": {"type": "string", "pattern": _LANG.pattern, "description": "e.g. en, de, fr"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 50},
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        lang = arguments.get("language") or self.option("language", context, "en")
        if not _LANG.match(str(lang)):
            raise ToolError(f"bad language code {lang!r}")
        base = self.base_url(context).replace("{lang}", str(lang))
        if arguments.get("action", "search") == "summary":
            return self._summary(base, arguments["query"], context)
        limit = arguments.get("max_results") or self.spec.max_results or 5
        return self._search(base, arguments["query"], int(limit), context)

    def _search(self, base: str, query: str, limit: int, context: ToolContext) -> dict[str, Any]:
        data = self.fetch_json("GET", f"{base}/w/api.php", context, params={
            "action": "query", "list": "search", "srsearch": query, "srlimit": limit,
            "format": "json", "formatversion": 2, "utf8": 1})
        if "error" in data:
            raise ToolError(f"wikipedia: {data['error'].get('info', data['error'])}")
        hits = (data.get("query") or {}).get("search") or []
        return {"results": [{
            "title": h.get("title", ""),
            "snippet": html.unescape(_TAGS.sub("", h.get("snippet", ""))),
            "url": f"{base}/wiki/{quote(str(h.get('title', '')).replace(' ', '_'))}",
        } for h in hits[:limit]]}

    def _summary(self, base: str, title: str, context: ToolContext) -> dict[str, Any]:
        path = quote(title.strip().replace(" ", "_"), safe="")
        got = self.fetch("GET", f"{base}/api/rest_v1/page/summary/{path}", context,
                         headers={"Accept": "application/json"})
        if got.status == 404:
            raise ToolError(f"no Wikipedia page titled {title!r}; try action 'search'")
        if got.status >= 400:
            raise ToolError(f"wikipedia answered HTTP {got.status}")
        try:
            data = json.loads(got.body)
        except ValueError:
            raise ToolError("wikipedia answered with something that is not JSON") from None
        page = ((data.get("content_urls") or {}).get("desktop") or {}).get("page")
        return {"title": data.get("title", title), "description": data.get("description", ""),
                "extract": data.get("extract", ""), "url": page or f"{base}/wiki/{path}"}
