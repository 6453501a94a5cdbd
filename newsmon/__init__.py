"""newsmon: a scheduled news-monitoring pipeline (feeds -> text -> tags -> DuckDB -> alerts)."""

__version__ = "0.1.0"
