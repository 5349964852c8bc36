"""The business layer: plain async functions over the database, shared by the API, CLI and workers.

Every operation takes the :class:`~graph.domain.platform.Platform` and the acting user, checks the
actor's project role itself, and runs in one transaction: it happens whole or not at all.
"""
