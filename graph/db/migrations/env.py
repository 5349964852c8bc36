"""Alembic environment: runs on the connection that ``graph.db.migrate`` hands over."""

from alembic import context

from graph.db.tables import Base
from graph.db.trigger_keys import include_object

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
