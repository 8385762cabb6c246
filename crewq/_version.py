"""The installed version, read from the package metadata in one place (the CLI, the MCP client's
`clientInfo` and the tools' User-Agent all use it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crewq")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
