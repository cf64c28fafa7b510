"""The service's parts without a server (issue #27): migrations against the models, the
queue's compare-and-set claim, schedules, upload checks, option checks."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from optplan.service.db import Database, migrate, sqlite_url
from optplan.service.jobs import check_options, command_line
from optplan.service.models import Base, Dataset, Run, Schedule, utcnow
from optplan.service.scheduler import check_cron, next_after, tick
from optplan.service.storage import Limits, UploadError, safe_name, tree_hash, unpack
from optplan.service.worker import WorkerLoop


@pytest.fixture
def db(tmp_path) -> Database:
    url = sqlite_url(tmp_path)
    migrate(url)
    d = Database(url)
    yield d
    d.dispose()


def test_the_migrations_build_exactly_the_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    migrate(db.url)  # a second upgrade is a no-op


def _queued(db, n=1) -> list[str]:
    with db.session() as s:
        ds = Dataset(kind="instance", name="x", sha256="0" * 64, created_by="t")
        s.add(ds)
        s.flush()
        runs = [Run(kind="solve", dataset_id=ds.id, created_by="t") for _ in range(n)]
        s.add_all(runs)
        s.flush()
        return [r.id for r in runs]


def test_two_workers_claiming_one_run_one_gets_it(db, tmp_path):
    (run_id,) = _queued(db)
    a = WorkerLoop(db.url, tmp_path, lease_seconds=60)
    b = WorkerLoop(db.url, tmp_path, lease_seconds=60)
    got = [a.claim(), b.claim()]
    assert sum(r is not None for r in got) == 1
    claimed = next(r for r in got if r is not None)
    assert claimed.id == run_id and claimed.attempts == 1 and claimed.state == "running"
    with db.session() as s:  # the lease expires: the other worker claims it again, attempt 2
        s.execute(sa.update(Run).values(lease_until=utcnow() - timedelta(seconds=1)))
    again = b.claim() or a.claim()
    assert again.id == run_id and again.attempts == 2
    with db.session() as s:  # the first holder's fencing token no longer matches
        assert s.execute(sa.update(Run).where(a._held(claimed)).values(progress="stale write")).rowcount == 0


def test_a_schedule_submits_each_slot_once_in_its_time_zone(db):
    (run_id,) = _queued(db)
    with db.session() as s:
        ds_id = s.get(Run, run_id).dataset_id
        # every Monday 06:00 in Berlin; its first slot, Monday 2027-01-04 06:00 CET = 05:00 UTC
        s.add(Schedule(name="weekly", cron="0 6 * * MON", timezone="Europe/Berlin", kind="solve", dataset_id=ds_id,
                       next_run_at=datetime(2027, 1, 4, 5, 0), created_by="t"))
    now = datetime(2027, 1, 4, 7, 0)  # 08:00 in Berlin: the slot is due
    made = tick(db, now)
    assert len(made) == 1 and tick(db, now) == []  # the same slot again: nothing
    with db.session() as s:
        sch = s.scalar(sa.select(Schedule))
        assert sch.next_run_at == datetime(2027, 1, 11, 5, 0) and sch.last_run_id == made[0]
        assert s.get(Run, made[0]).schedule_id == sch.id and s.get(Run, made[0]).state == "queued"
    # summer time: 06:00 in Berlin is 04:00 UTC
    assert next_after("0 6 * * MON", "Europe/Berlin", datetime(2027, 7, 1)) == datetime(2027, 7, 5, 4, 0)
    assert check_cron("every monday", "Mars/Olympus")[0].startswith("cron: expected five cron fields")
    assert len(check_cron("every monday", "Mars/Olympus")) == 2


def test_member_names_that_escape_are_refused():
    limits = Limits(depth=3)
    for bad in ("../x", "/etc/passwd", "a/../../x", "C:/x", "a\\b", "a/b/c/d/e"):
        with pytest.raises(UploadError):
            safe_name(bad, limits)
    assert str(safe_name("./demo/depots.csv", limits)) == "demo/depots.csv"


def test_an_upload_that_unpacks_past_the_byte_limit_stops_there(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.csv", b"0" * (5 << 20))
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(UploadError, match="more than 1,048,576 bytes"):
        unpack(buf.getvalue(), "x.zip", dest, Limits(bytes=1 << 20))
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= (1 << 20) + (1 << 20)


def test_the_tree_hash_is_of_paths_and_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "x.csv").write_text("1,2\n")
    assert tree_hash(a) == tree_hash(b)
    (b / "sub" / "x.csv").write_text("1,3\n")
    assert tree_hash(a) != tree_hash(b)


def test_options_are_the_commands_own():
    assert check_options("solve", {"time_limit": 30, "engine": "highs", "integer": True}) == []
    lines = check_options("solve", {"time_limit": -1, "integer": "yes", "save_mps": "/tmp/x", "cheese": 1})
    assert any(line.startswith("options.time_limit:") for line in lines)
    assert "options.integer: expected true or false, found 'yes'" in lines
    assert any(line.startswith("options.save_mps: expected one of") for line in lines)  # the service's own
    assert any(line.startswith("options.cheese: expected one of") for line in lines)
    kinds = "solve, report, simulate, replan, monitor, pipeline, forecast, backtest"
    assert check_options("teleport", {}) == [f"kind: expected one of {kinds}, found 'teleport'"]
    assert check_options("replan", {"state": "../../etc/passwd"})[0].startswith("options.state: expected a relative path")
    argv = command_line("solve", Path("/data/ds"), Path("out"), {"time_limit": 30, "integer": True},
                        {"budgets.total": 5000, "channels[agency].cost_per_applicant": "*1.1"})
    assert argv[3:] == ["solve", "/data/ds", "--out", "out", "--time-limit", "30", "--integer",
                        "--set", "budgets.total=5000", "--set", "channels[agency].cost_per_applicant=*1.1"]


def test_a_run_can_plan_with_a_decisions_file_of_its_dataset():
    """The what-if of a commitment in the service: options.decisions names a file inside the
    dataset, passed as --decisions (a dataset's own decisions.csv is read by the instance)."""
    assert check_options("solve", {"decisions": "what-if/freeze.csv", "override_costs": "each"}) == []
    assert check_options("solve", {"decisions": "../x.csv"})[0].startswith("options.decisions: expected a relative")
    assert check_options("solve", {"override_costs": "some"})[0].startswith("options.override_costs:")
    argv = command_line("solve", Path("/data/ds"), Path("out"), {"decisions": "what-if/freeze.csv"}, {})
    assert argv[3:] == ["solve", "/data/ds", "--out", "out", "--decisions", "/data/ds/what-if/freeze.csv"]
