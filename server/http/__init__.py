"""HTTP doors: health, admin REST, and the mount point of the MCP endpoint."""
