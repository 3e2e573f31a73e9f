"""The append-only audit log of every MCP and admin call."""
