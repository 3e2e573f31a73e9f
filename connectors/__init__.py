"""Connectors: one module per kind of source, each yielding documents with their ACLs."""
