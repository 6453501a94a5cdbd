"""Stages that turn URLs into records: HTTP fetching, feed parsing, article extraction."""
