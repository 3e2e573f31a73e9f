"""kb: an enterprise knowledge-base MCP server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kb-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
