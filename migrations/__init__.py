"""Alembic migrations of the knowledge-base schema (run with `kb db upgrade`)."""
