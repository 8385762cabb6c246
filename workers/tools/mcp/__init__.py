"""An MCP client over httpx (streamable HTTP) and pipes (stdio), with no MCP SDK at run time.

    jsonrpc   messages and errors          sse      Server-Sent Events parsing
    http      streamable HTTP transport    stdio    child-process transport
    session   initialize, tools/list, tools/call
    tools     servers as crewq tools, discovered once per process
"""

from .jsonrpc import McpError, McpUnavailable
from .session import McpSession
from .tools import McpServer, McpTool, forget_servers, mcp_tools

__all__ = ["McpError", "McpServer", "McpSession", "McpTool", "McpUnavailable", "forget_servers", "mcp_tools"]
