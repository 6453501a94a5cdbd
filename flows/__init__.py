"""Prefect flows: short recipes that wire the stages together. Nothing imports this package but the CLI."""
