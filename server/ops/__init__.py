"""Operating the knowledge base: backups and restores of the whole database."""
