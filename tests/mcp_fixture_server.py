"""A small real MCP server written with the official SDK's server API (`MCPServer`), for tests
and bench/mcp_overhead.py.

    python -m tests.mcp_fixture_server stdio
    python -m tests.mcp_fixture_server http PORT

Tools: add (JSON result), echo (text), picture (a PNG image), document (embedded resources and
a link), fail (the tool's own error), slow (sleeps), crash (the process exits mid-call), pid.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image

server = MCPServer("fixture")


@server.tool()
def add(a: float, b: float) -> dict:
    """Add two numbers and return the sum."""
    return {"sum": a + b}


@server.tool()
def echo(text: str) -> str:
    """Echo the text back unchanged."""
    return text


@server.tool()
def picture(width: int = 8, height: int = 6) -> Image:
    """Draw a small red picture and return it as a PNG image."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return Image(data=buffer.getvalue(), format="png")


@server.tool()
def document() -> list:
    """Return a text resource, a picture resource, a binary resource and a resource link."""
    import base64

    from mcp_types import BlobResourceContents, EmbeddedResource, ResourceLink, TextContent, TextResourceContents

    buffer = io.BytesIO()
    from PIL import Image as PILImage

    PILImage.new("RGB", (3, 2), (0, 90, 200)).save(buffer, format="PNG")
    return [
        TextContent(text="Here is the report."),
        EmbeddedResource(resource=TextResourceContents(uri="file:///report.txt", text="Sales rose 12%.", mime_type="text/plain")),
        EmbeddedResource(resource=BlobResourceContents(uri="file:///chart.png", blob=base64.b64encode(buffer.getvalue()).decode(), mime_type="image/png")),
        EmbeddedResource(resource=BlobResourceContents(uri="file:///data.bin", blob=base64.b64encode(b"\0" * 30).decode(), mime_type="application/octet-stream")),
        ResourceLink(uri="https://example.com/full", name="full report"),
    ]


@server.tool()
def fail(reason: str = "no reason") -> str:
    """Always fails with the given reason."""
    raise ValueError(f"fixture failure: {reason}")


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep for the given number of seconds, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def crash() -> str:
    """Exit the server process in the middle of the call."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


def main(argv: list[str]) -> None:
    if argv[:1] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
