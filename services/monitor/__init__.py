"""The monitor service (see docs/architecture.md)."""
