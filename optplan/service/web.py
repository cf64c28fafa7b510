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
import json
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
from optplan.service.models import Audit, Dataset, Decision, Run, Schedule, Token, WebSession, utcnow
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


async def signed_form(request: Request, role: str, doing: str):
    """(principal, session, form) of a form submission: signed in, the session's CSRF token,
    and at least ``role`` (else 403 naming what ``doing`` needs)."""
    who, ws = signed_in(request)
    form = await request.form()
    _check_csrf(form, ws)
    if not who.at_least(role):
        raise ops.Problems(403, [f"{doing} needs the {role} role"])
    return who, ws, form


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
    who, ws, _ = await signed_form(request, "viewer", "signing out")
    with request.app.state.db.session() as s:
        s.execute(delete(WebSession).where(WebSession.id == ws.id))
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# ---------------------------------------------------------------------------- runs


def _run_rows(db, who, kind_filter: str | None = None, state: str | None = None, dataset: str | None = None,
              country: str | None = None, by: str | None = None, since: str | None = None,
              region: str | None = None, scheduled: bool = False) -> list[dict]:
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
        all_datasets = s.scalars(select(Dataset)).all()
        names = {d.id: d.name for d in all_datasets}
        if region:
            holding = {d.id for d in all_datasets if region in (d.meta or {}).get("regions", [])}
            runs = [r for r in runs if r.dataset_id in holding]
        if scheduled:
            runs = [r for r in runs if r.schedule_id]
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
              since: str = "", region: str = "", fragment: bool = False):
    who, ws = signed_in(request)
    db = request.app.state.db
    rows = _run_rows(db, who, kind or None, state or None, dataset or None, country or None, by or None, since or None,
                     region or None)
    live = any(r["state"] in ("queued", "running") for r in rows)
    template = "_runs_table.html" if fragment else "runs.html"
    with db.session() as s:
        datasets = ops.scoped(s.scalars(select(Dataset).order_by(Dataset.name)).all(), who)
    countries = sorted({c for d in datasets for c in d.countries})
    regions = sorted({r for d in datasets for r in (d.meta or {}).get("regions", [])})
    filters = {"kind": kind, "state": state, "dataset": dataset, "country": country, "by": by, "since": since,
               "region": region}
    return render(request, template, who, ws, rows=rows, live=live, f=filters, datasets=datasets, countries=countries,
                  regions=regions,
                  query="&".join(f"{k}={quote(v)}" for k, v in filters.items()))


#: Columns the recommendation table sorts by: depot, channel, total, or week-N (the N-th week shown).
SORTS = ("depot", "channel", "total")


def _sort_key(sort: str):
    if sort in ("depot", "channel"):
        return lambda r: (r[sort], r["depot"], r["channel"])
    if sort.startswith("week-") and sort[5:].isdigit():
        i = int(sort[5:]) - 1
        return lambda r: (r["weeks"][i] if i < len(r["weeks"]) else 0, r["depot"], r["channel"])
    return lambda r: (r["total"], r["depot"], r["channel"])


def _recommendation(out: Path, meta: dict, q: str, region: str, page: int, sort: str = "total",
                    desc: bool = True) -> dict:
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
    rows.sort(key=_sort_key(sort), reverse=desc)  # stable: ties keep depot, channel order
    pages = max(1, math.ceil(len(rows) / ROWS_PER_PAGE))
    page = min(max(page, 1), pages)
    start = pd.Timestamp(meta["start_date"]) if meta.get("start_date") else None
    given = apps.drop_duplicates("week").set_index("week")["week_start"].to_dict() if "week_start" in apps else {}
    week_start = {w: given.get(w) or ((start + pd.Timedelta(weeks=w - 1)).strftime("%Y-%m-%d") if start is not None
                                      else f"week {w}") for w in shown}  # a long-lead period by its file's own start
    return {"rows": rows[(page - 1) * ROWS_PER_PAGE: page * ROWS_PER_PAGE], "weeks": [week_start[w] for w in shown],
            "total": sum(r["total"] for r in rows), "count": len(rows), "page": page, "pages": pages,
            "regions": regions, "q": q, "region": region, "more_weeks": last > len(shown), "sort": sort,
            "desc": desc, "incentives": _incentives(out, shown, q, region, region_of)}


def _incentives(out: Path, shown: list[int], q: str, region: str, region_of: dict) -> dict | None:
    """Planned incentive spend per depot for the weeks shown and over the plan, whole currency
    units (largest remainder per row), the largest first; at most ROWS_PER_PAGE rows."""
    path = out / "incentives.csv"
    if not path.is_file():
        return None
    inc = pd.read_csv(path, dtype={"depot": str})
    if not len(inc) or inc["spend"].sum() <= 0:
        return None
    pivot = inc.pivot_table(index="depot", columns="week", values="spend", aggfunc="sum", fill_value=0.0)
    rows = []
    for depot, values in pivot.iterrows():
        if (q and q.lower() not in depot.lower()) or (region and region_of.get(depot, "") != region):
            continue
        whole = whole_numbers(values.to_numpy())
        by_week = dict(zip(pivot.columns.tolist(), whole.tolist(), strict=True))
        rows.append({"depot": depot, "weeks": [by_week.get(w, 0) for w in shown], "total": int(whole.sum())})
    rows.sort(key=lambda r: (-r["total"], r["depot"]))
    return {"rows": rows[:ROWS_PER_PAGE], "count": len(rows), "total": sum(r["total"] for r in rows),
            "currency": str(inc["currency"].iloc[0]) if "currency" in inc else ""}


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


def _capacity_chart(outs: list[tuple[str, Path]], depot: str | None) -> tuple[list[str], str, str]:
    """(the depots, the one shown, an inline SVG of each plan's capacity against the first
    plan's demand fan P10-P90 and P50, blocks per week); plans of different weeks share the
    date axis. One plan: its capacity alone."""
    tables = [(name, pd.read_csv(out / "capacity.csv", dtype={"depot": str})) for name, out in outs
              if (out / "capacity.csv").is_file()]
    if not tables:
        return [], "", ""
    depots = list(dict.fromkeys(d for _, cap in tables for d in cap["depot"]))
    depot = depot if depot in depots else depots[0]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    first = tables[0][1][tables[0][1]["depot"] == depot]
    x = pd.to_datetime(first["week_start"])
    ax.fill_between(x, first["demand_p10"], first["demand_p90"], color="#9ec5e8", alpha=0.6, label="demand, P10 to P90")
    ax.plot(x, first["demand_p50"], color="#2b6ca3", lw=1.2, label="demand, P50")
    for (name, cap), color, style in zip(tables, ("#c0392b", "#27ae60"), ("-", "--"), strict=False):
        d = cap[cap["depot"] == depot]
        ax.plot(pd.to_datetime(d["week_start"]), d["capacity_blocks"], color=color, lw=2, ls=style,
                label="planned capacity" if len(tables) == 1 else f"capacity, {name}")
    ax.set_ylabel("blocks per week")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return depots, depot, figure_to_svg(fig)


#: The tornado's parameters in a planner's words, demand first (the report's sections on demand).
TORNADO_WORDS = {"demand_level": "Demand", "blocks_per_driver": "Blocks a driver works a week", "churn": "Drivers leaving",
                 "conversion": "Applicants who become drivers", "cost_per_applicant": "Cost of an applicant",
                 "unserved_penalty": "Cost of a block not delivered"}


def _sensitivity(out: Path, currency: str) -> dict | None:
    """The sensitivity report's sections a planner reads first, from a report run's files:
    how demand (and each other input) moves the cost and the recruiting, what planning for
    uncertainty is worth, the cost on new demand paths, and the budget frontier."""
    if not (out / "tornado.csv").is_file():
        return None
    tornado = pd.read_csv(out / "tornado.csv")
    tornado["order"] = tornado["parameter"].map({k: i for i, k in enumerate(TORNADO_WORDS)}).fillna(99)
    moves = []
    for _, r in tornado.sort_values(["order", "change"], kind="stable").iterrows():
        if pd.isna(r["expected_cost"]):
            effect = "no plan meets the targets then"
        else:
            effect = (f"expected cost {'+' if r['cost_change'] >= 0 else ''}{fmt(r['cost_change'], 'money', currency, True)}"
                      f", applicants {'+' if r['applicants_change'] >= 0 else ''}{fmt(r['applicants_change'], 'applicants')}")
        moves.append({"what": f"{TORNADO_WORDS.get(r['parameter'], label(r['parameter']))} "
                              f"{abs(r['change']):.0%} {'higher' if r['change'] > 0 else 'lower'}",
                      "demand": r["parameter"] == "demand_level", "effect": effect})
    values = []
    if (out / "stochastic_values.csv").is_file():
        for _, r in pd.read_csv(out / "stochastic_values.csv").iterrows():
            values.append((str(r["label"]).split(" (")[0], fmt(r["value"], "money", currency, True)))
    frontier = []
    if (out / "frontier.csv").is_file():
        for _, r in pd.read_csv(out / "frontier.csv").iterrows():
            frontier.append((fmt(r["budget_total"], "money", currency, True), fmt(r["expected_cost"], "money", currency, True),
                             fmt(r["service_level"], "share"), fmt(r["shadow_price"], "rate")))
    outside = None
    if (out / "report.json").is_file():
        oos = json.loads((out / "report.json").read_text()).get("out_of_sample") or {}
        if oos.get("expected_cost") is not None:
            outside = (f"On {oos.get('paths', 0):,} new demand paths the plan costs "
                       f"{fmt(oos['expected_cost'], 'money', currency, True)} on average (95 % interval "
                       f"{fmt(oos.get('ci95_low'), 'money', currency, True)} to {fmt(oos.get('ci95_high'), 'money', currency, True)})"
                       f", against {fmt(oos.get('in_sample_expected_cost'), 'money', currency, True)} over its own scenarios.")
    return {"moves": moves, "worth": values, "frontier": frontier, "outside": outside}


def _trail(s, object_ids: list[str]) -> list[dict]:
    """The audit entries about these objects (a run, its decisions), oldest first, in words."""
    people = {t.id: t.name for t in s.scalars(select(Token)).all()}
    verbs = {"run.submit": "submitted the run", "run.cancel": "cancelled the run", "plan.approve": "approved the plan",
             "plan.reject": "rejected the plan"}
    rows = s.scalars(select(Audit).where(Audit.object_id.in_(object_ids)).order_by(Audit.id)).all()
    return [{"at": a.at.strftime("%Y-%m-%d %H:%M:%S"), "who": people.get(a.actor, "the scheduler" if a.actor == "scheduler"
                                                                       else a.actor),
             "what": verbs.get(a.action, a.action.replace(".", " ").replace("_", " ")),
             "detail": (a.detail or {}).get("comment", "")} for a in rows]


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
    out = [(figure_name(k, component=True), fmt(v, "money", currency, with_currency=True))
           for k, v in (summary.get("expected_cost") or {}).items() if isinstance(v, (int, float))]
    keep = ("service_level", "driver_utilisation", "blocks_per_driver_week", "first_stage_spend", "cvar_cost")
    kpis = summary.get("kpis", {})
    out += [(name.replace(" (CVaR)", ""), value)
            for name, value in kpi_rows({k: kpis[k] for k in keep if kpis.get(k) is not None}, currency)]
    return out


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, q: str = "", region: str = "", page: int = 1, depot: str = "",
             sort: str = "total", desc: bool = True):
    who, ws = signed_in(request)
    db, store = request.app.state.db, request.app.state.store
    with db.session() as s:
        run = ops.visible_run(s, who, run_id)
        dataset = s.get(Dataset, run.dataset_id)
        decisions = s.scalars(select(Decision).where(Decision.run_id == run.id).order_by(Decision.created_at)).all()
        parent = s.get(Run, run.parent_id) if run.parent_id else None
        log = run.log
        trail = _trail(s, [run.id])
        reports = s.scalars(select(Run).where(Run.parent_id == run.id, Run.kind == "report")
                            .order_by(Run.created_at.desc())).all()
    finished_solve = run.kind == "solve" and run.state == "finished"
    rec = headline = diff = sensitivity = None
    budgets, countries, targets, chart = [], [], [], ([], "", "")
    meta = dataset.meta or {}
    currency = (run.summary or {}).get("currency", meta.get("currency", ""))
    if finished_solve:
        out = store.output_dir(run.output_dir)
        rec = _recommendation(out, meta, q, region, page, sort, desc)
        headline = _headline(run.summary or {})
        budgets, countries, targets = _budgets(out, currency), _country_spend(out), _targets(out)
        chart = _capacity_chart([("this plan", out)], depot or None)
        if parent is not None and parent.state == "finished" and parent.kind == "solve":
            diff = _comparison(ops.compare_runs(db, store, who, parent.id, run.id), parent.id, run.id)
    if run.kind == "report" and run.state == "finished":
        sensitivity = _sensitivity(store.output_dir(run.output_dir), currency)
    report = next((r for r in reports if r.state == "finished"), None) or (reports[0] if reports else None)
    if report is not None and report.state == "finished":
        sensitivity = _sensitivity(store.output_dir(report.output_dir), currency)
    scopes = ([("network:", "the whole network")] if who.unscoped else []) + \
        [(f"country:{c}", f"country {c}") for c in run.countries or []] + \
        [(f"region:{r}", f"region {r}") for r in meta.get("regions", []) if len(meta.get("regions", [])) > 1]
    plan_status = (run.summary or {}).get("status", {}).get("summary", "")
    return render(request, "run.html", who, ws, run=run, dataset=dataset, decisions=decisions, rec=rec,
                  headline=headline, diff=diff, parent=parent, log=log, plan_status=plan_status,
                  live=run.state in ("queued", "running"), trail=trail, report=report, sensitivity=sensitivity,
                  warnings=[w.get("message", "") for w in (run.summary or {}).get("warnings", [])],
                  can_approve=finished_solve and who.at_least("approver") and bool(scopes), scopes=scopes,
                  can_what_if=finished_solve and who.at_least("planner"),
                  what_if=_grouped(what_if_fields(meta, currency)) if finished_solve else [],
                  currency=currency, week=meta.get("start_date", ""), budgets=budgets,
                  changes=change_words(run.changes, currency), options=option_words(run.options),
                  countries=countries, targets=targets, chart_depots=chart[0], chart_depot=chart[1], chart=chart[2])


def option_words(options: dict) -> list[str]:
    """A run's options as the planner would say them (the command's flags, in words)."""
    words = {"time_limit": ("time limit", " s"), "cvar_weight": ("weight on the worst weeks", ""),
             "engine": ("engine", ""), "seed": ("seed", ""), "mip_gap": ("optimality gap", "")}
    return [f"{words.get(k, (k.replace('_', ' '), ''))[0]}: {v}{words.get(k, ('', ''))[1]}" for k, v in
            (options or {}).items()]


@router.post("/runs/{run_id}/decide")
async def decide(request: Request, run_id: str):
    who, ws, form = await signed_form(request, "approver", "approving or rejecting")
    scope, _, key = str(form.get("for", "network:")).partition(":")
    ops.decide(request.app.state.db, who, _client(request), run_id, str(form.get("verdict", "")),
               str(form.get("comment", "")), scope, key, str(form.get("week", "")) or None)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/report")
async def sensitivity_report(request: Request, run_id: str):
    """The sensitivity report of a finished solve's instance (with the same what-if changes):
    a child report run, whose sections then show on the solve's page."""
    who, ws, form = await signed_form(request, "planner", "a sensitivity report")
    with request.app.state.db.session() as s:
        parent = ops.visible_run(s, who, run_id)
    ops.submit_run(request.app.state.db, request.app.state.store, who, _client(request), "report", parent.dataset_id,
                   {}, dict(parent.changes), parent_id=parent.id)  # the report's own defaults (it has no time limit)
    return RedirectResponse(f"/ui/runs/{run_id}#h-sensitivity", status_code=303)


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


def _grouped(fields: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for f in fields:
        groups.setdefault(f["group"], []).append(f)
    return list(groups.items())


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
        if (f["as"] == "share" or f.get("share")) and value > 100:
            problems.append(f"{f['label']}: expected a percentage from 0 to 100, found {text!r}")
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
    who, ws, form = await signed_form(request, "planner", "a what-if")
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
    line = line.removeprefix("changes: ").removeprefix("--set: ").removeprefix("instance.yaml: ")
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


#: Depots shown in the comparison's table (the largest differences; the CSV has them all).
DEPOTS_COMPARED = 25


def figure_name(item: str, component: bool = False) -> str:
    """A cost component's or KPI's name on the pages (the report's label without the risk
    measure's abbreviation)."""
    if component and item == "total":
        return "Expected cost, total"
    return label(item).replace(" (CVaR)", "")


def _comparison(table: pd.DataFrame, a: str, b: str) -> dict:
    """The comparison's sections: headline figures (costs by the size of their difference,
    then the other figures by the size of their relative difference), channels and depots,
    largest differences first, formatted with their units."""
    def cells(r):
        k = {"cost": "money", "kpi": kind(r["item"])}.get(r["kind"], "applicants" if r["unit"] == "applicants" else "money")
        return [fmt(r[a], k, r["unit"], True), fmt(r[b], k, r["unit"], True), fmt(r["difference"], k, r["unit"], True),
                "" if pd.isna(r["relative"]) else fmt(r["relative"], "share")]

    def largest_first(df, by="difference"):
        return df.reindex(df[by].abs().fillna(np.inf).sort_values(ascending=False, kind="stable").index)

    head = pd.concat([largest_first(table[table["kind"] == "cost"]), largest_first(table[table["kind"] == "kpi"],
                                                                                    "relative")])
    dec = table[table["kind"] == "decision"]
    channels = largest_first(dec[dec["item"].str.startswith("applicants ") & ~dec["item"].str.startswith("applicants at ")])
    apps = dec[dec["item"].str.startswith("applicants at ")].assign(depot=lambda d: d["item"].str[14:])
    spend = dec[dec["item"].str.startswith("incentive spend at ")].assign(depot=lambda d: d["item"].str[19:])
    depots = apps.merge(spend, on="depot", suffixes=("", "_spend"))
    order = (depots["difference"].abs().fillna(np.inf) + 1e-9 * depots["difference_spend"].abs().fillna(0))
    depots = depots.loc[order.sort_values(ascending=False, kind="stable").index]
    currency = spend["unit"].iloc[0] if len(spend) else ""
    return {
        "headline": [(figure_name(r["item"], r["kind"] == "cost"), *cells(r)) for _, r in head.iterrows()],
        "channels": [(r["item"].removeprefix("applicants "), *cells(r)) for _, r in channels.iterrows()],
        "depots": [(r["depot"], fmt(r[a], "applicants"), fmt(r[b], "applicants"), fmt(r["difference"], "applicants"),
                    fmt(r[f"{a}_spend"], "money", currency), fmt(r[f"{b}_spend"], "money", currency),
                    fmt(r["difference_spend"], "money", currency)) for _, r in depots.head(DEPOTS_COMPARED).iterrows()],
        "depot_count": len(depots), "currency": currency,
    }


@router.get("/compare")
def compare_page(request: Request, a: str = "", b: str = "", depot: str = ""):
    who, ws = signed_in(request)
    db, store = request.app.state.db, request.app.state.store
    choices = _run_rows(db, who, "solve", "finished")
    sections, chart = None, ([], "", "")
    if a and b:
        table = ops.compare_runs(db, store, who, a, b)
        sections = _comparison(table, a, b)
        with db.session() as s:
            outs = [(f"run {r.id[:8]}", store.output_dir(r.output_dir)) for r in
                    (ops.visible_run(s, who, a), ops.visible_run(s, who, b))]
        chart = _capacity_chart(outs, depot or None)
    return render(request, "compare.html", who, ws, choices=choices, a=a, b=b, sections=sections,
                  chart_depots=chart[0], chart_depot=chart[1], chart=chart[2])


@router.get("/compare.csv")
def compare_csv(request: Request, a: str, b: str):
    """The whole comparison table (every depot), for a spreadsheet."""
    who, _ = signed_in(request)
    table = ops.compare_runs(request.app.state.db, request.app.state.store, who, a, b)
    return Response(table.to_csv(index=False), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="compare-{a[:8]}-{b[:8]}.csv"'})


# ---------------------------------------------------------------------------- decisions and schedules


@router.get("/decisions")
def decisions_page(request: Request):
    """The plans in force per scope and week, and every decision, as far as the scope sees."""
    who, ws = signed_in(request)
    with request.app.state.db.session() as s:
        rows = ops.scoped(s.scalars(select(Decision).order_by(Decision.created_at.desc(), Decision.id)).all(), who)
        people = {t.id: t.name for t in s.scalars(select(Token)).all()}
        runs = {r.id: r.dataset_id for r in s.scalars(select(Run).where(Run.id.in_({d.run_id for d in rows}))).all()}
        names = {d.id: d.name for d in s.scalars(select(Dataset)).all()}
    history = [{"at": d.created_at.strftime("%Y-%m-%d %H:%M"), "verdict": d.verdict,
                "scope": "the whole network" if d.scope == "network" else f"{d.scope} {d.scope_key}",
                "week": d.week, "run_id": d.run_id, "dataset": names.get(runs.get(d.run_id), ""),
                "by": people.get(d.created_by, ""), "comment": d.comment, "superseded": bool(d.superseded_by),
                "in_force": d.verdict == "approved" and not d.superseded_by} for d in rows]
    in_force = sorted((h for h in history if h["in_force"]), key=lambda h: (h["week"], h["scope"]), reverse=True)
    return render(request, "decisions.html", who, ws, history=history[:500], in_force=in_force)


def _schedules(db, who) -> tuple[list[dict], list]:
    with db.session() as s:
        rows = ops.scoped(s.scalars(select(Schedule).order_by(Schedule.created_at, Schedule.id)).all(), who)
        datasets = ops.scoped(s.scalars(select(Dataset).where(Dataset.kind.in_(("instance", "pipeline")))
                                        .order_by(Dataset.name)).all(), who)
        names = {d.id: d.name for d in s.scalars(select(Dataset)).all()}
    out = []
    for sc in rows:
        try:
            nxt = pd.Timestamp(sc.next_run_at).tz_localize("UTC").tz_convert(sc.timezone).strftime("%Y-%m-%d %H:%M %Z")
        except (ValueError, KeyError, TypeError):
            nxt = sc.next_run_at.strftime("%Y-%m-%d %H:%M UTC")
        out.append({"id": sc.id, "name": sc.name, "kind": sc.kind, "dataset": names.get(sc.dataset_id, ""),
                    "dataset_id": sc.dataset_id, "cron": sc.cron, "timezone": sc.timezone,
                    "next": nxt if sc.enabled else "off", "last_run_id": sc.last_run_id, "enabled": sc.enabled,
                    "time_limit": (sc.options or {}).get("time_limit", "")})
    return out, datasets


@router.get("/schedules")
def schedules_page(request: Request):
    who, ws = signed_in(request)
    return _schedules_view(request, who, ws)


def _schedules_view(request: Request, who, ws, problems: list[str] | None = None, status: int = 200):
    db = request.app.state.db
    schedules, datasets = _schedules(db, who)
    recent = _run_rows(db, who, scheduled=True)[:20]
    return render(request, "schedules.html", who, ws, status=status, schedules=schedules, datasets=datasets,
                  recent=recent, problems=problems)


@router.post("/schedules")
@router.post("/schedules/{schedule_id}")
async def save_schedule(request: Request, schedule_id: str | None = None):
    """Add a schedule, or change one (its name, data, cron, time zone, time limit, on or off)."""
    who, ws, form = await signed_form(request, "planner", "changing schedules")
    db = request.app.state.db
    dataset_id = str(form.get("dataset_id", ""))
    with db.session() as s:
        d = s.get(Dataset, dataset_id)
        kind_ = "pipeline" if d is not None and d.kind == "pipeline" else "solve"
    fields = {"name": str(form.get("name", "")).strip(), "cron": str(form.get("cron", "")).strip(),
              "timezone": str(form.get("timezone", "")).strip() or "UTC", "dataset_id": dataset_id, "kind": kind_}
    limit = str(form.get("time_limit", "")).strip()
    if kind_ == "solve":
        fields["options"] = {"time_limit": limit} if limit else {}
    if schedule_id is not None:
        fields["enabled"] = form.get("enabled") == "1"
    try:
        ops.save_schedule(db, request.app.state.store, who, _client(request), fields, schedule_id)
    except ops.Problems as exc:
        if exc.status_code == 404:
            raise
        return _schedules_view(request, who, ws, problems=[p.replace("time_limit", "time limit").replace("dataset_id", "data")
                                                 for p in exc.detail], status=exc.status_code)
    return RedirectResponse("/ui/schedules", status_code=303)


# ---------------------------------------------------------------------------- data


@router.get("/datasets")
def datasets_page(request: Request):
    who, ws = signed_in(request)
    with request.app.state.db.session() as s:
        rows = ops.scoped(s.scalars(select(Dataset).order_by(Dataset.created_at.desc())).all(), who)
    return render(request, "datasets.html", who, ws, rows=rows)


@router.post("/datasets")
async def upload(request: Request):
    who, ws, form = await signed_form(request, "planner", "uploading")
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
    who, ws, form = await signed_form(request, "planner", "running a plan")
    options = {"time_limit": str(form.get("time_limit") or 600)}
    run, _ = ops.submit_run(request.app.state.db, request.app.state.store, who, _client(request), "solve", dataset_id,
                            options, {})
    return RedirectResponse(f"/ui/runs/{run.id}", status_code=303)
