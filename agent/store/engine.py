"""Opening a store database: engine settings per backend and schema migrations to the newest revision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError

from agent.errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, sqlite_synchronous: str = "normal") -> Engine:
    """Engine for ``url``. SQLite runs in WAL mode with foreign keys on; PostgreSQL through psycopg 3."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            sync = {"normal": "NORMAL", "full": "FULL"}[sqlite_synchronous]

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise StoreError(f"store URL {url!r} is not usable: {exc}") from exc


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest revision; refuses a database made by a newer matloop."""
    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            script = ScriptDirectory.from_config(cfg)
            if current is not None and current not in {r.revision for r in script.walk_revisions()}:
                raise StoreError(
                    f"the store's schema revision {current!r} is unknown to this matloop (newest known: "
                    f"{head_revision()!r}); upgrade matloop to open it"
                )
            if current != head_revision():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the store at {engine.url.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
