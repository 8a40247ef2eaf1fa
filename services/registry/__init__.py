"""The registry service (see docs/architecture.md)."""
