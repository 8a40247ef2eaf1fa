"""The serving service (see docs/architecture.md)."""
