"""The HTTP API under /api/v1 (FastAPI; the OpenAPI description at /api/v1/openapi.json).

Nothing runs here but bookkeeping: uploads are checked and stored, runs are queued, and the
workers (optplan.service.worker) do the work. Every endpoint but ``/api/v1/health`` and
``/api/v1/health/ready`` needs ``Authorization: Bearer <token>`` (optplan.service.auth);
what a token's country scope does not cover is answered 404. Every error is JSON
``{"problems": ["one line each", ...]}`` with its status (401, 403, 404, 409, 413, 422), never
a traceback. Lists take ``limit`` (at most 500) and ``offset`` and return ``total``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from optplan.errors import InputError
from optplan.io.instance import load_instance
from optplan.io.whatif import parse_assignment
from optplan.service import auth
from optplan.service.auth import Principal
from optplan.service.db import Database
from optplan.service.jobs import DATASET_KINDS, KINDS, check_dataset, check_options
from optplan.service.models import Audit, Dataset, Decision, Run, Schedule, Token, Worker, utcnow
from optplan.service.plans import plan_of_outputs, table
from optplan.service.scheduler import check_cron, next_after
from optplan.service.storage import Limits, Store, UploadError, strip_single_folder, tree_files, tree_hash, unpack

log = logging.getLogger("optplan.service.app")

API = "/api/v1"
TERMINAL = ("finished", "failed", "cancelled")
#: Seconds between two looks at a run's state in a server-sent event stream.
EVENT_POLL = 0.5
MAX_LIMIT = 500


class Problems(HTTPException):
    def __init__(self, status: int, problems: list[str]):
        super().__init__(status_code=status, detail=problems)


def _not_found(what: str) -> Problems:
    return Problems(404, [f"{what}: not found"])


@dataclass
class Settings:
    db_url: str
    data_dir: Path
    limits: Limits = Limits()


# ---------------------------------------------------------------------------- request bodies


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRequest(_Strict):
    kind: str = Field(description=f"one of {', '.join(KINDS)}")
    dataset_id: str
    options: dict[str, Any] = Field(default_factory=dict, description="the command's options by name, e.g. time_limit")
    changes: dict[str, Any] = Field(default_factory=dict, description="what-if changes in the --set path language")
    parent_id: str | None = None
    max_attempts: int = Field(3, ge=1, le=10)


class DecisionRequest(_Strict):
    verdict: str = Field(description="approved or rejected")
    comment: str = ""
    scope: str = Field("network", description="network, country or region")
    scope_key: str = Field("", description="the country or region id ('' for the network)")
    week: str | None = Field(None, description="the planning week's first day (default: the instance's start date)")


class ScheduleRequest(_Strict):
    name: str
    cron: str = Field(description="five cron fields, e.g. '0 6 * * MON' (every Monday 06:00)")
    timezone: str = "UTC"
    kind: str
    dataset_id: str
    options: dict[str, Any] = Field(default_factory=dict)
    changes: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class TokenRequest(_Strict):
    name: str
    role: str = Field(description=f"one of {', '.join(auth.ROLES)}")
    countries: list[str] = Field(default_factory=list, description="the country scope (empty: every country)")


# ---------------------------------------------------------------------------- views


def _iso(t) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds") + "Z"


def dataset_view(d: Dataset) -> dict:
    return {"id": d.id, "kind": d.kind, "name": d.name, "sha256": d.sha256, "countries": d.countries,
            "files": d.files, "size_bytes": d.size_bytes, "summary": d.summary, "meta": d.meta,
            "created_by": d.created_by, "created_at": _iso(d.created_at)}


def run_view(r: Run) -> dict:
    return {"id": r.id, "kind": r.kind, "dataset_id": r.dataset_id, "options": r.options, "changes": r.changes,
            "parent_id": r.parent_id, "schedule_id": r.schedule_id, "countries": r.countries, "state": r.state,
            "attempts": r.attempts, "max_attempts": r.max_attempts, "cancel_requested": r.cancel_requested,
            "progress": r.progress, "error": r.error, "exit_status": r.exit_status, "seconds": r.seconds,
            "summary": r.summary, "outputs": r.outputs, "created_by": r.created_by, "created_at": _iso(r.created_at),
            "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at)}


def decision_view(d: Decision) -> dict:
    return {"id": d.id, "run_id": d.run_id, "verdict": d.verdict, "scope": d.scope, "scope_key": d.scope_key,
            "week": d.week, "comment": d.comment, "superseded_by": d.superseded_by, "created_by": d.created_by,
            "created_at": _iso(d.created_at)}


def schedule_view(s: Schedule) -> dict:
    return {"id": s.id, "name": s.name, "cron": s.cron, "timezone": s.timezone, "kind": s.kind,
            "dataset_id": s.dataset_id, "options": s.options, "changes": s.changes, "enabled": s.enabled,
            "next_run_at": _iso(s.next_run_at), "last_run_id": s.last_run_id, "created_by": s.created_by}


def _finite(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(df: pd.DataFrame) -> list[dict]:
    df = df.astype(object).where(pd.notna(df), None)
    return [{k: _finite(v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


# ---------------------------------------------------------------------------- the app


def create_app(settings: Settings) -> FastAPI:
    db = Database(settings.db_url)
    store = Store(settings.data_dir)
    app = FastAPI(title="optplan service", version="1", openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs",
                  redoc_url=None)
    app.state.db, app.state.store, app.state.settings = db, store, settings

    # -- errors: JSON lines, never a traceback
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, list) else [str(exc.detail)]
        return JSONResponse({"problems": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        lines = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
            lines.append(f"{where}: {e.get('msg', 'invalid')}")
        return JSONResponse({"problems": lines}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse({"problems": [f"internal error: {type(exc).__name__}"]}, status_code=500)

    # -- who is asking
    def principal(request: Request, authorization: str | None = Header(None)) -> Principal:
        secret = None
        if authorization and authorization.lower().startswith("bearer "):
            secret = authorization[7:].strip()
        with db.session() as s:
            who = auth.principal_of(s, secret)
        if who is None:
            raise Problems(401, ["a valid token is needed: Authorization: Bearer <token>"])
        return who

    def needs(role: str):
        def check(who: Principal = Depends(principal)) -> Principal:
            if not who.at_least(role):
                raise Problems(403, [f"this needs the {role} role; the token has {who.role}"])
            return who
        return check

    def audit(s, who: Principal, request: Request, action: str, kind: str, obj_id: str, countries=(), **detail):
        s.add(Audit(actor=who.token_id, action=action, object_kind=kind, object_id=obj_id, detail=detail,
                    client=request.client.host if request.client else "", countries=list(countries)))

    def visible_run(s, who: Principal, run_id: str) -> Run:
        run = s.get(Run, run_id)
        if run is None or not who.sees(run.countries):
            raise _not_found(f"run {run_id}")
        return run

    def visible_dataset(s, who: Principal, dataset_id: str) -> Dataset:
        d = s.get(Dataset, dataset_id)
        if d is None or not who.sees(d.countries):
            raise _not_found(f"dataset {dataset_id}")
        return d

    def scoped(rows, who: Principal):
        return [r for r in rows if who.sees(r.countries)]

    def page(items: list, limit: int, offset: int) -> dict:
        return {"items": items[offset:offset + limit], "total": len(items), "limit": limit, "offset": offset}

    # -- health
    @app.get(f"{API}/health", tags=["health"])
    def health():
        return {"status": "ok"}

    @app.get(f"{API}/health/ready", tags=["health"])
    def ready():
        checks = {}
        try:
            with db.session() as s:
                s.execute(text("SELECT 1"))
                checks["database"] = "ok"
                recent = utcnow().timestamp() - 120
                alive = [w for w in s.scalars(select(Worker)).all() if w.heartbeat_at.timestamp() >= recent]
                checks["workers"] = len(alive)
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            checks["database"] = f"unavailable: {type(exc).__name__}"
        ok = checks.get("database") == "ok"
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    # -- datasets
    @app.post(f"{API}/datasets", status_code=201, tags=["datasets"])
    async def upload(request: Request, kind: str = Form(...), name: str = Form(""),
                     files: list[UploadFile] = File(...), who: Principal = Depends(needs("planner"))):
        if kind not in DATASET_KINDS:
            raise Problems(422, [f"kind: expected one of {', '.join(DATASET_KINDS)}, found {kind!r}"])
        if len(files) > settings.limits.files:
            raise Problems(413, [f"more than {settings.limits.files} files in one upload"])
        scratch = store.scratch()
        try:
            total = 0
            blobs = []
            for f in files:
                chunks = []
                while chunk := await f.read(1 << 20):
                    total += len(chunk)
                    if total > settings.limits.bytes:
                        raise Problems(413, [f"the upload is larger than {settings.limits.bytes:,} bytes"])
                    chunks.append(chunk)
                blobs.append((f.filename or "upload", b"".join(chunks)))
            return await anyio.to_thread.run_sync(_store_upload, who, request, kind, name, blobs, scratch)
        except UploadError as exc:
            raise Problems(413 if any("more than" in p for p in exc.problems) else 422, exc.problems) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _store_upload(who, request, kind, name, blobs, scratch: Path):
        folder = scratch / "u"
        folder.mkdir()
        for filename, data in blobs:
            unpack(data, filename, folder, settings.limits)
        folder = strip_single_folder(folder)
        try:
            checked = check_dataset(kind, folder)
        except InputError as exc:
            lines = [str(p) for p in exc.problems]
            if exc.omitted:
                lines.append(f"... and {exc.omitted} more problems of the kinds above")
            raise Problems(422, lines) from None
        if not who.sees(checked.countries):
            raise Problems(403, [f"the dataset's countries ({', '.join(checked.countries) or 'none: a network'}) "
                                 f"are outside the token's scope ({', '.join(who.countries)})"])
        sha = tree_hash(folder)
        files = tree_files(folder)
        with db.session() as s:
            existing = s.scalar(select(Dataset).where(Dataset.sha256 == sha, Dataset.kind == kind))
            if existing is not None:
                return JSONResponse({**dataset_view(existing), "stored": "already"}, status_code=200)
            store.keep_dataset(folder, sha)
            d = Dataset(kind=kind, name=name or (checked.summary.split(":")[0] if checked.summary else kind),
                        sha256=sha, countries=checked.countries, files=files,
                        size_bytes=sum((folder / f).stat().st_size for f in files), summary=checked.summary,
                        meta=checked.meta or {}, created_by=who.token_id)
            s.add(d)
            try:
                s.flush()
            except IntegrityError:  # the same content uploaded at the same moment
                s.rollback()
                existing = s.scalar(select(Dataset).where(Dataset.sha256 == sha, Dataset.kind == kind))
                return JSONResponse({**dataset_view(existing), "stored": "already"}, status_code=200)
            audit(s, who, request, "dataset.upload", "dataset", d.id, d.countries, sha256=sha, dataset_kind=kind)
            return {**dataset_view(d), "stored": "new"}

    @app.get(f"{API}/datasets", tags=["datasets"])
    def list_datasets(kind: str | None = None, limit: int = Query(50, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0),
                      who: Principal = Depends(principal)):
        with db.session() as s:
            q = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id)
            if kind:
                q = q.where(Dataset.kind == kind)
            return page([dataset_view(d) for d in scoped(s.scalars(q).all(), who)], limit, offset)

    @app.get(f"{API}/datasets/{{dataset_id}}", tags=["datasets"])
    def get_dataset(dataset_id: str, who: Principal = Depends(principal)):
        with db.session() as s:
            return dataset_view(visible_dataset(s, who, dataset_id))

    # -- runs
    @app.post(f"{API}/runs", status_code=202, tags=["runs"])
    def submit(body: RunRequest, request: Request, idempotency_key: str | None = Header(None, max_length=200),
               who: Principal = Depends(needs("planner"))):
        with db.session() as s:
            if idempotency_key:
                seen = s.scalar(select(Run).where(Run.created_by == who.token_id, Run.idempotency_key == idempotency_key))
                if seen is not None:
                    return JSONResponse(run_view(seen), status_code=200 if who.sees(seen.countries) else 404)
            dataset = visible_dataset(s, who, body.dataset_id)
            problems = check_options(body.kind, body.options)
            if body.kind in KINDS and dataset.kind != KINDS[body.kind]:
                problems.append(f"dataset_id: a {body.kind} run reads a {KINDS[body.kind]} dataset; this one is a "
                                f"{dataset.kind}")
            if body.changes and dataset.kind != "instance":
                problems.append("changes: what-if changes apply to instance datasets only")
            if body.parent_id is not None:
                visible_run(s, who, body.parent_id)
            if not problems and body.changes:
                problems += _check_changes(store.dataset_dir(dataset.sha256), body.changes)
            if problems:
                raise Problems(422, problems)
            run = Run(kind=body.kind, dataset_id=dataset.id, options=body.options, changes=body.changes,
                      parent_id=body.parent_id, max_attempts=body.max_attempts, countries=list(dataset.countries),
                      created_by=who.token_id, idempotency_key=idempotency_key)
            s.add(run)
            try:
                s.flush()
            except IntegrityError:  # the same key submitted twice at the same moment: one run
                s.rollback()
                seen = s.scalar(select(Run).where(Run.created_by == who.token_id, Run.idempotency_key == idempotency_key))
                return JSONResponse(run_view(seen), status_code=200)
            audit(s, who, request, "run.submit", "run", run.id, run.countries, run_kind=run.kind)
            return run_view(run)

    @app.get(f"{API}/runs", tags=["runs"])
    def list_runs(state: str | None = None, kind: str | None = None, dataset_id: str | None = None,
                  limit: int = Query(50, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0),
                  who: Principal = Depends(principal)):
        with db.session() as s:
            q = select(Run).order_by(Run.created_at.desc(), Run.id)
            for col, value in ((Run.state, state), (Run.kind, kind), (Run.dataset_id, dataset_id)):
                if value:
                    q = q.where(col == value)
            return page([run_view(r) for r in scoped(s.scalars(q).all(), who)], limit, offset)

    @app.get(f"{API}/runs/{{run_id}}", tags=["runs"])
    def get_run(run_id: str, who: Principal = Depends(principal)):
        with db.session() as s:
            return run_view(visible_run(s, who, run_id))

    @app.get(f"{API}/runs/{{run_id}}/log", tags=["runs"], response_class=PlainTextResponse)
    def get_log(run_id: str, who: Principal = Depends(principal)):
        with db.session() as s:
            return PlainTextResponse(visible_run(s, who, run_id).log)

    @app.get(f"{API}/runs/{{run_id}}/events", tags=["runs"])
    async def events(run_id: str, request: Request, who: Principal = Depends(principal)):
        def look():
            with db.session() as s:
                return run_view(visible_run(s, who, run_id))

        first = await anyio.to_thread.run_sync(look)

        async def stream():
            last = None
            view = first
            while True:
                key = (view["state"], view["progress"], view["attempts"])
                if key != last:
                    yield {"event": "state", "data": json.dumps({k: view[k] for k in (
                        "id", "state", "progress", "attempts", "exit_status", "error")})}
                    last = key
                if view["state"] in TERMINAL or await request.is_disconnected():
                    return
                await asyncio.sleep(EVENT_POLL)
                view = await anyio.to_thread.run_sync(look)

        return EventSourceResponse(stream())

    @app.post(f"{API}/runs/{{run_id}}/cancel", tags=["runs"])
    def cancel(run_id: str, request: Request, who: Principal = Depends(needs("planner"))):
        with db.session() as s:
            run = visible_run(s, who, run_id)
            if run.state in TERMINAL:
                raise Problems(409, [f"run {run_id} is already {run.state}"])
            if s.execute(update(Run).where(Run.id == run_id, Run.state == "queued").values(
                    state="cancelled", cancel_requested=True, error="cancelled on request before it started",
                    finished_at=utcnow())).rowcount == 0:
                s.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
            audit(s, who, request, "run.cancel", "run", run_id, run.countries)
        with db.session() as s:
            return run_view(s.get(Run, run_id))

    def _output_path(run: Run, name: str) -> Path:
        if run.state not in ("finished", "failed") or name not in (run.outputs or []):
            raise _not_found(f"output {name!r} of run {run.id}")
        return store.output_dir(run.output_dir) / name  # the name is one of the run's own recorded outputs

    @app.get(f"{API}/runs/{{run_id}}/outputs", tags=["runs"])
    def outputs(run_id: str, who: Principal = Depends(principal)):
        with db.session() as s:
            run = visible_run(s, who, run_id)
            return {"run_id": run.id, "state": run.state, "files": run.outputs}

    @app.get(f"{API}/runs/{{run_id}}/outputs/{{name:path}}", tags=["runs"])
    def output(run_id: str, name: str, format: str | None = Query(None, pattern="^(json|csv|raw)$"),
               who: Principal = Depends(principal)):
        with db.session() as s:
            run = visible_run(s, who, run_id)
            path = _output_path(run, name)
        if format == "json" and name.endswith(".csv"):
            return JSONResponse({"file": name, "rows": records(pd.read_csv(path, keep_default_na=True))})
        media = {".csv": "text/csv", ".json": "application/json", ".html": "text/html", ".svg": "image/svg+xml",
                 ".yaml": "text/yaml", ".txt": "text/plain"}.get(Path(name).suffix, "application/octet-stream")
        return Response(path.read_bytes(), media_type=media)

    @app.get(f"{API}/compare", tags=["runs"])
    def compare_runs(a: str, b: str, format: str = Query("json", pattern="^(json|csv)$"),
                     who: Principal = Depends(principal)):
        with db.session() as s:
            ra, rb = visible_run(s, who, a), visible_run(s, who, b)
            sides = []
            for r in (ra, rb):
                if r.kind != "solve" or r.state != "finished":
                    raise Problems(409, [f"run {r.id}: a finished solve run is needed to compare (it is a {r.state} "
                                         f"{r.kind} run)"])
                sides.append((r, s.get(Dataset, r.dataset_id)))
        plans = [plan_of_outputs(store.dataset_dir(d.sha256), store.output_dir(r.output_dir)) for r, d in sides]
        try:
            df = table(plans[0], plans[1], (a, b))
        except ValueError as exc:
            raise Problems(409, [str(exc)]) from None
        if format == "csv":
            return Response(df.to_csv(index=False), media_type="text/csv")
        return {"a": a, "b": b, "rows": records(df)}

    # -- decisions
    @app.post(f"{API}/runs/{{run_id}}/decisions", status_code=201, tags=["decisions"])
    def decide(run_id: str, body: DecisionRequest, request: Request, who: Principal = Depends(needs("approver"))):
        problems = []
        if body.verdict not in ("approved", "rejected"):
            problems.append(f"verdict: expected approved or rejected, found {body.verdict!r}")
        if body.scope not in ("network", "country", "region"):
            problems.append(f"scope: expected network, country or region, found {body.scope!r}")
        with db.session() as s:
            run = visible_run(s, who, run_id)
            dataset = s.get(Dataset, run.dataset_id)
            if run.kind != "solve" or run.state != "finished":
                problems.append(f"run {run_id}: only a finished solve run's plan can be approved or rejected "
                                f"(this one is a {run.state} {run.kind} run)")
            if body.scope == "network" and body.scope_key:
                problems.append("scope_key: the network scope has no key")
            if body.scope == "country" and body.scope_key not in (run.countries or []):
                problems.append(f"scope_key: one of the run's countries ({', '.join(run.countries) or 'none'}), "
                                f"found {body.scope_key!r}")
            if body.scope == "region" and body.scope_key not in (dataset.meta or {}).get("regions", []):
                problems.append(f"scope_key: one of the instance's regions, found {body.scope_key!r}")
            if body.scope == "network" and not who.unscoped:
                problems.append("scope: a token scoped to countries approves for its countries or regions, not the "
                                "network")
            week = body.week or (dataset.meta or {}).get("start_date", "")
            if problems:
                raise Problems(422, problems)
            d = Decision(run_id=run.id, verdict=body.verdict, scope=body.scope, scope_key=body.scope_key, week=week,
                         comment=body.comment, countries=list(run.countries), created_by=who.token_id)
            s.add(d)
            s.flush()
            if body.verdict == "approved":
                s.execute(update(Decision).where(
                    Decision.scope == body.scope, Decision.scope_key == body.scope_key, Decision.week == week,
                    Decision.verdict == "approved", Decision.superseded_by.is_(None), Decision.id != d.id,
                ).values(superseded_by=d.id))
            audit(s, who, request, {"approved": "plan.approve", "rejected": "plan.reject"}[body.verdict],
                  "run", run.id, run.countries, decision=d.id, scope=body.scope, key=body.scope_key, week=week,
                  comment=body.comment)
            return decision_view(d)

    @app.get(f"{API}/decisions", tags=["decisions"])
    def list_decisions(run_id: str | None = None, week: str | None = None,
                       limit: int = Query(50, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0),
                       who: Principal = Depends(principal)):
        with db.session() as s:
            q = select(Decision).order_by(Decision.created_at.desc(), Decision.id)
            if run_id:
                q = q.where(Decision.run_id == run_id)
            if week:
                q = q.where(Decision.week == week)
            return page([decision_view(d) for d in scoped(s.scalars(q).all(), who)], limit, offset)

    @app.get(f"{API}/plans/in-force", tags=["decisions"])
    def in_force(week: str, scope: str = "network", key: str = "", who: Principal = Depends(principal)):
        with db.session() as s:
            d = s.scalar(select(Decision).where(
                Decision.scope == scope, Decision.scope_key == key, Decision.week == week,
                Decision.verdict == "approved", Decision.superseded_by.is_(None)))
            if d is None or not who.sees(d.countries):
                raise _not_found(f"an approved plan for {scope} {key!r} in the week of {week}")
            return {"decision": decision_view(d), "run": run_view(s.get(Run, d.run_id))}

    # -- schedules
    @app.post(f"{API}/schedules", status_code=201, tags=["schedules"])
    def create_schedule(body: ScheduleRequest, request: Request, who: Principal = Depends(needs("planner"))):
        with db.session() as s:
            dataset = visible_dataset(s, who, body.dataset_id)
            problems = check_cron(body.cron, body.timezone) + check_options(body.kind, body.options)
            if body.kind in KINDS and dataset.kind != KINDS[body.kind]:
                problems.append(f"dataset_id: a {body.kind} run reads a {KINDS[body.kind]} dataset; this one is a "
                                f"{dataset.kind}")
            if not problems and body.changes:
                problems += _check_changes(store.dataset_dir(dataset.sha256), body.changes)
            if problems:
                raise Problems(422, problems)
            sch = Schedule(name=body.name, cron=body.cron, timezone=body.timezone, kind=body.kind,
                           dataset_id=dataset.id, options=body.options, changes=body.changes,
                           countries=list(dataset.countries), enabled=body.enabled,
                           next_run_at=next_after(body.cron, body.timezone, utcnow()), created_by=who.token_id)
            s.add(sch)
            s.flush()
            audit(s, who, request, "schedule.create", "schedule", sch.id, sch.countries, cron=body.cron)
            return schedule_view(sch)

    @app.get(f"{API}/schedules", tags=["schedules"])
    def list_schedules(limit: int = Query(50, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0),
                       who: Principal = Depends(principal)):
        with db.session() as s:
            rows = s.scalars(select(Schedule).order_by(Schedule.created_at, Schedule.id)).all()
            return page([schedule_view(x) for x in scoped(rows, who)], limit, offset)

    @app.delete(f"{API}/schedules/{{schedule_id}}", tags=["schedules"])
    def delete_schedule(schedule_id: str, request: Request, who: Principal = Depends(needs("planner"))):
        with db.session() as s:
            sch = s.get(Schedule, schedule_id)
            if sch is None or not who.sees(sch.countries):
                raise _not_found(f"schedule {schedule_id}")
            sch.enabled = False
            audit(s, who, request, "schedule.disable", "schedule", sch.id, sch.countries)
            return schedule_view(sch)

    # -- tokens, audit, workers (admin)
    @app.post(f"{API}/tokens", status_code=201, tags=["admin"])
    def create_token(body: TokenRequest, request: Request, who: Principal = Depends(needs("admin"))):
        if body.role not in auth.ROLES:
            raise Problems(422, [f"role: expected one of {', '.join(auth.ROLES)}, found {body.role!r}"])
        if not who.unscoped and not body.countries:
            raise Problems(422, ["countries: a scoped admin gives tokens within its own countries"])
        if not who.unscoped and not set(body.countries) <= set(who.countries):
            raise Problems(403, ["countries: outside the token's own scope"])
        with db.session() as s:
            token, secret = auth.create_token(s, body.name, body.role, body.countries, created_by=who.token_id)
            audit(s, who, request, "token.create", "token", token.id, body.countries, role=body.role, name=body.name)
            return {"id": token.id, "name": token.name, "role": token.role, "countries": token.countries,
                    "token": secret, "note": "the token is shown once; it is stored hashed"}

    @app.get(f"{API}/tokens", tags=["admin"])
    def list_tokens(who: Principal = Depends(needs("admin"))):
        with db.session() as s:
            rows = [t for t in s.scalars(select(Token).order_by(Token.created_at)).all()
                    if who.unscoped or (t.countries and set(t.countries) <= set(who.countries))]
            return {"items": [{"id": t.id, "name": t.name, "role": t.role, "countries": t.countries,
                               "revoked": t.revoked, "created_at": _iso(t.created_at)} for t in rows]}

    @app.delete(f"{API}/tokens/{{token_id}}", tags=["admin"])
    def revoke_token(token_id: str, request: Request, who: Principal = Depends(needs("admin"))):
        with db.session() as s:
            t = s.get(Token, token_id)
            if t is None or not (who.unscoped or (t.countries and set(t.countries) <= set(who.countries))):
                raise _not_found(f"token {token_id}")
            t.revoked = True
            audit(s, who, request, "token.revoke", "token", t.id, t.countries)
            return {"id": t.id, "revoked": True}

    @app.get(f"{API}/audit", tags=["admin"])
    def audit_log(limit: int = Query(100, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0),
                  who: Principal = Depends(needs("admin"))):
        with db.session() as s:
            rows = s.scalars(select(Audit).order_by(Audit.id.desc())).all()
            rows = [a for a in rows if who.unscoped or who.sees(a.countries)]
            return page([{"id": a.id, "at": _iso(a.at), "actor": a.actor, "action": a.action,
                          "object_kind": a.object_kind, "object_id": a.object_id, "detail": a.detail,
                          "client": a.client} for a in rows], limit, offset)

    @app.get(f"{API}/workers", tags=["admin"])
    def workers(who: Principal = Depends(needs("admin"))):
        with db.session() as s:
            rows = s.scalars(select(Worker).order_by(Worker.started_at)).all()
            return {"items": [{"id": w.id, "host": w.host, "pid": w.pid, "run_id": w.run_id,
                               "started_at": _iso(w.started_at), "heartbeat_at": _iso(w.heartbeat_at)} for w in rows]}

    @app.get(f"{API}/stats", tags=["runs"])
    def stats(who: Principal = Depends(principal)):
        with db.session() as s:
            rows = s.execute(select(Run.state, Run.countries)).all()
            counts: dict[str, int] = {}
            for state, countries in rows:
                if who.sees(countries):
                    counts[state] = counts.get(state, 0) + 1
            return {"runs": counts, "datasets": len(scoped(s.scalars(select(Dataset)).all(), who)),
                    "runs_total": int(s.scalar(select(func.count(Run.id))) or 0) if who.unscoped else None}

    return app


def _check_changes(folder: Path, changes: dict) -> list[str]:
    """What-if changes applied to the stored instance, as the CLI's --set would: the problems."""
    try:
        parsed = dict(parse_assignment(f"{k}={v if isinstance(v, str) else json.dumps(v)}") for k, v in changes.items())
        load_instance(folder).with_changes(parsed)
    except InputError as exc:
        return [f"changes: {p}" for p in exc.problems]
    return []
