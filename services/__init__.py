"""Tideline services: one package each, started with `tideline run <service>`."""
