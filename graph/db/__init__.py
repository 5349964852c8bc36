"""Persistence: typed tables, the async engine and migrations."""
