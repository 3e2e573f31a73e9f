"""Ingestion: sources in, documents and embedded chunks out (see :mod:`.pipeline`)."""
