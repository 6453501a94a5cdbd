"""Alerts: which stories alert where (policy, pure) and delivery through Apprise (notify)."""
