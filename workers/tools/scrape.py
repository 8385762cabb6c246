"""`scrape`: a web page through ScrapingBee (GET /api/v1/), as readable text; Routex's settings.

    tools:
      - name: scrape
        api_key: env:SCRAPINGBEE_API_KEY
        extra: {render_js: true}          # Routex's default: pages are rendered in a browser first

The model passes `url` and optionally `render_js`. ScrapingBee fetches the page, so the address
guard applies to the API host, not the page; the key goes only to ScrapingBee (or extra.base_url).
"""

from __future__ import annotations

from typing import Any

from crewq.config.errors import ToolError

from .base import ToolContext
from .nettool import NetTool
from .read_url import readable_text

DEFAULT_MAX_BYTES = 2_000_000


class Scrape(NetTool):
    name = "scrape"
    description = "Fetch a web page (JavaScript rendered) and return its readable text."
    default_base_url = "https://app.scrapingbee.com"
    timeout = 60.0  # rendering takes a while
    parameters = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^https?://", "description": "the page to scrape"},
            "render_js": {"type": "boolean", "description": "render JavaScript first (default true)"},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        key = self.setting(self.spec.api_key, context, "api_key")
        if not key:
            raise ToolError("scrape needs api_key (a ScrapingBee key, e.g. env:SCRAPINGBEE_API_KEY)")
        render = arguments.get("render_js", self.option("render_js", context, True))
        render = render if isinstance(render, bool) else str(render).lower() != "false"
        got = self.fetch("GET", f"{self.base_url(context)}/api/v1/", context, max_bytes=DEFAULT_MAX_BYTES,
                         params={"api_key": key, "url": arguments["url"], "render_js": "true" if render else "false"})
        if got.status >= 300:
            raise ToolError(f"ScrapingBee answered HTTP {got.status} for {arguments['url']}: {got.text()[:300]}")
        text = readable_text(got.text()) if "html" in got.content_type else got.text()
        return {"url": arguments["url"], "text": text, **({"truncated": True} if got.truncated else {})}
