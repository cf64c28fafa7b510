"""The service's operations, stated once: the HTTP API (app.py) and the workspace pages
(web.py) both call them. Each takes the database, the principal asking and the client's address
(for the audit log), checks what it must, and raises ``Problems`` (HTTP status + one line per
problem) when it cannot proceed. What a principal's scope does not cover is "not found".
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from fastapi import HTTPException
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from optplan.errors import InputError
from optplan.io.instance import load_instance
from optplan.io.whatif import parse_assignment
from optplan.service.auth import Principal
from optplan.service.jobs import KINDS, check_dataset, check_options
from optplan.service.models import Audit, Dataset, Decision, Run, Schedule, utcnow
from optplan.service.plans import plan_of_outputs, table
from optplan.service.scheduler import check_cron, next_after
from optplan.service.storage import Limits, Store, strip_single_folder, tree_files, tree_hash, unpack

VERDICTS = {"approved": "plan.approve", "rejected": "plan.reject"}
SCOPES = ("network", "country", "region")


class Problems(HTTPException):
    """An HTTP status and one line per problem."""

    def __init__(self, status: int, problems: list[str]):
        super().__init__(status_code=status, detail=problems)


def not_found(what: str) -> Problems:
    return Problems(404, [f"{what}: not found"])


def audit(s, who: Principal, client: str, action: str, kind: str, obj_id: str, countries=(), **detail) -> None:
    s.add(Audit(actor=who.token_id, action=action, object_kind=kind, object_id=obj_id, detail=detail, client=client,
                countries=list(countries)))


def visible_run(s, who: Principal, run_id: str) -> Run:
    run = s.get(Run, run_id)
    if run is None or not who.sees(run.countries):
        raise not_found(f"run {run_id}")
    return run


def visible_dataset(s, who: Principal, dataset_id: str) -> Dataset:
    d = s.get(Dataset, dataset_id)
    if d is None or not who.sees(d.countries):
        raise not_found(f"dataset {dataset_id}")
    return d


def scoped(rows, who: Principal) -> list:
    return [r for r in rows if who.sees(r.countries)]


def check_changes(folder: Path, changes: dict) -> list[str]:
    """What-if changes applied to the stored instance, as the CLI's --set would: the problems."""
    try:
        parsed = dict(parse_assignment(f"{k}={v if isinstance(v, str) else json.dumps(v)}") for k, v in changes.items())
        load_instance(folder).with_changes(parsed)
    except InputError as exc:
        return [f"changes: {p}" for p in exc.problems]
    return []


def submit_run(db, store: Store, who: Principal, client: str, kind: str, dataset_id: str, options: dict,
               changes: dict, parent_id: str | None = None, max_attempts: int = 3,
               idempotency_key: str | None = None) -> tuple[Run, bool]:
    """Queue a run; (the run, whether it is new). A key seen before gives that run back."""
    with db.session() as s:
        if idempotency_key:
            seen = s.scalar(select(Run).where(Run.created_by == who.token_id, Run.idempotency_key == idempotency_key))
            if seen is not None:
                if not who.sees(seen.countries):  # the token's scope changed since: as if unknown
                    raise not_found(f"run with idempotency key {idempotency_key!r}")
                return seen, False
        dataset = visible_dataset(s, who, dataset_id)
        problems = check_options(kind, options)
        if kind in KINDS and dataset.kind != KINDS[kind]:
            problems.append(f"dataset_id: a {kind} run reads a {KINDS[kind]} dataset; this one is a {dataset.kind}")
        if changes and dataset.kind != "instance":
            problems.append("changes: what-if changes apply to instance datasets only")
        if parent_id is not None:
            visible_run(s, who, parent_id)
        if not problems and changes:
            problems += check_changes(store.dataset_dir(dataset.sha256), changes)
        if problems:
            raise Problems(422, problems)
        run = Run(kind=kind, dataset_id=dataset.id, options=options, changes=changes, parent_id=parent_id,
                  max_attempts=max_attempts, countries=list(dataset.countries), created_by=who.token_id,
                  idempotency_key=idempotency_key)
        s.add(run)
        try:
            s.flush()
        except IntegrityError:  # the same key submitted twice at the same moment: one run
            s.rollback()
            return s.scalar(select(Run).where(Run.created_by == who.token_id,
                                              Run.idempotency_key == idempotency_key)), False
        audit(s, who, client, "run.submit", "run", run.id, run.countries, run_kind=run.kind)
        return run, True


def decide(db, who: Principal, client: str, run_id: str, verdict: str, comment: str = "", scope: str = "network",
           scope_key: str = "", week: str | None = None) -> Decision:
    """Approve or reject a finished solve's plan for a scope and planning week (the approver
    role is the caller's to check); an approval supersedes the one in force."""
    problems = []
    if verdict not in VERDICTS:
        problems.append(f"verdict: expected approved or rejected, found {verdict!r}")
    if scope not in SCOPES:
        problems.append(f"scope: expected network, country or region, found {scope!r}")
    with db.session() as s:
        run = visible_run(s, who, run_id)
        dataset = s.get(Dataset, run.dataset_id)
        if run.kind != "solve" or run.state != "finished":
            problems.append(f"run {run_id}: only a finished solve run's plan can be approved or rejected "
                            f"(this one is a {run.state} {run.kind} run)")
        if scope == "network" and scope_key:
            problems.append("scope_key: the network scope has no key")
        if scope == "country" and scope_key not in (run.countries or []):
            problems.append(f"scope_key: one of the run's countries ({', '.join(run.countries) or 'none'}), "
                            f"found {scope_key!r}")
        if scope == "region" and scope_key not in (dataset.meta or {}).get("regions", []):
            problems.append(f"scope_key: one of the instance's regions, found {scope_key!r}")
        if scope == "network" and not who.unscoped:
            problems.append("scope: a token scoped to countries approves for its countries or regions, not the network")
        week = week or (dataset.meta or {}).get("start_date", "")
        if problems:
            raise Problems(422, problems)
        d = Decision(run_id=run.id, verdict=verdict, scope=scope, scope_key=scope_key, week=week, comment=comment,
                     countries=list(run.countries), created_by=who.token_id)
        s.add(d)
        s.flush()
        if verdict == "approved":
            s.execute(update(Decision).where(
                Decision.scope == scope, Decision.scope_key == scope_key, Decision.week == week,
                Decision.verdict == "approved", Decision.superseded_by.is_(None), Decision.id != d.id,
            ).values(superseded_by=d.id))
        audit(s, who, client, VERDICTS[verdict], "run", run.id, run.countries, decision=d.id, scope=scope,
              key=scope_key, week=week, comment=comment)
        return d


def compare_runs(db, store: Store, who: Principal, a: str, b: str) -> pd.DataFrame:
    """``optplan.compare``'s table of two finished solves, read from their files."""
    with db.session() as s:
        sides = []
        for r in (visible_run(s, who, a), visible_run(s, who, b)):
            if r.kind != "solve" or r.state != "finished":
                raise Problems(409, [f"run {r.id}: a finished solve run is needed to compare (it is a {r.state} "
                                     f"{r.kind} run)"])
            sides.append((r, s.get(Dataset, r.dataset_id)))
    plans = [plan_of_outputs(store.dataset_dir(d.sha256), store.output_dir(r.output_dir)) for r, d in sides]
    try:
        return table(plans[0], plans[1], (a, b))
    except ValueError as exc:
        raise Problems(409, [str(exc)]) from None


def store_upload(db, store: Store, limits: Limits, who: Principal, client: str, kind: str, name: str,
                 blobs: list[tuple[str, bytes]], scratch: Path) -> tuple[Dataset, bool]:
    """Unpack, check as the CLI would, and keep an upload once by content; (dataset, new?)."""
    folder = scratch / "u"
    folder.mkdir()
    for filename, data in blobs:
        unpack(data, filename, folder, limits)
    folder = strip_single_folder(folder)
    try:
        checked = check_dataset(kind, folder)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:  # a file the dataset names is absent
        shown = Path(exc.filename).name if exc.filename else "upload"
        raise Problems(422, [f"{shown}: {exc.strerror or exc}"]) from None
    except InputError as exc:  # named as in the upload, never by the server's folders
        lines = [str(p).replace(f"{folder}/", "").replace(str(folder), ".") for p in exc.problems]
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
            return existing, False
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
            return s.scalar(select(Dataset).where(Dataset.sha256 == sha, Dataset.kind == kind)), False
        audit(s, who, client, "dataset.upload", "dataset", d.id, d.countries, sha256=sha, dataset_kind=kind)
        return d, True


#: What a schedule holds that a planner may set; an edit may change any of them.
SCHEDULE_FIELDS = ("name", "cron", "timezone", "kind", "dataset_id", "options", "changes", "enabled")


def save_schedule(db, store: Store, who: Principal, client: str, fields: dict,
                  schedule_id: str | None = None) -> Schedule:
    """Create a schedule (``schedule_id`` None) or change one: every field checked as a run's
    submission is (cron, time zone, options, the dataset's kind, the what-if changes); the next
    slot is recomputed from now when the cron or time zone changes."""
    with db.session() as s:
        sch = None
        if schedule_id is not None:
            sch = s.get(Schedule, schedule_id)
            if sch is None or not who.sees(sch.countries):
                raise not_found(f"schedule {schedule_id}")
        now = {k: getattr(sch, k) for k in SCHEDULE_FIELDS} if sch is not None else {
            "timezone": "UTC", "options": {}, "changes": {}, "enabled": True}
        new = {**now, **{k: v for k, v in fields.items() if k in SCHEDULE_FIELDS and v is not None}}
        missing = [k for k in ("name", "cron", "kind", "dataset_id") if not new.get(k)]
        if missing:
            raise Problems(422, [f"{k}: expected a value, found none" for k in missing])
        dataset = visible_dataset(s, who, new["dataset_id"])
        problems = check_cron(new["cron"], new["timezone"]) + check_options(new["kind"], new["options"])
        if new["kind"] in KINDS and dataset.kind != KINDS[new["kind"]]:
            problems.append(f"dataset_id: a {new['kind']} run reads a {KINDS[new['kind']]} dataset; this one is a "
                            f"{dataset.kind}")
        if not problems and new["changes"]:
            problems += check_changes(store.dataset_dir(dataset.sha256), new["changes"])
        if problems:
            raise Problems(422, problems)
        if sch is None:
            sch = Schedule(created_by=who.token_id)
            s.add(sch)
        timing = sch.next_run_at is None or (new["cron"], new["timezone"]) != (sch.cron, sch.timezone)
        for k in SCHEDULE_FIELDS:
            setattr(sch, k, new[k])
        sch.countries = list(dataset.countries)
        if timing:
            sch.next_run_at = next_after(new["cron"], new["timezone"], utcnow())
        s.flush()
        changed = sorted(k for k in SCHEDULE_FIELDS if now.get(k) != new[k]) if schedule_id else []
        audit(s, who, client, "schedule.update" if schedule_id else "schedule.create", "schedule", sch.id,
              sch.countries, cron=sch.cron, **({"changed": changed} if schedule_id else {}))
        return sch
