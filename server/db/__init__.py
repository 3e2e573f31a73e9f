"""Storage: the knowledge-base database (embedded or external), schema and migrations."""
