"""Alembic's environment: always run by ``triage.db.upgrade`` with a connection."""

from alembic import context

from flux_dashboard.triage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
