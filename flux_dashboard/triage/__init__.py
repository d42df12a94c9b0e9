"""Triage: the findings a team works through, kept in a database.

- ``db``: where the database is (``FLUX_DATABASE_URL``, else SQLite in the cache
  directory), its engine and its Alembic migrations (``migrations/``).
- ``tables``: the schema (findings, their append-only events, rules).
- ``store``: ``FindingsStore``: idempotent upserts of ``findings.detect``'s
  rows, triage with optimistic concurrency and history, expected-behaviour rules.
"""
