"""Alembic's environment for the record: run on the connection `migrate.upgrade` hands
over (no Alembic ini file, no URL here)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
