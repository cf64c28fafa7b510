"""Cron schedules that submit runs: the weekly loop runs by itself.

A schedule holds a cron expression (croniter's five fields, e.g. ``0 6 * * MON``: every
Monday at 06:00) in an IANA time zone, and the run to submit (kind, dataset, options,
changes). ``tick(db)`` submits every schedule that is due, once: it advances the schedule's
``next_run_at`` with a compare-and-set on its old value in the same transaction as the new run,
so two schedulers (two servers on one database) never submit the same slot twice. A server
that was down over several slots submits one run (the latest slot), not a backlog.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select, update

from optplan.service.models import Audit, Run, Schedule, utcnow


def check_cron(expr: str, tz: str) -> list[str]:
    problems = []
    if not croniter.is_valid(expr):
        problems.append(f"cron: expected five cron fields like '0 6 * * MON' (every Monday 06:00), found {expr!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: expected an IANA time zone like 'Europe/Berlin' or 'UTC', found {tz!r}")
    return problems


def next_after(expr: str, tz: str, after: datetime) -> datetime:
    """The first slot of ``expr`` in ``tz`` strictly after ``after`` (naive UTC), as naive UTC."""
    zone = ZoneInfo(tz)
    local = after.replace(tzinfo=timezone.utc).astimezone(zone)
    nxt = croniter(expr, local).get_next(datetime)
    return nxt.astimezone(timezone.utc).replace(tzinfo=None)


def tick(db, now: datetime | None = None) -> list[str]:
    """Submit the runs of every due schedule; returns the new run ids."""
    now = now or utcnow()
    made = []
    with db.session() as s:
        due = s.scalars(select(Schedule).where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)).all()
        ids = [(d.id, d.next_run_at) for d in due]
    for sid, slot in ids:
        with db.session() as s:
            sch = s.get(Schedule, sid)
            following = next_after(sch.cron, sch.timezone, now)
            moved = s.execute(update(Schedule).where(Schedule.id == sid, Schedule.next_run_at == slot)
                              .values(next_run_at=following)).rowcount
            if moved != 1:
                continue  # another scheduler took this slot
            run = Run(kind=sch.kind, dataset_id=sch.dataset_id, options=dict(sch.options), changes=dict(sch.changes),
                      countries=list(sch.countries), schedule_id=sch.id, created_by=sch.created_by)
            s.add(run)
            s.flush()
            s.execute(update(Schedule).where(Schedule.id == sid).values(last_run_id=run.id))
            s.add(Audit(actor="scheduler", action="run.submit", object_kind="run", object_id=run.id,
                        detail={"schedule": sid, "slot": slot.isoformat() + "Z"}, countries=list(sch.countries)))
            made.append(run.id)
    return made
