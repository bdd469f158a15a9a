"""Fixtures of the shadow tests: storage tests run on SQLite and on PostgreSQL (the jobs tests'
migrated templates, copied per test)."""

from __future__ import annotations

from jobs.conftest import db, migrated_template, postgres_template

__all__ = ["db", "migrated_template", "postgres_template"]
