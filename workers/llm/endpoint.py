"""One `base_url` rule for every provider: the server's root, any leading part of the endpoint's path,
or the whole endpoint (Routex writes full endpoints); crewq adds what is missing.

    anthropic  /v1/messages                         https://api.anthropic.com, .../v1 or .../v1/messages
    openai     /v1/chat/completions                 http://host:8000, .../v1 or .../v1/chat/completions
    gemini     /v1beta/models/{model}:generateContent   root, .../v1beta, or a full ...:generateContent URL
    ollama     /api/chat                            http://localhost:11434, .../api or .../api/chat

A base path ending in `.../models/<model>:generateContent` names its own model; that URL is used as written.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def join(base_url: str, endpoint: str) -> str:
    """`endpoint` (a path such as "/v1/messages") on `base_url`, overlapping what base_url already has."""
    parts = urlsplit(base_url.strip())
    have = [s for s in parts.path.split("/") if s]
    want = [s for s in endpoint.split("/") if s]
    if have and want and ":" in want[-1] and have[-1].endswith(":" + want[-1].split(":", 1)[1]):
        return base_url.strip()  # a full Gemini-style endpoint, model included
    for overlap in range(min(len(have), len(want)), 0, -1):
        if have[-overlap:] == want[:overlap]:
            have = have[:-overlap]
            break
    path = "/" + "/".join(have + want)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
