"""The featurestore service (see docs/architecture.md)."""
