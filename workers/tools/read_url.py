"""`read_url`: fetch a page and return its readable text (title, headings, paragraphs, links' text).

HTML goes through BeautifulSoup with the stdlib parser (no C extension to build); scripts,
styles, navigation chrome and hidden elements are dropped. Plain text and JSON pass as they are.
"""

from __future__ import annotations

import re
from typing import Any

from crewq.config.errors import ToolError

from .base import ToolContext
from .nettool import NetTool

DROPPED = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "head",
           "nav", "footer", "form", "button"]
BLOCKS = ["p", "div", "section", "article", "main", "li", "tr", "br", "h1", "h2", "h3", "h4",
          "h5", "h6", "pre", "blockquote", "dd", "dt", "figcaption", "table", "ul", "ol"]
TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "application/json", "application/xml", "text/xml")
DEFAULT_MAX_CHARS = 20_000
MAX_BYTES = 5_000_000


class ReadUrl(NetTool):
    name = "read_url"
    description = "Fetch a web page and return its readable text."
    parameters = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^https?://", "description": "an http(s) URL"},
            "max_chars": {"type": "integer", "minimum": 100, "maximum": 100_000},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        got = self.fetch("GET", arguments["url"], context, max_bytes=MAX_BYTES,
                         headers={"Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"})
        if got.status >= 400:
            raise ToolError(f"{arguments['url']} answered HTTP {got.status}")
        kind = got.content_type
        if kind in ("text/html", "application/xhtml+xml") or (not kind and got.body.lstrip()[:1] == b"<"):
            text = readable_text(got.text())
        elif kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith("+json"):
            text = got.text()
        else:
            raise ToolError(f"{arguments['url']} is {kind or 'of an unknown type'}, not a text page")
        limit = arguments.get("max_chars") or int(self.spec.extra.get("max_chars", DEFAULT_MAX_CHARS))
        if len(text) > limit:
            text = text[:limit] + f"\n…[truncated {len(text) - limit} characters]"
        return text


def readable_text(markup: str) -> str:
    from bs4 import BeautifulSoup  # ~0.1 s to import: when a page is read, not when the registry loads
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(DROPPED):
        tag.decompose()
    for tag in soup.find_all(None, attrs={"hidden": True}):
        tag.decompose()
    for tag in soup.find_all(None, attrs={"aria-hidden": "true"}):
        tag.decompose()
    for tag in soup.find_all(BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in soup.get_text().splitlines())
    body = "\n".join(line for line in lines if line)
    return f"{title}\n\n{body}" if title else body
