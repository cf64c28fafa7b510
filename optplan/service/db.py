"""The database: an engine per URL, sessions, and migrations by Alembic.

``--db`` takes any SQLAlchemy URL: ``sqlite:///path/service.sqlite`` (the default, a file under the
data dir: one command works on a fresh machine) or ``postgresql+psycopg://user@host/db``.
SQLite runs in WAL mode with a busy timeout, so the web process and the workers (separate
processes) read while one writes. ``migrate(url)`` upgrades the schema to the latest Alembic
revision (optplan/service/migrations/versions/); ``optplan serve`` runs it at start.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
#: Seconds a SQLite connection waits for another process's write lock before it fails.
SQLITE_BUSY_SECONDS = 30


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / 'service.sqlite').resolve()}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # pragma: no cover - trivially exercised by every test
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """An engine and a session factory for one URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self):
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the latest revision (creating it if empty)."""
    command.upgrade(alembic_config(url), "head")


def session_of(db: Database) -> Session:
    return db.sessions()
