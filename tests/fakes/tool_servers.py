"""One local HTTP server that plays Brave, Tavily, DuckDuckGo, Wikipedia, DeepL, ScrapingBee, SendGrid,
Resend, OpenAI Images, a web page and an echo API.

Each built-in's `extra.base_url` is pointed here (127.0.0.1, a free port). Every request is
recorded (`requests`) so tests can check what a tool sent: path, query, headers, body.
"""

from __future__ import annotations

import base64
import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .local_http import LocalHTTP

PAGE = """<!doctype html><html><head><title>Octopus facts</title><style>p{color:red}</style>
<script>var tracking = "do not show";</script></head>
<body><nav>Home | About</nav><main><h1>Octopuses</h1>
<p>An octopus has <b>three</b> hearts.</p><p hidden>secret hidden text</p>
<ul><li>Eight arms</li><li>Blue blood</li></ul></main><footer>© nobody</footer></body></html>"""


class FakeApis(LocalHTTP):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__(_handler(self))

    @property
    def url(self) -> str:
        return self.root

    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def route(self, req: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        path, q = req["path"], req["query"]
        if path == "/res/v1/web/search":  # Brave
            if req["headers"].get("x-subscription-token") != "brave-key":
                return _json(401, {"error": "bad token"})
            hits = [{"title": f"Brave {i}", "url": f"https://b.example/{i}", "description": f"about {q['q']}"}
                    for i in range(int(q.get("count", 10)))]
            return _json(200, {"web": {"results": hits}})
        if path == "/search" and req["method"] == "POST":  # Tavily
            if req["headers"].get("authorization") != "Bearer tavily-key":
                return _json(401, {"detail": "bad key"})
            body = json.loads(req["body"])
            hits = [{"title": f"Tavily {i}", "url": f"https://t.example/{i}", "content": body["query"], "score": 0.9}
                    for i in range(body["max_results"])]
            return _json(200, {"query": body["query"], "answer": "forty-two", "results": hits})
        if path == "/" and q.get("format") == "json":  # DuckDuckGo instant answers
            return _json(200, {"Heading": "Octopus", "AbstractText": "A soft-bodied mollusc.",
                               "AbstractURL": "https://wiki.example/wiki/Octopus", "Answer": "",
                               "RelatedTopics": [{"Text": "Squid - a cousin", "FirstURL": "https://ddg.example/Squid"},
                                                 {"Name": "Group", "Topics": [{"Text": "Cuttlefish - another",
                                                                               "FirstURL": "https://ddg.example/C"}]}]})
        if path == "/w/api.php":  # Wikipedia search
            return _json(200, {"query": {"search": [
                {"title": "Octopus", "pageid": 1, "snippet": 'The <span class="searchmatch">octopus</span> &amp; friends'},
                {"title": "Giant Pacific octopus", "pageid": 2, "snippet": "big"}]}})
        if path.startswith("/api/rest_v1/page/summary/"):
            title = unquote(path.rsplit("/", 1)[1])
            if title != "Octopus":
                return _json(404, {"title": "Not found."})
            return _json(200, {"title": "Octopus", "description": "mollusc", "extract": "Octopuses have three hearts.",
                               "content_urls": {"desktop": {"page": "https://wiki.example/wiki/Octopus"}}})
        if path == "/page":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, PAGE.encode()
        if path == "/binary":
            return 200, {"Content-Type": "image/png"}, b"\x89PNG...."
        if path == "/redirect":
            return 302, {"Location": q["to"]}, b""
        if path == "/big":
            return 200, {"Content-Type": "text/plain"}, b"x" * int(q.get("n", 100_000))
        if path == "/v2/translate":  # DeepL
            if req["headers"].get("authorization") != "DeepL-Auth-Key deepl-key:fx":
                return _json(403, {"message": "Wrong endpoint or key"})
            body = json.loads(req["body"])
            return _json(200, {"translations": [{"detected_source_language": "EN",
                                                 "text": f"[{body['target_lang']}] {t}"} for t in body["text"]]})
        if path == "/api/v1/":  # ScrapingBee
            if q.get("api_key") != "bee-key":
                return _json(401, {"message": "Invalid api key"})
            return 200, {"Content-Type": "text/html; charset=utf-8", "Spb-Resolved-Url": q["url"]}, PAGE.encode()
        if path == "/v3/mail/send":  # SendGrid
            if req["headers"].get("authorization") != "Bearer mail-key":
                return _json(401, {"errors": [{"message": "bad key"}]})
            return 202, {"X-Message-Id": "sg-1"}, b""
        if path == "/emails" and req["method"] == "POST":  # Resend
            if req["headers"].get("authorization") != "Bearer mail-key":
                return _json(401, {"name": "validation_error"})
            return _json(200, {"id": "re-1"})
        if path == "/v1/images/generations":  # OpenAI Images
            if req["headers"].get("authorization") != "Bearer image-key":
                return _json(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
            body = json.loads(req["body"])
            png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + body["prompt"].encode()).decode()
            return _json(200, {"created": 1, "data": [{"b64_json": png, "revised_prompt": "a " + body["prompt"]}]})
        if path.startswith("/echo"):
            return _json(int(q.get("status", 200)), {k: req[k] for k in ("method", "path", "query", "headers", "body")})
        return _json(404, {"error": "no route"})


def _json(status: int, data: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", "X-Request-Id": "req-1"}, json.dumps(data).encode()


def _handler(fake: FakeApis) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = {"method": self.command, "path": parts.path,
                   "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": self.rfile.read(length).decode() if length else ""}
            fake.requests.append(req)
            status, headers, body = fake.route(req)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler
