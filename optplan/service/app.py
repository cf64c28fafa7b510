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
import functools
import json
import logging
import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, text, update
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from optplan.service import auth, ops, web
from optplan.service.auth import Principal
from optplan.service.db import Database
from optplan.service.jobs import DATASET_KINDS, KINDS
from optplan.service.models import Audit, Dataset, Decision, Run, Schedule, Token, Worker, utcnow
from optplan.service.storage import Limits, Store, UploadError

log = logging.getLogger("optplan.service.app")

API = "/api/v1"
TERMINAL = ("finished", "failed", "cancelled")
#: Seconds between two looks at a run's state in a server-sent event stream.
EVENT_POLL = 0.5
MAX_LIMIT = 500


Problems, _not_found = ops.Problems, ops.not_found


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


class ScheduleChange(_Strict):
    name: str | None = None
    cron: str | None = None
    timezone: str | None = None
    kind: str | None = None
    dataset_id: str | None = None
    options: dict[str, Any] | None = None
    changes: dict[str, Any] | None = None
    enabled: bool | None = None


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


@functools.lru_cache(maxsize=256)
def _csv_as_json(path: str, name: str, mtime_ns: int, size: int) -> bytes:
    """An output CSV as JSON rows, cached by file and version (outputs are written once)."""
    return json.dumps({"file": name, "rows": records(pd.read_csv(path, keep_default_na=True))}).encode()


#: Seconds a token check is remembered (a revoked token stops working on other server
#: processes within this; on the one that revoked it at once).
TOKEN_CACHE_SECONDS = 5.0


class TokenCache:
    def __init__(self):
        self._seen: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, secret: str | None) -> Principal | None:
        if not secret:
            return None
        with self._lock:
            hit = self._seen.get(secret)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, secret: str, who: Principal) -> None:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[secret] = (who, time.monotonic() + TOKEN_CACHE_SECONDS)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


#: Largest body of a request other than an upload (JSON), bytes.
JSON_BODY_BYTES = 2 * 1024 * 1024
#: Room for the multipart framing of an upload beyond its files, bytes.
UPLOAD_FRAMING_BYTES = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request must declare its length (Content-Length) and stay within the
    limit (uploads: the upload limit; anything else: JSON_BODY_BYTES) before any of it is read,
    so an oversized upload is refused (413) without being spooled to disk; a body longer than
    it declared is cut off (the parser then fails it)."""

    def __init__(self, app, upload_bytes: int):
        self.app, self.upload_bytes = app, upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        limit = self.upload_bytes + UPLOAD_FRAMING_BYTES if scope["path"].endswith("/datasets") else JSON_BODY_BYTES
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is None or not declared.isdigit():
            return await _problem(send, 411, "a request body needs a Content-Length header")
        if int(declared) > limit:
            return await _problem(send, 413, f"the request body is larger than {limit:,} bytes")
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > int(declared):  # more than it said: stop reading
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, counted, send)


async def _problem(send, status: int, line: str) -> None:
    body = json.dumps({"problems": [line]}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------- the app


def create_app(settings: Settings) -> FastAPI:
    db = Database(settings.db_url)
    store = Store(settings.data_dir)
    app = FastAPI(title="optplan service", version="1", openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs",
                  redoc_url=None)
    app.state.db, app.state.store, app.state.settings = db, store, settings
    tokens = TokenCache()
    app.add_middleware(BodyLimit, upload_bytes=settings.limits.bytes)

    # -- the workspace's pages (optplan/service/web.py) and their static files
    app.include_router(web.router)
    app.mount("/ui/static", StaticFiles(directory=str(Path(web.__file__).parent / "static")), name="static")

    @app.exception_handler(web.SignIn)
    async def _sign_in(request: Request, exc: web.SignIn):
        return RedirectResponse(f"/ui/sign-in?next={quote(exc.next_url)}", status_code=303)

    # -- errors: JSON lines (an HTML page in the workspace), never a traceback
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, list) else [str(exc.detail)]
        if request.url.path.startswith("/ui/") and not request.url.path.startswith("/ui/static/"):
            titles = {403: "Not allowed", 404: "Not found", 409: "Not now", 413: "Too large", 422: "Please check"}
            return web.render(request, "error.html", None, None, status=exc.status_code,
                              title=titles.get(exc.status_code, "Something went wrong"), lines=detail)
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
        who = tokens.get(secret)
        if who is None:
            with db.session() as s:
                who = auth.principal_of(s, secret)
            if who is not None:
                tokens.put(secret, who)
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
        ops.audit(s, who, _client(request), action, kind, obj_id, countries, **detail)

    visible_run, visible_dataset, scoped = ops.visible_run, ops.visible_dataset, ops.scoped

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
            d, new = await anyio.to_thread.run_sync(ops.store_upload, db, store, settings.limits, who, _client(request),
                                                    kind, name, blobs, scratch)
            if not new:
                return JSONResponse({**dataset_view(d), "stored": "already"}, status_code=200)
            return {**dataset_view(d), "stored": "new"}
        except UploadError as exc:
            raise Problems(413 if any("more than" in p for p in exc.problems) else 422, exc.problems) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

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
        run, new = ops.submit_run(db, store, who, _client(request), body.kind, body.dataset_id, body.options, body.changes,
                                  body.parent_id, body.max_attempts, idempotency_key)
        return run_view(run) if new else JSONResponse(run_view(run), status_code=200)

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
            st = path.stat()
            return Response(_csv_as_json(str(path), name, st.st_mtime_ns, st.st_size), media_type="application/json")
        media = {".csv": "text/csv", ".json": "application/json", ".html": "text/html", ".svg": "image/svg+xml",
                 ".yaml": "text/yaml", ".txt": "text/plain"}.get(Path(name).suffix, "application/octet-stream")
        return Response(path.read_bytes(), media_type=media)

    @app.get(f"{API}/compare", tags=["runs"])
    def compare_runs(a: str, b: str, format: str = Query("json", pattern="^(json|csv)$"),
                     who: Principal = Depends(principal)):
        df = ops.compare_runs(db, store, who, a, b)
        if format == "csv":
            return Response(df.to_csv(index=False), media_type="text/csv")
        return {"a": a, "b": b, "rows": records(df)}

    # -- decisions
    @app.post(f"{API}/runs/{{run_id}}/decisions", status_code=201, tags=["decisions"])
    def decide(run_id: str, body: DecisionRequest, request: Request, who: Principal = Depends(needs("approver"))):
        return decision_view(ops.decide(db, who, _client(request), run_id, body.verdict, body.comment, body.scope,
                                        body.scope_key, body.week))

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

    def approved(s, who: Principal, week: str, scope: str, key: str) -> Decision:
        """The decision in force for ``scope`` in the week, if ``who`` may see it (else 404)."""
        d = s.scalar(select(Decision).where(
            Decision.scope == scope, Decision.scope_key == key, Decision.week == week,
            Decision.verdict == "approved", Decision.superseded_by.is_(None)))
        if d is None or not who.sees(d.countries):
            raise _not_found(f"an approved plan for {scope} {key!r} in the week of {week}")
        return d

    @app.get(f"{API}/plans/in-force", tags=["decisions"])
    def in_force(week: str, scope: str = "network", key: str = "", who: Principal = Depends(principal)):
        with db.session() as s:
            d = approved(s, who, week, scope, key)
            return {"decision": decision_view(d), "run": run_view(s.get(Run, d.run_id))}

    @app.get(f"{API}/plans/in-force/orders", tags=["decisions"])
    def orders_in_force(week: str, scope: str = "network", key: str = "", channel: str | None = None,
                        format: str = Query("json", pattern="^(json|csv)$"), who: Principal = Depends(principal)):
        """The whole orders (orders/orders.csv of optplan solve) of the plan approved for ``scope``
        in the week: what the recruiting teams post and buy; a region's or a country's approval
        gives its depots' rows, ``channel`` one channel's (an ad system's load)."""
        with db.session() as s:
            d = approved(s, who, week, scope, key)
            run = s.get(Run, d.run_id)
            if "orders/orders.csv" not in (run.outputs or []):
                raise _not_found(f"orders of run {run.id} (a solve run writes them: options.orders_weeks > 0)")
            path = _output_path(run, "orders/orders.csv")
        df = pd.read_csv(path, keep_default_na=True, dtype={"depot": str, "channel": str, "region": str,
                                                            "country": str})
        if scope in ("region", "country") and scope in df.columns:
            df = df[df[scope] == key]
        if channel is not None:
            df = df[df["channel"] == channel]
        df = df[df["applicants"] > 0].reset_index(drop=True)
        if format == "csv":
            return Response(df.to_csv(index=False), media_type="text/csv")
        return {"decision_id": d.id, "run_id": run.id, "week": week, "scope": scope, "key": key, "rows": records(df)}

    # -- schedules
    @app.post(f"{API}/schedules", status_code=201, tags=["schedules"])
    def create_schedule(body: ScheduleRequest, request: Request, who: Principal = Depends(needs("planner"))):
        return schedule_view(ops.save_schedule(db, store, who, _client(request), body.model_dump()))

    @app.patch(f"{API}/schedules/{{schedule_id}}", tags=["schedules"])
    def update_schedule(schedule_id: str, body: ScheduleChange, request: Request,
                        who: Principal = Depends(needs("planner"))):
        """Change a schedule: the fields given (cron, time zone, dataset, options, changes, enabled)."""
        return schedule_view(ops.save_schedule(db, store, who, _client(request), body.model_dump(exclude_unset=True),
                                               schedule_id))

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
            tokens.clear()  # this process forgets at once; other server processes within TOKEN_CACHE_SECONDS
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


def _client(request: Request) -> str:
    return request.client.host if request.client else ""
