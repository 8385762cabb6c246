"""A real MCP server (the official `mcp` SDK), for the client tests: `python mcp_server.py stdio|http`.

Over http it binds 127.0.0.1 on a free port, prints `PORT <n>` on stdout, then serves.
Its tools: add (structured output), echo, fail (an isError result), lookup (a nested schema).
"""

from __future__ import annotations

import asyncio
import socket
import sys

from pydantic import BaseModel, Field

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

server = Server("fake-mcp")


class Filters(BaseModel):
    language: str = Field(description="a language code")
    tags: list[str] = Field(default_factory=list)


class Sum(BaseModel):
    total: int


@server.tool()
def add(a: int, b: int) -> Sum:
    """Add two integers."""
    return Sum(total=a + b)


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
def lookup(query: str, filters: Filters) -> str:
    """Look something up with nested filters."""
    return f"{query} in {filters.language} tagged {','.join(filters.tags) or '-'}"


async def serve_http() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    # Listening before the port is announced: a client may connect at once.
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    if sys.argv[1:] == ["http"]:
        asyncio.run(serve_http())
    else:
        server.run()
