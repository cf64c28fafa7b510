"""The planner's workspace in the browser (issue #28): server-rendered pages under /ui.

Pages are Jinja2 templates (optplan/service/templates/) with htmx (vendored in static/, no
build step) for the parts that refresh themselves (a running run's progress). A planner signs
in with an API token once; the browser then holds a session cookie (HttpOnly, SameSite=Strict,
path /ui) whose SHA-256 names a row of ``web_sessions``; every form that changes something
carries the session's CSRF token, checked on submission. Every page shows only what the
token's scope covers (the same ``ops`` functions as the HTTP API decide); what it does not
cover is "not found".
"""

from __future__ import annotations

import hashlib
import math
import secrets
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import anyio
import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import delete, select

from optplan.explain.presentation import fmt, kind, kpi_rows, label
from optplan.service import auth, ops
from optplan.service.models import Dataset, Decision, Run, Token, WebSession, utcnow
from optplan.service.storage import UploadError

COOKIE = "optplan_session"
#: Hours a browser session lasts.
SESSION_HOURS = 12
#: Rows of the recommendation table per page (the table is paginated on the server).
ROWS_PER_PAGE = 50
#: Weeks of the recommendation shown week by week (the rest are in the total and the download).
WEEKS_SHOWN = 8
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(prefix="/ui", include_in_schema=False)


class SignIn(Exception):
    """Not signed in: the handler sends the browser to the sign-in page."""

    def __init__(self, next_url: str):
        self.next_url = next_url


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def whole_numbers(values) -> np.ndarray:
    """Whole numbers close to ``values`` (>= 0) whose sum is the rounded sum (largest remainder):
    a row of applicants per week that adds up to the row's rounded total."""
    v = np.clip(np.asarray(values, float), 0.0, None)
    floor = np.floor(v)
    short = int(round(v.sum())) - int(floor.sum())
    if short > 0:
        order = np.argsort(-(v - floor), kind="stable")[:short]
        floor[order] += 1
    return floor.astype(int)


def signed_in(request: Request) -> tuple[auth.Principal, WebSession]:
    db = request.app.state.db
    cookie = request.cookies.get(COOKIE)
    if cookie:
        with db.session() as s:
            ws = s.get(WebSession, _sha(cookie))
            if ws is not None and ws.expires_at > utcnow():
                token = s.get(Token, ws.token_id)
                if token is not None and not token.revoked:
                    return auth.Principal(token.id, token.name, token.role, tuple(token.countries or ())), ws
    raise SignIn(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))


def _check_csrf(form, ws: WebSession) -> None:
    if not secrets.compare_digest(str(form.get("csrf", "")), ws.csrf):
        raise ops.Problems(403, ["the form is out of date or not from this site: reload the page and try again"])


def render(request: Request, template: str, who: auth.Principal | None, ws: WebSession | None, status: int = 200,
           **context) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, {
        "who": who, "csrf": ws.csrf if ws else "", "fmt": fmt, "label": label, "kind": kind, **context},
        status_code=status)


# ---------------------------------------------------------------------------- sign in and out


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "/ui/runs"):
    return render(request, "sign_in.html", None, None, next=next if next.startswith("/ui/") else "/ui/runs")


@router.post("/sign-in")
async def sign_in(request: Request):
    form = await request.form()
    secret = str(form.get("token", "")).strip()
    nxt = str(form.get("next", "/ui/runs"))
    nxt = nxt if nxt.startswith("/ui/") and "//" not in nxt else "/ui/runs"
    db = request.app.state.db
    with db.session() as s:
        who = auth.principal_of(s, secret)
        if who is None:
            return render(request, "sign_in.html", None, None, status=401, next=nxt,
                          error="That token is not valid, or it was revoked.")
        cookie = secrets.token_urlsafe(32)
        s.add(WebSession(id=_sha(cookie), token_id=who.token_id, csrf=secrets.token_urlsafe(24),
                         expires_at=utcnow() + timedelta(hours=SESSION_HOURS)))
        ops.audit(s, who, _client(request), "session.sign_in", "token", who.token_id, who.countries)
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict", path="/ui",
                        secure=request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out(request: Request):
    who, ws = signed_in(request)
    _check_csrf(await request.form(), ws)
    with request.app.state.db.session() as s:
        s.execute(delete(WebSession).where(WebSession.id == ws.id))
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# ---------------------------------------------------------------------------- runs


def _run_rows(db, who, kind_filter: str | None, state: str | None) -> list[dict]:
    with db.session() as s:
        q = select(Run).order_by(Run.created_at.desc(), Run.id)
        if kind_filter:
            q = q.where(Run.kind == kind_filter)
        if state:
            q = q.where(Run.state == state)
        runs = ops.scoped(s.scalars(q).all(), who)[:200]
        names = {d.id: d.name for d in s.scalars(select(Dataset)).all()}
        in_force = {d.run_id for d in s.scalars(select(Decision).where(Decision.verdict == "approved",
                                                                        Decision.superseded_by.is_(None))).all()}
        return [{"id": r.id, "kind": r.kind, "state": r.state, "dataset": names.get(r.dataset_id, ""),
                 "progress": r.progress, "created": r.created_at.strftime("%Y-%m-%d %H:%M"),
                 "countries": ", ".join(r.countries) or "all", "in_force": r.id in in_force,
                 "cost": (r.summary or {}).get("kpis", {}).get("expected_cost"),
                 "currency": (r.summary or {}).get("currency", "")} for r in runs]


@router.get("/")
def home():
    return RedirectResponse("/ui/runs", status_code=303)


@router.get("/runs")
def runs_page(request: Request, kind: str | None = None, state: str | None = None, fragment: bool = False):
    who, ws = signed_in(request)
    rows = _run_rows(request.app.state.db, who, kind or None, state or None)
    live = any(r["state"] in ("queued", "running") for r in rows)
    template = "_runs_table.html" if fragment else "runs.html"
    return render(request, template, who, ws, rows=rows, live=live, kind_filter=kind or "", state=state or "",
                  query=f"kind={quote(kind or '')}&state={quote(state or '')}")


def _recommendation(out: Path, meta: dict, q: str, region: str, page: int) -> dict:
    apps = pd.read_csv(out / "applicants.csv", dtype={"depot": str, "channel": str})
    depots = pd.read_csv(out / "drivers.csv", dtype={"depot": str}) if (out / "drivers.csv").is_file() else None
    region_of = {}
    if depots is not None and "region" in depots:
        region_of = dict(zip(depots["depot"], depots["region"], strict=False))
    last = int(apps["week"].max()) if len(apps) else 0
    shown = list(range(1, min(last, WEEKS_SHOWN) + 1))  # consecutive weeks, also those without recruiting
    pivot = apps.pivot_table(index=["depot", "channel"], columns="week", values="applicants", aggfunc="sum",
                             fill_value=0.0) if len(apps) else pd.DataFrame()
    rows = []
    for (depot, channel), values in pivot.iterrows():
        whole = whole_numbers(values.to_numpy())
        by_week = dict(zip(pivot.columns.tolist(), whole.tolist(), strict=True))
        rows.append({"depot": depot, "channel": channel, "region": region_of.get(depot, ""),
                     "weeks": [by_week.get(w, 0) for w in shown], "total": int(whole.sum())})
    regions = sorted({r["region"] for r in rows if r["region"]})
    if q:
        rows = [r for r in rows if q.lower() in r["depot"].lower() or q.lower() in r["channel"].lower()]
    if region:
        rows = [r for r in rows if r["region"] == region]
    rows.sort(key=lambda r: (-r["total"], r["depot"], r["channel"]))
    pages = max(1, math.ceil(len(rows) / ROWS_PER_PAGE))
    page = min(max(page, 1), pages)
    start = pd.Timestamp(meta["start_date"]) if meta.get("start_date") else None
    given = apps.drop_duplicates("week").set_index("week")["week_start"].to_dict() if "week_start" in apps else {}
    week_start = {w: given.get(w) or ((start + pd.Timedelta(weeks=w - 1)).strftime("%Y-%m-%d") if start is not None
                                      else f"week {w}") for w in shown}  # a long-lead period by its file's own start
    return {"rows": rows[(page - 1) * ROWS_PER_PAGE: page * ROWS_PER_PAGE], "weeks": [week_start[w] for w in shown],
            "total": sum(r["total"] for r in rows), "count": len(rows), "page": page, "pages": pages,
            "regions": regions, "q": q, "region": region, "more_weeks": last > len(shown)}


def _headline(summary: dict) -> list[tuple[str, str]]:
    currency = summary.get("currency", "")
    out = [(label(k) if k != "total" else "Expected cost, total", fmt(v, "money", currency, with_currency=True))
           for k, v in (summary.get("expected_cost") or {}).items() if isinstance(v, (int, float))]
    keep = ("service_level", "driver_utilisation", "blocks_per_driver_week", "first_stage_spend", "cvar_cost")
    out += [row for key, row in zip(keep, kpi_rows({k: summary.get("kpis", {}).get(k) for k in keep if
                                                    summary.get("kpis", {}).get(k) is not None}, currency), strict=False)]
    return out


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, q: str = "", region: str = "", page: int = 1):
    who, ws = signed_in(request)
    db, store = request.app.state.db, request.app.state.store
    with db.session() as s:
        run = ops.visible_run(s, who, run_id)
        dataset = s.get(Dataset, run.dataset_id)
        decisions = s.scalars(select(Decision).where(Decision.run_id == run.id).order_by(Decision.created_at)).all()
        parent = s.get(Run, run.parent_id) if run.parent_id else None
        log = run.log
    finished_solve = run.kind == "solve" and run.state == "finished"
    rec = headline = diff = None
    if finished_solve:
        out = store.output_dir(run.output_dir)
        rec = _recommendation(out, dataset.meta or {}, q, region, page)
        headline = _headline(run.summary or {})
        if parent is not None and parent.state == "finished" and parent.kind == "solve":
            table = ops.compare_runs(db, store, who, parent.id, run.id)
            table = table.reindex(table["difference"].abs().sort_values(ascending=False).index)
            diff = [(label(r["item"]), fmt(r[parent.id], kind(r["item"]), r["unit"]), fmt(r[run.id], kind(r["item"]),
                     r["unit"]), fmt(r["difference"], kind(r["item"]), r["unit"]))
                    for _, r in table.head(12).iterrows()]
    plan_status = (run.summary or {}).get("status", {}).get("summary", "")
    return render(request, "run.html", who, ws, run=run, dataset=dataset, decisions=decisions, rec=rec,
                  headline=headline, diff=diff, parent=parent, log=log, plan_status=plan_status, live=run.state in ("queued", "running"),
                  can_approve=finished_solve and who.at_least("approver"),
                  can_what_if=finished_solve and who.at_least("planner"),
                  currency=(dataset.meta or {}).get("currency", ""), week=(dataset.meta or {}).get("start_date", ""))


@router.post("/runs/{run_id}/decide")
async def decide(request: Request, run_id: str):
    who, ws = signed_in(request)
    form = await request.form()
    _check_csrf(form, ws)
    if not who.at_least("approver"):
        raise ops.Problems(403, ["approving or rejecting needs the approver role"])
    ops.decide(request.app.state.db, who, _client(request), run_id, str(form.get("verdict", "")),
               str(form.get("comment", "")), str(form.get("scope", "network")), str(form.get("scope_key", "")),
               str(form.get("week", "")) or None)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/what-if")
async def what_if(request: Request, run_id: str):
    """A child run of ``run_id`` with the form's changes: total budget, demand scale, time limit."""
    who, ws = signed_in(request)
    form = await request.form()
    _check_csrf(form, ws)
    if not who.at_least("planner"):
        raise ops.Problems(403, ["a what-if needs the planner role"])
    with request.app.state.db.session() as s:
        parent = ops.visible_run(s, who, run_id)
    changes, problems = {}, []
    budget = str(form.get("budget_total", "")).replace(",", "").strip()
    if budget:
        try:
            changes["budgets.total"] = float(budget)
        except ValueError:
            problems.append(f"Total budget: expected a number, found {budget!r}")
    scale = str(form.get("demand_scale", "")).strip().rstrip("%")
    if scale:
        try:
            changes["demand.blocks"] = f"*{float(scale) / 100.0:g}"
        except ValueError:
            problems.append(f"Demand: expected a percentage, found {scale!r}")
    options = dict(parent.options)
    limit = str(form.get("time_limit", "")).strip()
    if limit:
        options["time_limit"] = limit
    if problems:
        raise ops.Problems(422, problems)
    child, _ = ops.submit_run(request.app.state.db, request.app.state.store, who, _client(request), "solve",
                              parent.dataset_id, options, {**parent.changes, **changes}, parent_id=parent.id)
    return RedirectResponse(f"/ui/runs/{child.id}", status_code=303)


@router.get("/runs/{run_id}/files/{name}")
def run_file(request: Request, run_id: str, name: str):
    who, _ = signed_in(request)
    with request.app.state.db.session() as s:
        run = ops.visible_run(s, who, run_id)
        if name not in (run.outputs or []):
            raise ops.not_found(f"file {name!r} of run {run_id}")
        path = request.app.state.store.output_dir(run.output_dir) / name
    media = "text/csv" if name.endswith(".csv") else "application/octet-stream"
    return Response(path.read_bytes(), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{run_id[:8]}-{name}"'})


@router.get("/compare")
def compare_page(request: Request, a: str = "", b: str = ""):
    who, ws = signed_in(request)
    db, store = request.app.state.db, request.app.state.store
    choices = [r for r in _run_rows(db, who, "solve", "finished")]
    rows = None
    if a and b:
        table = ops.compare_runs(db, store, who, a, b)
        table = table.reindex(table["difference"].abs().sort_values(ascending=False).index)
        rows = [(label(r["item"]), fmt(r[a], kind(r["item"]), r["unit"]), fmt(r[b], kind(r["item"]), r["unit"]),
                 fmt(r["difference"], kind(r["item"]), r["unit"]),
                 "" if pd.isna(r["relative"]) else fmt(r["relative"], "share")) for _, r in table.iterrows()]
    return render(request, "compare.html", who, ws, choices=choices, a=a, b=b, rows=rows)


# ---------------------------------------------------------------------------- data


@router.get("/datasets")
def datasets_page(request: Request):
    who, ws = signed_in(request)
    with request.app.state.db.session() as s:
        rows = ops.scoped(s.scalars(select(Dataset).order_by(Dataset.created_at.desc())).all(), who)
    return render(request, "datasets.html", who, ws, rows=rows)


@router.post("/datasets")
async def upload(request: Request):
    who, ws = signed_in(request)
    form = await request.form()
    _check_csrf(form, ws)
    if not who.at_least("planner"):
        raise ops.Problems(403, ["uploading needs the planner role"])
    files = [f for f in form.getlist("files") if hasattr(f, "read")]
    kind_ = str(form.get("kind", "instance"))
    settings = request.app.state.settings
    blobs = [(f.filename or "upload", await f.read()) for f in files]
    if not blobs or not any(data for _, data in blobs):
        problems = ["choose the files of a dataset folder (or a zip of it)"]
    else:
        scratch = request.app.state.store.scratch()
        try:
            d, _ = await anyio.to_thread.run_sync(ops.store_upload, request.app.state.db, request.app.state.store,
                                                  settings.limits, who, _client(request), kind_,
                                                  str(form.get("name", "")), blobs, scratch)
            return RedirectResponse(f"/ui/datasets?uploaded={d.id}", status_code=303)
        except ops.Problems as exc:
            problems = list(exc.detail)
        except UploadError as exc:
            problems = exc.problems
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    with request.app.state.db.session() as s:
        rows = ops.scoped(s.scalars(select(Dataset).order_by(Dataset.created_at.desc())).all(), who)
    return render(request, "datasets.html", who, ws, status=422, rows=rows, problems=problems)


@router.post("/datasets/{dataset_id}/solve")
async def solve_dataset(request: Request, dataset_id: str):
    who, ws = signed_in(request)
    form = await request.form()
    _check_csrf(form, ws)
    if not who.at_least("planner"):
        raise ops.Problems(403, ["running a plan needs the planner role"])
    options = {"time_limit": str(form.get("time_limit") or 600)}
    run, _ = ops.submit_run(request.app.state.db, request.app.state.store, who, _client(request), "solve", dataset_id,
                            options, {})
    return RedirectResponse(f"/ui/runs/{run.id}", status_code=303)
