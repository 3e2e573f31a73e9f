"""The MCP surface: tools, resources and prompts over stdio and Streamable HTTP."""
