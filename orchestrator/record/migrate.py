"""Bring the record's schema up to date at start, with Alembic, programmatically."""

from __future__ import annotations

import sqlalchemy
from alembic import command
from alembic.config import Config as AlembicConfig

HEAD = "0005"


def sqlalchemy_url(url: str) -> str:
    """postgresql://… as SQLAlchemy names the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {scheme!r}")
    return f"postgresql+psycopg://{rest}"


def upgrade(url: str, revision: str = "head", zone: str = "Asia/Shanghai") -> None:
    """Apply every migration not yet applied (each in its transaction); safe to repeat
    and to run from several processes at once (an advisory lock orders them). `zone` is
    the deployment's, in which the record's business days are told."""
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(7263811)"))
            config = AlembicConfig()
            config.set_main_option("script_location", "orchestrator.record:migrations")
            config.attributes["connection"] = connection
            config.attributes["zone"] = zone
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
