"""The service's tables (SQLAlchemy 2 declarative). Ids are opaque strings
(``uuid4().hex``) so that they say nothing about how many rows exist.

Times are naive UTC (``utcnow``). A dataset or run is *scoped* by the countries of its depots (``countries``, a sorted list;
empty: a network without countries, visible only to unscoped tokens). Migrations:
optplan/service/migrations/ (Alembic); a change here needs a new revision there
(tests/service/test_parts.py compares the two).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Now in UTC, without a tzinfo (stored as such by SQLite and PostgreSQL alike)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    """An uploaded folder (instance, history, logs or pipeline config), stored once by its
    content hash under the data dir (``storage.Store``)."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    countries: Mapped[list] = mapped_column(JSON, default=list)
    files: Mapped[list] = mapped_column(JSON, default=list)  # relative paths
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict] = mapped_column(JSON, default=dict)  # an instance's start_date, depots, regions
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    __table_args__ = (UniqueConstraint("sha256", "kind", name="uq_dataset_content"),)


class Run(Base):
    """One job: its inputs, its state in the queue, and its outputs."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)  # what-if changes, --set path language
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    schedule_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    countries: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="", deferred=True)  # loaded only when read (up to 200 kB)
    error: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    outputs: Mapped[list] = mapped_column(JSON, default=list)  # file names under the run's output folder
    output_dir: Mapped[str] = mapped_column(String(300), default="")  # relative to the data dir
    exit_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    __table_args__ = (UniqueConstraint("created_by", "idempotency_key", name="uq_run_idempotency"),
                      Index("ix_runs_queue", "state", "lease_until"))


class RunCompletion(Base):
    """One row per run that finished, failed or was cancelled: its primary key makes a second
    completion of the same run impossible (the 'exactly once' of the fault tests)."""

    __tablename__ = "run_completions"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(12))
    at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Decision(Base):
    """An approval or rejection of a run's plan for a scope and planning week. The approved
    plan in force for (scope, key, week) is the latest approval not superseded."""

    __tablename__ = "decisions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(8))  # approved | rejected
    scope: Mapped[str] = mapped_column(String(8))  # network | country | region
    scope_key: Mapped[str] = mapped_column(String(64), default="")
    week: Mapped[str] = mapped_column(String(10))  # the planning week's first day, YYYY-MM-DD
    comment: Mapped[str] = mapped_column(Text, default="")
    countries: Mapped[list] = mapped_column(JSON, default=list)
    superseded_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Schedule(Base):
    """A run submitted on a cron schedule ("0 6 * * MON": every Monday 06:00, in ``timezone``)."""

    __tablename__ = "schedules"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    kind: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    countries: Mapped[list] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime] = mapped_column(DateTime())
    last_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Token(Base):
    """An API token: only its SHA-256 is stored (the secret is shown once, at creation)."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(10))  # viewer | planner | approver | admin
    countries: Mapped[list] = mapped_column(JSON, default=list)  # empty: every country (unscoped)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Worker(Base):
    """A worker process (for operators and the fault tests: which pid holds which run)."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Audit(Base):
    """Every change: who (token id), when, what (action and object), from where (client address)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(40))
    object_kind: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(32), index=True)  # a run's page reads its trail
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    client: Mapped[str] = mapped_column(String(64), default="")
    countries: Mapped[list] = mapped_column(JSON, default=list)


class WebSession(Base):
    """A browser's session in the workspace: the SHA-256 of its cookie, the token it signed in
    with, its CSRF token for forms, and when it expires (optplan.service.web)."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime())
