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

from optplan.explain.plots import figure_to_svg
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


def _run_rows(db, who, kind_filter: str | None = None, state: str | None = None, dataset: str | None = None,
              country: str | None = None, by: str | None = None, since: str | None = None) -> list[dict]:
    """The runs the principal sees, newest first (at most 200), filtered."""
    with db.session() as s:
        q = select(Run).order_by(Run.created_at.desc(), Run.id)
        for col, value in ((Run.kind, kind_filter), (Run.state, state), (Run.dataset_id, dataset)):
            if value:
                q = q.where(col == value)
        if since:
            try:
                q = q.where(Run.created_at >= pd.Timestamp(since).to_pydatetime())
            except ValueError:
                pass
        runs = ops.scoped(s.scalars(q).all(), who)
        if country:
            runs = [r for r in runs if country in (r.countries or [])]
        names = {d.id: d.name for d in s.scalars(select(Dataset)).all()}
        people = {t.id: t.name for t in s.scalars(select(Token)).all()}
        if by:
            runs = [r for r in runs if by.lower() in people.get(r.created_by, "scheduler").lower()]
        in_force = {d.run_id for d in s.scalars(select(Decision).where(Decision.verdict == "approved",
                                                                        Decision.superseded_by.is_(None))).all()}
        return [{"id": r.id, "kind": r.kind, "state": r.state, "dataset": names.get(r.dataset_id, ""),
                 "progress": r.progress, "created": r.created_at.strftime("%Y-%m-%d %H:%M"),
                 "countries": ", ".join(r.countries) or "all", "in_force": r.id in in_force,
                 "by": people.get(r.created_by, "a schedule" if r.schedule_id else ""),
                 "cost": (r.summary or {}).get("kpis", {}).get("expected_cost"),
                 "currency": (r.summary or {}).get("currency", "")} for r in runs[:200]]


@router.get("/")
def home():
    return RedirectResponse("/ui/runs", status_code=303)


@router.get("/runs")
def runs_page(request: Request, kind: str = "", state: str = "", dataset: str = "", country: str = "", by: str = "",
              since: str = "", fragment: bool = False):
    who, ws = signed_in(request)
    db = request.app.state.db
    rows = _run_rows(db, who, kind or None, state or None, dataset or None, country or None, by or None, since or None)
    live = any(r["state"] in ("queued", "running") for r in rows)
    template = "_runs_table.html" if fragment else "runs.html"
    with db.session() as s:
        datasets = ops.scoped(s.scalars(select(Dataset).order_by(Dataset.name)).all(), who)
    countries = sorted({c for d in datasets for c in d.countries})
    filters = {"kind": kind, "state": state, "dataset": dataset, "country": country, "by": by, "since": since}
    return render(request, template, who, ws, rows=rows, live=live, f=filters, datasets=datasets, countries=countries,
                  query="&".join(f"{k}={quote(v)}" for k, v in filters.items()))


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


def _budgets(out: Path, currency: str) -> list[dict]:
    """Each budget: cap, used, whether it is fully used and what one more unit is worth, in words."""
    path = out / "budgets.csv"
    if not path.is_file():
        return []
    rows = []
    for _, b in pd.read_csv(path, dtype={"key": str}).iterrows():
        scope = {"total": "Whole plan", "week": f"Week of {b['key']}" if "-" in str(b["key"]) else f"Week {b['key']}",
                 "region": f"Region {b['key']}", "country": f"Country {b['key']}"}.get(b["scope"], str(b["scope"]))
        price = b.get("shadow_price")
        worth = ""
        if bool(b["binding"]) and pd.notna(price) and float(price) > 0:
            worth = (f"fully used: one more {currency} of it would save {fmt(float(price), 'rate')} {currency} "
                     "of expected cost")
        elif bool(b["binding"]):
            worth = "fully used"
        rows.append({"scope": scope, "cap": fmt(b["cap"], "money", currency, True),
                     "used": fmt(b["used"], "money", currency, True),
                     "share": fmt(float(b["used"]) / float(b["cap"]), "share") if float(b["cap"]) > 0 else "",
                     "worth": worth or "room left"})
    return rows


def _country_spend(out: Path) -> list[dict]:
    path = out / "spend_by_country.csv"
    if not path.is_file():
        return []
    return [{"country": r["country"], "local": fmt(r["total_local"], "money", r["local_currency"], True),
             "reporting": fmt(r["total"], "money", r["currency"], True)}
            for _, r in pd.read_csv(path, dtype={"country": str}).iterrows()]


def _targets(out: Path) -> list[dict]:
    path = out / "targets.csv"
    if not path.is_file():
        return []
    rows = []
    for _, t in pd.read_csv(path, dtype={"depot": str}).iterrows():
        what = {"service_level": "Service level", "driver_utilisation": "Driver utilisation",
                "blocks_per_driver": "Blocks per driver-week", "bad_week_service": "Service in bad weeks"}.get(
            t["target"], label(t["target"]))
        share = t["target"] != "blocks_per_driver"
        rows.append({"what": what, "where": t["depot"] if isinstance(t["depot"], str) and t["depot"] else t["scope"],
                     "target": fmt(t["target_share"], "share" if share else "number"),
                     "achieved": fmt(t["achieved_share"], "share" if share else "number"),
                     "binding": "yes" if bool(t["binding"]) else "no",
                     "cost": fmt(t["cost_per_point"], "money", t["currency"], True)})
    return rows


def _capacity_chart(out: Path, depot: str | None) -> tuple[list[str], str, str]:
    """(the depots, the one shown, an inline SVG of its planned capacity against the demand
    fan P10-P90 and P50, blocks per week)."""
    path = out / "capacity.csv"
    if not path.is_file():
        return [], "", ""
    cap = pd.read_csv(path, dtype={"depot": str})
    depots = list(dict.fromkeys(cap["depot"]))
    depot = depot if depot in depots else depots[0]
    d = cap[cap["depot"] == depot]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    x = pd.to_datetime(d["week_start"])
    ax.fill_between(x, d["demand_p10"], d["demand_p90"], color="#9ec5e8", alpha=0.6, label="demand, P10 to P90")
    ax.plot(x, d["demand_p50"], color="#2b6ca3", lw=1.2, label="demand, P50")
    ax.plot(x, d["capacity_blocks"], color="#c0392b", lw=2, label="planned capacity")
    ax.set_ylabel("blocks per week")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return depots, depot, figure_to_svg(fig)


#: What-if changes in a planner's words (others: their path, dots and underscores as spaces).
CHANGE_WORDS = {"budgets.total": "total budget", "budgets.weekly": "weekly budget", "demand.blocks": "demand",
                "targets.service_level": "service level target", "targets.driver_utilisation":
                "driver utilisation target", "budgets.regions.": "budget of region ", "budgets.countries.":
                "budget of country ", "targets.service_level_by_region.": "service level target of region "}


def _change_name(path: str) -> str:
    if path in CHANGE_WORDS:
        return CHANGE_WORDS[path]
    for prefix, words in CHANGE_WORDS.items():
        if prefix.endswith(".") and path.startswith(prefix):
            return words + path[len(prefix):]
    if path.startswith("channels[") and path.endswith("].cost_per_applicant"):
        return f"cost of an applicant through {path[9:-20]}"
    if path.startswith("channel_costs[") and path.endswith("].cost_per_applicant"):
        country, _, channel = path[14:-20].partition(",")
        return f"cost of an applicant through {channel} in {country}"
    return path.replace(".", " ").replace("_", " ")


def change_words(changes: dict, currency: str) -> list[str]:
    """What-if changes in words; one line for a demand change over several depots."""
    out, by_depot = [], {}
    for path, value in (changes or {}).items():
        if path.startswith("demand[") and path.endswith("].blocks") and "," not in path:
            by_depot.setdefault(str(value), []).append(path[7:-8])
            continue
        name = _change_name(path)
        if isinstance(value, str) and value.startswith("*"):
            try:
                text = f"{float(value[1:]):.0%} of the instance's"
            except ValueError:
                text = value
        elif isinstance(value, (int, float)) and ("budget" in path or "cost" in path):
            text = fmt(value, "money", currency, True)
        elif isinstance(value, (int, float)) and path.startswith("targets."):
            text = fmt(value, "share")
        else:
            text = str(value)
        out.append(f"{name}: {text}")
    for value, depots in by_depot.items():
        shown = ", ".join(depots[:3]) + (f" and {len(depots) - 3} more" if len(depots) > 3 else "")
        try:
            text = f"{float(value[1:]):.0%} of the instance's"
        except ValueError:
            text = value
        out.append(f"demand at {shown}: {text}")
    return out


def _headline(summary: dict) -> list[tuple[str, str]]:
    currency = summary.get("currency", "")
    out = [(label(k) if k != "total" else "Expected cost, total", fmt(v, "money", currency, with_currency=True))
           for k, v in (summary.get("expected_cost") or {}).items() if isinstance(v, (int, float))]
    keep = ("service_level", "driver_utilisation", "blocks_per_driver_week", "first_stage_spend", "cvar_cost")
    out += [row for key, row in zip(keep, kpi_rows({k: summary.get("kpis", {}).get(k) for k in keep if
                                                    summary.get("kpis", {}).get(k) is not None}, currency), strict=False)]
    return out


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, q: str = "", region: str = "", page: int = 1, depot: str = ""):
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
    budgets, countries, targets, chart = [], [], [], ([], "", "")
    currency = (run.summary or {}).get("currency", (dataset.meta or {}).get("currency", ""))
    if finished_solve:
        out = store.output_dir(run.output_dir)
        rec = _recommendation(out, dataset.meta or {}, q, region, page)
        headline = _headline(run.summary or {})
        budgets, countries, targets = _budgets(out, currency), _country_spend(out), _targets(out)
        chart = _capacity_chart(out, depot or None)
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
                  what_if=what_if_fields(dataset.meta or {}, currency) if finished_solve else [],
                  currency=currency, week=(dataset.meta or {}).get("start_date", ""), budgets=budgets,
                  changes=change_words(run.changes, currency),
                  countries=countries, targets=targets, chart_depots=chart[0], chart_depot=chart[1], chart=chart[2])


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


def _number(text: str) -> float:
    """A number as a planner types it: '12,500', '12 500', '85 %', '1200 USD'."""
    cleaned = text.replace(",", "").replace("%", "").replace("\u00a0", "").strip().split()
    cleaned = [part for part in cleaned if not part.isalpha()]  # a currency code typed after the number
    value = float("".join(cleaned))
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def what_if_fields(meta: dict, currency: str) -> list[dict]:
    """The what-if form's fields, in groups: name, label, the current value in words, and how a
    typed value becomes changes (``path`` and ``as``: money, share (typed in %), scale (typed in
    % of the instance's), option)."""
    budgets = meta.get("budgets") or {}
    targets = meta.get("targets") or {}
    region_currency = meta.get("region_currency") or {}
    weekly = budgets.get("weekly")

    def money(v, cur=currency):
        return fmt(v, "money", cur, True) if isinstance(v, (int, float)) else "no cap"

    fields = [
        {"group": "Budgets", "name": "budget_total", "label": f"Total budget ({currency})", "as": "money",
         "path": "budgets.total", "now": money(budgets.get("total"))},
        {"group": "Budgets", "name": "budget_weekly", "label": f"Weekly budget ({currency} a week)", "as": "money",
         "path": "budgets.weekly", "now": money(weekly) if not isinstance(weekly, list) else "set week by week"},
    ]
    caps = budgets.get("regions") or {}
    for region in sorted(set(meta.get("regions") or []) | set(caps)):
        cap = caps.get(region)
        cur = region_currency.get(region, currency)
        fields.append({"group": "Budgets", "name": f"budget_region-{region}",
                       "label": f"Budget of region {region} ({cur})", "as": "money",
                       "path": f"budgets.regions.{region}", "now": money(cap, cur)})
    for country, cur in (meta.get("country_currency") or {}).items():
        fields.append({"group": "Budgets", "name": f"budget_country-{country}",
                       "label": f"Budget of country {country} ({cur})", "as": "money",
                       "path": f"budgets.countries.{country}",
                       "now": money((budgets.get("countries") or {}).get(country), cur)})
    fields.append({"group": "Demand", "name": "demand_scale", "label": "Demand everywhere, % of the forecast",
                   "as": "scale", "path": "demand.blocks", "now": "100 %"})
    regions = meta.get("regions") or []
    if len(regions) > 1:
        for region in regions:
            fields.append({"group": "Demand", "name": f"demand_region-{region}",
                           "label": f"Demand in region {region}, % of the forecast", "as": "scale",
                           "path": [f"demand[{d}].blocks" for d, r in (meta.get("region_of") or {}).items()
                                    if r == region], "now": "100 %"})
    for c in meta.get("channel_cost") or []:
        where = f" in {c['where']}" if c["where"] else ""
        fields.append({"group": "Channel costs", "name": f"channel_cost-{c['channel']}{'-' + c['where'] if where else ''}",
                       "label": f"Cost of an applicant through {c['channel']}{where} ({c['currency']})",
                       "as": "money", "path": c["path"], "now": money(c["cost"], c["currency"])})
    for key, words in (("service_level", "Service level target at every depot, %"),
                       ("driver_utilisation", "Driver utilisation target at every depot, %")):
        now = targets.get(key)
        fields.append({"group": "Targets", "name": key, "label": words, "as": "share", "path": f"targets.{key}",
                       "now": fmt(now, "share") if isinstance(now, (int, float)) else "none"})
    fields += [
        {"group": "Risk and time", "name": "risk_weight", "as": "option", "path": "cvar_weight", "share": True,
         "label": "Weight on the cost of the worst weeks, % (0: the expected cost only)", "now": "0 %"},
        {"group": "Risk and time", "name": "time_limit", "as": "option", "path": "time_limit",
         "label": "Time limit (seconds)", "now": "600"},
    ]
    return fields


def what_if_changes(form, fields: list[dict]) -> tuple[dict, dict, list[str]]:
    """(instance changes, option changes, problems) of a submitted what-if form: one problem
    per field that does not read as its kind, naming the field as the form labels it."""
    changes, options, problems = {}, {}, []
    for f in fields:
        text = str(form.get(f["name"], "")).strip()
        if not text:
            continue
        try:
            value = _number(text)
        except ValueError:
            problems.append(f"{f['label']}: expected a number, found {text!r}")
            continue
        if f["as"] in ("money", "share", "scale") and value < 0:
            problems.append(f"{f['label']}: expected a number of at least 0, found {text!r}")
            continue
        if f["as"] == "money":
            changes[f["path"]] = value
        elif f["as"] == "share":
            changes[f["path"]] = value / 100.0
        elif f["as"] == "scale":
            for path in [f["path"]] if isinstance(f["path"], str) else f["path"]:
                changes[path] = f"*{value / 100.0:g}"
        else:
            options[f["path"]] = f"{value / 100.0:g}" if f.get("share") else f"{value:g}"
    return changes, options, problems


@router.post("/runs/{run_id}/what-if")
async def what_if(request: Request, run_id: str):
    """A child run of ``run_id`` with the form's changes (``what_if_fields``)."""
    who, ws = signed_in(request)
    form = await request.form()
    _check_csrf(form, ws)
    if not who.at_least("planner"):
        raise ops.Problems(403, ["a what-if needs the planner role"])
    with request.app.state.db.session() as s:
        parent = ops.visible_run(s, who, run_id)
        dataset = s.get(Dataset, parent.dataset_id)
    meta = dataset.meta or {}
    fields = what_if_fields(meta, (parent.summary or {}).get("currency", meta.get("currency", "")))
    changes, options, problems = what_if_changes(form, fields)
    if not problems:
        try:
            child, _ = ops.submit_run(request.app.state.db, request.app.state.store, who, _client(request), "solve",
                                      parent.dataset_id, {**parent.options, **options}, {**parent.changes, **changes},
                                      parent_id=parent.id)
            return RedirectResponse(f"/ui/runs/{child.id}", status_code=303)
        except ops.Problems as exc:  # the instance's own checks (a target no plan can meet is the solve's to say)
            words = {p if isinstance(p, str) else p[0]: f["label"] for f in fields
                     for p in ([f["path"]] if isinstance(f["path"], str) else f["path"][:1])}
            problems = [_in_form_words(line, words) for line in exc.detail]
    return render(request, "error.html", who, ws, status=422, title="This what-if cannot be planned",
                  lines=problems, back=(f"/ui/runs/{run_id}#h-whatif", "Back to the run"))


def _in_form_words(line: str, words: dict[str, str]) -> str:
    """A problem line from the checks, with the instance's paths named as the form labels them."""
    line = line.removeprefix("changes: ").removeprefix("--set: ")
    for path, label_ in sorted(words.items(), key=lambda kv: -len(kv[0])):
        line = line.replace(f"field '{path}'", f"{label_}:").replace(path, label_)
    return line


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
    choices = _run_rows(db, who, "solve", "finished")
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
