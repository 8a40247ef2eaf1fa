"""The ingest service (see docs/architecture.md)."""
