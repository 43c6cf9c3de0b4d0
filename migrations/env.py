"""Alembic environment: the URL comes from Quota Gap's settings unless the caller passes one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.pipeline.records import Base, open_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER constraints; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from app.core.config import get_settings

        url = get_settings().database_url
    engine = open_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
