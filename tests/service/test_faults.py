# ruff: noqa: F811 - the server fixture is imported from service_support
"""Real faults (issue #27): ``kill -9`` a worker mid-solve, ``kill -9`` the server with runs
queued and running, a worker that hangs past its lease, and load. Nothing is lost and nothing
runs twice. Mid-solve is a state the test controls (the plugin engine "hold" waits for a release
file), not a race against the machine's speed; waits are bounded by generous timeouts only."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from conftest import REPO
from service_support import RUN_TIMEOUT, TEST_LEASE, Server, alive, pg_database, wait_for

from optplan.service.db import sqlite_url

pytestmark = pytest.mark.slow
DEMO = REPO / "instances" / "demo"
HOLD = {"engine": "hold", "time_limit": 600}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    if request.param == "postgresql":
        url = pg_database()
        if url is None:
            pytest.skip("no PostgreSQL here (set OPTPLAN_TEST_PG_URL; CI always does)")
        return url
    return None


def _completions(server: Server) -> dict[str, int]:
    engine = sa.create_engine(server.db_url or sqlite_url(server.data_dir))
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT run_id, COUNT(*) FROM run_completions GROUP BY run_id")).all()
    engine.dispose()
    return {r[0]: r[1] for r in rows}


def _marker_pids(marker) -> tuple[int, int]:
    """(the solve's pid, its worker's pid) from the hold engine's marker."""
    return int(marker.name.rsplit("-", 1)[1]), int(marker.read_text())


def _held(server: Server, **submit) -> tuple:
    """(client, run, the hold engine's first marker) of a held solve of the demo, started."""
    c = server.client()
    run = c.submit("solve", c.upload(DEMO, kind="instance")["id"], options=HOLD, **submit)
    marker = wait_for(lambda: server.started(run["id"]), RUN_TIMEOUT, "the hold engine to start", server)[0]
    return c, run, marker


def test_a_worker_killed_mid_solve_loses_its_lease_and_the_run_finishes_once(tmp_path, db_url):
    server = Server(tmp_path / "data", db_url, workers=2).start()
    try:
        c, run, first = _held(server)
        solve_pid, worker_pid = _marker_pids(first)
        os.kill(worker_pid, signal.SIGKILL)
        wait_for(lambda: not alive(solve_pid), 30, "the orphaned solve to die with its worker", pids=[solve_pid])
        # after the lease another worker claims it again and starts a second attempt
        wait_for(lambda: len(server.started(run["id"])) == 2, RUN_TIMEOUT + 4 * TEST_LEASE, "a second attempt", server)
        server.release()
        done = c.wait(run["id"], timeout=RUN_TIMEOUT)
        assert done["state"] == "finished" and done["attempts"] == 2, done
        assert _completions(server) == {run["id"]: 1}
        assert c.output(run["id"], "summary.json")  # the outputs are the second attempt's
        assert "workers" in httpx.get(f"{server.url}/api/v1/health/ready").json()["checks"]
    finally:
        server.stop()


def test_the_server_killed_with_runs_queued_and_running_loses_and_repeats_nothing(tmp_path, db_url):
    server = Server(tmp_path / "data", db_url, workers=1).start()
    c = server.client()
    ds = c.upload(DEMO, kind="instance")["id"]
    runs = [c.submit("solve", ds, options=HOLD)["id"] for _ in range(3)]
    marker = wait_for(lambda: server.started(runs[0]), RUN_TIMEOUT, "the first run to start", server)[0]
    solve_pid, worker_pid = _marker_pids(marker)
    server.kill()
    wait_for(lambda: not alive(worker_pid) and not alive(solve_pid), 30, "the workers to notice and exit",
             pids=[worker_pid, solve_pid])
    again = Server(server.data_dir, db_url, workers=1, port=server.port)
    again.hold = server.hold
    again.start()
    try:
        again.admin = server.admin  # the first start's admin token still works
        c2 = again.client()
        again.release()
        done = [c2.wait(r, timeout=RUN_TIMEOUT) for r in runs]
        assert [d["state"] for d in done] == ["finished"] * 3
        assert done[0]["attempts"] == 2 and [d["attempts"] for d in done[1:]] == [1, 1]
        assert c2.runs(limit=500)["total"] == 3
        assert _completions(again) == dict.fromkeys(runs, 1)
    finally:
        again.stop()


def test_a_worker_that_hangs_past_its_lease_is_replaced(tmp_path):
    server = Server(tmp_path / "data", workers=1).start()  # the supervisor's watch does not depend on the database
    try:
        c, run, marker = _held(server)
        _, worker_pid = _marker_pids(marker)
        os.kill(worker_pid, signal.SIGSTOP)  # alive, but silent: no heartbeat
        wait_for(lambda: len(server.started(run["id"])) == 2, RUN_TIMEOUT + 6 * TEST_LEASE, "a second attempt", server)
        assert not alive(worker_pid)  # the supervisor killed the hung worker
        server.release()
        done = c.wait(run["id"], timeout=RUN_TIMEOUT)
        assert done["state"] == "finished" and done["attempts"] == 2
        assert _completions(server) == {run["id"]: 1}
    finally:
        server.stop()


def test_a_run_lost_more_often_than_allowed_fails_with_the_reason(tmp_path):
    server = Server(tmp_path / "data", workers=1).start()
    try:
        c, run, marker = _held(server, max_attempts=1)
        os.kill(_marker_pids(marker)[1], signal.SIGKILL)
        done = c.wait(run["id"], timeout=RUN_TIMEOUT + 4 * TEST_LEASE)
        assert done["state"] == "failed" and "lost 1 times" in done["error"]
        assert _completions(server) == {run["id"]: 1}
    finally:
        server.stop()


def test_load_twenty_submissions_and_two_hundred_polls_while_two_solves_run(tmp_path):
    server = Server(tmp_path / "data", workers=2).start()
    try:
        c = server.client()
        ds = c.upload(DEMO, kind="instance")["id"]
        busy = [c.submit("solve", ds, options=HOLD)["id"] for _ in range(2)]
        wait_for(lambda: all(server.started(r) for r in busy), RUN_TIMEOUT, "two solves running", server)
        headers = {"Authorization": f"Bearer {server.admin}"}
        statuses, lock = [], threading.Lock()

        def submit(i):
            with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=60) as h:
                r = h.post("/runs", json={"kind": "solve", "dataset_id": ds}, headers={"Idempotency-Key": f"load-{i}"})
                with lock:
                    statuses.append(r.status_code)
                return r.json()["id"]

        def poll(i):
            with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=60) as h:
                r = h.get(f"/runs/{busy[i % 2]}")
                with lock:
                    statuses.append(r.status_code)

        with ThreadPoolExecutor(max_workers=32) as pool:
            submitted = list(pool.map(submit, range(20)))
            list(pool.map(poll, range(200)))
        assert all(s < 500 for s in statuses) and statuses.count(202) == 20
        assert len(set(submitted)) == 20
        server.release()
        for r in busy + submitted:
            assert c.wait(r, timeout=RUN_TIMEOUT)["state"] == "finished"
        assert c.runs(limit=500)["total"] == 22
        assert _completions(server) == dict.fromkeys(busy + submitted, 1)
    finally:
        server.stop()


def test_a_pipeline_run_goes_from_raw_data_to_a_plan_awaiting_approval(tmp_path):
    """The weekly loop's shape: a pipeline dataset (config, depots, channels, settings and the
    demand history in one folder) uploaded, run by a worker, its plan approved."""
    import shutil

    import yaml

    folder = tmp_path / "weekly"
    folder.mkdir()
    for name in ("depots.csv", "channels.csv", "settings.yaml"):
        shutil.copy(REPO / "examples" / "pipeline" / name, folder / name)
    shutil.copy(REPO / "examples" / "data" / "walmart_store_weekly_sales_30.csv", folder / "history.csv")
    config = yaml.safe_load((REPO / "examples" / "pipeline" / "pipeline.yaml").read_text())
    config["inputs"]["history"] = "history.csv"
    config["forecast"] = {"horizon": 8, "scenarios": 5, "model": "seasonal_naive"}
    config["generate_logs"].update(applicants=4000, drivers=800)
    config["estimate"] = {"bootstrap": 2}
    config["report"] = {"enabled": False}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(config))
    server = Server(tmp_path / "data", workers=1).start()
    try:
        c = server.client()
        bad = dict(config, inputs={**config["inputs"], "history": "../../etc/passwd"})
        (tmp_path / "bad").mkdir()
        for p in folder.iterdir():
            shutil.copy(p, tmp_path / "bad" / p.name)
        (tmp_path / "bad" / "pipeline.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(Exception) as err:
            c.upload(tmp_path / "bad", kind="pipeline")
        assert getattr(err.value, "status", None) == 422
        ds = c.upload(folder, kind="pipeline")
        run = c.wait(c.submit("pipeline", ds["id"])["id"], timeout=20 * RUN_TIMEOUT)
        assert run["state"] == "finished", run["error"]
        assert any(name.endswith("applicants.csv") for name in run["outputs"]), run["outputs"]
    finally:
        server.stop()
