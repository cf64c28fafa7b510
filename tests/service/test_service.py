# ruff: noqa: F811 - the server fixture is imported from service_support
"""optplan serve, tested from the outside (issue #27): a real server process, a real
database, the HTTP API through the Python client and raw HTTP."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO
from service_support import RUN_TIMEOUT, alive, server, wait_for  # noqa: F401

from optplan.cli import main
from optplan.client import ServiceError, zip_folder

DEMO = REPO / "instances" / "demo"


@pytest.fixture(scope="module")
def demo_id(server):
    return server.client().upload(DEMO, kind="instance")["id"]


@pytest.fixture(scope="module")
def countries(tmp_path_factory):
    """Two small generated instances, one with German depots only and one with French."""
    out = {}
    for c in ("DE", "FR"):
        folder = tmp_path_factory.mktemp(f"inst-{c}") / c
        r = CliRunner().invoke(main, ["generate", "--depots", "3", "--weeks", "6", "--scenarios", "3", "--countries", c,
                                      "--name", f"only-{c}", "--out", str(folder)])
        assert r.exit_code == 0, r.output
        out[c] = folder
    return out


def test_health_is_open_and_everything_else_needs_a_token(server):
    assert httpx.get(f"{server.url}/api/v1/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/api/v1/health/ready").json()
    assert ready["ready"] is True and ready["checks"]["database"] == "ok"
    for path in ("/runs", "/datasets", "/schedules", "/decisions", "/tokens", "/audit"):
        r = httpx.get(f"{server.url}/api/v1{path}")
        assert r.status_code == 401 and r.json()["problems"][0].startswith("a valid token is needed")
    r = httpx.get(f"{server.url}/api/v1/runs", headers={"Authorization": "Bearer opt_not-a-token"})
    assert r.status_code == 401
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert "/api/v1/runs" in spec["paths"] and "/api/v1/runs/{run_id}/decisions" in spec["paths"]


def test_a_solve_through_the_service_writes_the_clis_files(server, demo_id, tmp_path):
    c = server.client()
    run = c.submit("solve", demo_id, options={"time_limit": 120})
    assert run["state"] == "queued"
    done = c.wait(run["id"], timeout=RUN_TIMEOUT)
    assert done["state"] == "finished" and done["exit_status"] == 0, done
    assert done["summary"]["status"]["summary"] == "optimal"
    cli_out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["solve", str(DEMO), "--out", str(cli_out), "--time-limit", "120", "--quiet"])
    assert r.exit_code == 0, r.output
    assert set(c.outputs(run["id"])) == {p.relative_to(cli_out).as_posix() for p in cli_out.rglob("*") if p.is_file()}
    for name in ("applicants.csv", "incentives.csv", "drivers.csv", "budgets.csv", "cost.csv", "orders/orders.csv"):
        assert c.output(run["id"], name) == (cli_out / name).read_bytes(), name
    rows = c.output(run["id"], "applicants.csv", format="json")["rows"]
    assert len(rows) == len(pd.read_csv(cli_out / "applicants.csv")) and set(rows[0]) >= {"depot", "channel", "applicants"}
    assert "wrote" in c.log(run["id"])


def test_what_if_changes_are_checked_at_submission_and_applied(server, demo_id):
    c = server.client()
    with pytest.raises(ServiceError) as err:
        c.submit("solve", demo_id, options={"time_limit": "soon", "engine": "magic", "out": "/etc"},
                 changes={"budgets.total": -5})
    lines = err.value.problems
    assert err.value.status == 422
    assert any(line.startswith("options.time_limit:") for line in lines)
    assert any(line.startswith("options.engine:") and "magic" in line for line in lines)
    assert any(line.startswith("options.out: expected one of") for line in lines)  # the service's, not the request's
    with pytest.raises(ServiceError) as err:
        c.submit("solve", demo_id, changes={"budgets.total": -5})
    assert err.value.status == 422 and any("budgets.total" in line for line in err.value.problems)
    base = c.wait(c.submit("solve", demo_id)["id"], timeout=RUN_TIMEOUT)
    tight = c.wait(c.submit("solve", demo_id, changes={"budgets.total": 3000})["id"], timeout=RUN_TIMEOUT)
    assert tight["state"] == "finished"
    assert tight["summary"]["kpis"]["first_stage_spend"] <= 3000 + 1e-6 < base["summary"]["kpis"]["first_stage_spend"]
    table = c.compare(base["id"], tight["id"])["rows"]
    spend = next(r for r in table if r["item"] == "first_stage_spend")
    assert spend[base["id"]] == pytest.approx(base["summary"]["kpis"]["first_stage_spend"], rel=1e-9)
    assert spend["difference"] == pytest.approx(spend[tight["id"]] - spend[base["id"]], abs=1e-6)


def test_an_idempotency_key_makes_a_retried_submission_one_run(server, demo_id):
    c = server.client()
    before = c.runs(limit=500)["total"]
    a = c.submit("solve", demo_id, idempotency_key="monday-plan-2027-01-04")
    b = c.submit("solve", demo_id, idempotency_key="monday-plan-2027-01-04")
    assert a["id"] == b["id"] and c.runs(limit=500)["total"] == before + 1
    c.wait(a["id"], timeout=RUN_TIMEOUT)


def test_a_bad_instance_is_refused_with_the_lines_of_optplan_validate(server, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(DEMO, bad)
    depots = pd.read_csv(bad / "depots.csv")
    depots.loc[1, "retention"] = 1.7
    depots.loc[2, "blocks_per_driver"] = -3
    depots.to_csv(bad / "depots.csv", index=False)
    r = CliRunner().invoke(main, ["validate", str(bad)])
    assert r.exit_code == 2
    expected = [ln[len("error: "):] for ln in r.output.splitlines() if ln.startswith("error: ")]
    assert len(expected) == 2
    with pytest.raises(ServiceError) as err:
        server.client().upload(bad, kind="instance")
    assert err.value.status == 422 and err.value.problems == expected


def test_identical_uploads_are_stored_once(server, demo_id, tmp_path):
    c = server.client()
    again = c.upload(DEMO, kind="instance")
    assert again["id"] == demo_id and again["stored"] == "already"
    tar = tmp_path / "demo.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(DEMO, arcname="demo")
    assert c.upload(tar, kind="instance")["id"] == demo_id  # the same folder as a tar: the same content


def _zip(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
@pytest.mark.any_database  # files and commands: the same on every database
def test_hostile_archives_are_refused_without_writing_outside_the_data_dir(server, tmp_path):
    target = server.data_dir.parent / "escaped.txt"
    demo = {p.name: p.read_bytes() for p in DEMO.iterdir()}
    cases = {
        "zip-slip.zip": _zip([("../escaped.txt", b"x", 0o100644)] + [(k, v, 0o100644) for k, v in demo.items()]),
        "absolute.zip": _zip([(str(target), b"x", 0o100644)]),
        "symlink.zip": _zip([("instance.yaml", b"/etc/passwd", 0o120777)]),
        "many.zip": _zip([(f"f{i}.csv", b"", 0o100644) for i in range(10_000)]),
        "bomb.zip": None,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:  # 2 GB of zeros declared, a few MB sent
        with z.open("zeros.csv", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(2048):
                f.write(block)
    cases["bomb.zip"] = buf.getvalue()
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as t:
        info = tarfile.TarInfo("dev")
        info.type = tarfile.CHRTYPE
        t.addfile(info)
    cases["device.tar"] = tar_buf.getvalue()
    headers = {"Authorization": f"Bearer {server.admin}"}
    for name, data in cases.items():
        r = httpx.post(f"{server.url}/api/v1/datasets", data={"kind": "instance"}, headers=headers,
                       files=[("files", (name, data, "application/octet-stream"))], timeout=120)
        assert r.status_code in (413, 422), (name, r.status_code, r.text)
        assert r.json()["problems"], name
    # a body that declares 10 GB is refused before any of it is read; one with no length at all too
    import socket

    for head in (b"Content-Length: 10737418240\r\n", b"Transfer-Encoding: chunked\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /api/v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + server.admin.encode()
                         + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n" + head + b"\r\n")
            status = sock.recv(200).split(b"\r\n")[0]
        assert status in (b"HTTP/1.1 413 Request Entity Too Large", b"HTTP/1.1 411 Length Required"), status
    assert not target.exists()
    assert not list((server.data_dir / "datasets").glob("*/escaped.txt"))
    assert list((server.data_dir / "tmp").iterdir()) == []  # every refused upload cleaned up


def test_a_country_scoped_token_sees_nothing_of_another_country(server, countries):
    admin = server.client()
    de = admin.upload(countries["DE"], kind="instance")
    fr = admin.upload(countries["FR"], kind="instance")
    assert de["countries"] == ["DE"] and fr["countries"] == ["FR"]
    fr_run = admin.submit("solve", fr["id"])
    de_token = admin.create_token("German planner", "approver", ["DE"])["token"]
    c = server.client(de_token)
    assert {d["id"] for d in c.datasets(limit=500)["items"]} == {de["id"]}
    de_run = c.submit("solve", de["id"])
    assert {r["id"] for r in c.runs(limit=500)["items"]} == {de_run["id"]}
    for call in (lambda: c.run(fr_run["id"]), lambda: c.submit("solve", fr["id"]), lambda: c.cancel(fr_run["id"]),
                 lambda: c.log(fr_run["id"]), lambda: c.outputs(fr_run["id"]),
                 lambda: c.decide(fr_run["id"], "approved", scope="country", scope_key="FR")):
        with pytest.raises(ServiceError) as err:
            call()
        assert err.value.status == 404, err.value  # not 403: the id says nothing
    with pytest.raises(ServiceError) as err:
        c.upload(countries["FR"], kind="instance")
    assert err.value.status == 403
    with pytest.raises(ServiceError) as err:  # a network-wide dataset is not a German one
        c.upload(DEMO, kind="instance")
    assert err.value.status == 403
    admin.wait(fr_run["id"], timeout=RUN_TIMEOUT)
    done = c.wait(de_run["id"], timeout=RUN_TIMEOUT)
    with pytest.raises(ServiceError) as err:
        c.compare(de_run["id"], fr_run["id"])
    assert err.value.status == 404
    decision = c.decide(done["id"], "approved", comment="ok for Germany", scope="country", scope_key="DE")
    assert decision["week"] == de["meta"]["start_date"]
    with pytest.raises(ServiceError) as err:
        server.client(de_token).in_force(decision["week"], scope="country", key="FR")
    assert err.value.status == 404
    # the approved plan's whole orders reach the recruiting team: Germany's depots only
    orders = c.orders_in_force(decision["week"], scope="country", key="DE")
    assert orders["run_id"] == done["id"] and orders["rows"]
    assert {r["country"] for r in orders["rows"]} == {"DE"}
    assert all(float(r["applicants"]).is_integer() and r["applicants"] > 0 for r in orders["rows"])
    with pytest.raises(ServiceError) as err:
        c.orders_in_force(decision["week"], scope="country", key="FR")
    assert err.value.status == 404


def test_roles(server, demo_id):
    admin = server.client()
    viewer = server.client(admin.create_token("viewer", "viewer")["token"])
    planner = server.client(admin.create_token("planner", "planner")["token"])
    assert viewer.runs()["total"] >= 0
    with pytest.raises(ServiceError) as err:
        viewer.submit("solve", demo_id)
    assert err.value.status == 403 and "planner role" in err.value.problems[0]
    run = planner.wait(planner.submit("solve", demo_id)["id"], timeout=RUN_TIMEOUT)
    with pytest.raises(ServiceError) as err:
        planner.decide(run["id"], "approved")
    assert err.value.status == 403
    with pytest.raises(ServiceError) as err:
        planner.create_token("me too", "admin")
    assert err.value.status == 403


def test_approving_puts_a_plan_in_force_and_supersedes_the_last(server, demo_id):
    c = server.client()
    first = c.wait(c.submit("solve", demo_id)["id"], timeout=RUN_TIMEOUT)
    second = c.wait(c.submit("solve", demo_id, changes={"budgets.total": 4000})["id"], timeout=RUN_TIMEOUT)
    week = "2027-01-04"
    d1 = c.decide(first["id"], "approved", comment="first cut", week=week)
    assert c.in_force(week)["run"]["id"] == first["id"]
    c.decide(second["id"], "rejected", comment="too tight", week=week)
    assert c.in_force(week)["run"]["id"] == first["id"]  # a rejection changes nothing in force
    d3 = c.decide(second["id"], "approved", comment="finance agreed", week=week)
    assert c.in_force(week)["decision"]["id"] == d3["id"]
    # the orders in force are the approved run's orders/orders.csv (rows with applicants), per channel too
    written = pd.read_csv(io.StringIO(c.output(second["id"], "orders/orders.csv").decode()))
    written = written[written["applicants"] > 0]
    orders = c.orders_in_force(week)
    assert orders["run_id"] == second["id"] and len(orders["rows"]) == len(written)
    assert sum(r["applicants"] for r in orders["rows"]) == int(written["applicants"].sum())
    referral = c.orders_in_force(week, channel="referral")["rows"]
    assert referral and {r["channel"] for r in referral} == {"referral"}
    history = c._json("GET", "/decisions", params={"week": week, "limit": 500})["items"]
    old = next(d for d in history if d["id"] == d1["id"])
    assert old["superseded_by"] == d3["id"]  # history is kept
    actions = [a["action"] for a in c._json("GET", "/audit", params={"limit": 500})["items"]]
    assert "plan.approve" in actions and "plan.reject" in actions and "run.submit" in actions
    with pytest.raises(ServiceError) as err:
        c.decide(first["id"], "maybe")
    assert err.value.status == 422


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_events_stream_a_runs_states_until_it_ends(server, demo_id):
    c = server.client()
    run = c.submit("solve", demo_id)
    states = []
    with httpx.stream("GET", f"{server.url}/api/v1/runs/{run['id']}/events", timeout=RUN_TIMEOUT,
                      headers={"Authorization": f"Bearer {server.admin}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                states.append(json.loads(line[5:])["state"])
    assert states[-1] == "finished" and "running" in states or states == ["finished"]
    assert states[-1] == "finished"


def test_cancel_stops_a_running_solve(server, demo_id):
    c = server.client()
    run = c.submit("solve", demo_id, options={"engine": "hold", "time_limit": 600})
    marker = wait_for(lambda: server.started(run["id"]), RUN_TIMEOUT, "the hold engine to start", server)
    child = int(marker[0].name.rsplit("-", 1)[1])
    c.cancel(run["id"])
    done = c.wait(run["id"], timeout=RUN_TIMEOUT)
    assert done["state"] == "cancelled" and done["attempts"] == 1
    wait_for(lambda: not alive(child), 30, "the solve's process to end", pids=[child])
    with pytest.raises(ServiceError) as err:
        c.cancel(run["id"])
    assert err.value.status == 409


def test_the_zip_of_a_folder_is_deterministic():
    assert zip_folder(DEMO) == zip_folder(DEMO)


#: Mutated instances uploaded per mutation class (cell, header, row, bytes, manifest).
MUTATIONS_PER_CLASS = 8


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
@pytest.mark.any_database  # files and commands: the same on every database
def test_mutated_instances_are_refused_by_upload_with_the_lines_of_validate(server, tmp_path):
    """The fuzzed input classes the CLI refuses (tests/mutations.py) are refused by upload with
    the same lines; what the CLI accepts, upload accepts."""
    import random

    from mutations import MUTATIONS, folder_files, mutate, write

    base = folder_files(DEMO)
    c = server.client()
    refused = 0
    for kind in sorted(MUTATIONS):
        rng = random.Random(f"service-{kind}")
        for i in range(MUTATIONS_PER_CLASS):
            _, files = mutate(rng, base, kind)
            folder = tmp_path / f"{kind}-{i}"
            write(folder, files)
            r = CliRunner().invoke(main, ["validate", str(folder)])
            lines = [ln[len("error: "):].replace(f"{folder}/", "") for ln in r.output.splitlines()
                     if ln.startswith("error: ")]
            try:
                c.upload(folder, kind="instance")
                assert r.exit_code == 0, (kind, i, r.output)
            except ServiceError as exc:
                assert r.exit_code == 2 and exc.status == 422, (kind, i, r.output, exc.problems)
                assert exc.problems == lines, (kind, i)
                refused += 1
    assert refused >= MUTATIONS_PER_CLASS  # most mutations break the instance


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
@pytest.mark.any_database  # files and commands: the same on every database
def test_the_runs_commands_talk_to_the_service(server, demo_id):
    env = {"OPTPLAN_URL": server.url, "OPTPLAN_TOKEN": server.admin}
    r = CliRunner().invoke(main, ["runs", "submit", "solve", demo_id, "--option", "time_limit=60", "--wait"], env=env)
    assert r.exit_code == 0, r.output
    run_id = r.output.splitlines()[0]
    assert json.loads(r.output[len(run_id) + 1:])["state"] == "finished"
    r = CliRunner().invoke(main, ["runs", "list", "--state", "finished"], env=env)
    assert r.exit_code == 0 and run_id in r.output
    r = CliRunner().invoke(main, ["runs", "approve", run_id, "--comment", "fine", "--week", "2027-01-04"], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["verdict"] == "approved"
    r = CliRunner().invoke(main, ["runs", "submit", "solve", demo_id, "--option", "time_limit=-3"], env=env)
    assert r.exit_code == 5 and "error: options.time_limit:" in r.output
    r = CliRunner().invoke(main, ["runs", "show", run_id], env={**env, "OPTPLAN_TOKEN": "opt_wrong"})
    assert r.exit_code == 5 and "a valid token is needed" in r.output and "Traceback" not in r.output


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
@pytest.mark.any_database  # files and commands: the same on every database
def test_a_forecast_run_on_a_history_dataset(server, demo_id, tmp_path):
    import math

    weeks = pd.date_range("2023-01-02", periods=120, freq="7D")
    rows = [(d, w.date(), 100 + 10 * math.sin(i / 4) + 5 * (d == "D2")) for d in ("D1", "D2") for i, w in enumerate(weeks)]
    (tmp_path / "h").mkdir()
    pd.DataFrame(rows, columns=["depot", "week_start", "blocks"]).to_csv(tmp_path / "h" / "history.csv", index=False)
    c = server.client()
    ds = c.upload(tmp_path / "h", kind="history")
    run = c.wait(c.submit("forecast", ds["id"], options={"model": "seasonal_naive", "horizon": 8, "scenarios": 5,
                                                         "no_plots": True})["id"], timeout=RUN_TIMEOUT)
    assert run["state"] == "finished", run["error"]
    assert "quantiles.csv" in run["outputs"]
    rows = c.output(run["id"], "quantiles.csv", format="json")["rows"]
    assert len(rows) == 2 * 8  # two depots, eight weeks
    with pytest.raises(ServiceError) as err:  # a forecast reads a history, not an instance
        c.submit("forecast", demo_id)
    assert err.value.status == 422


def test_a_monitor_run_watches_a_datasets_demand_and_keeps_its_alerts(server, tmp_path):
    """Issue #29 part 3 in the service: a monitor run on an instance dataset that holds the
    demand seen (options.demand names the file in the dataset); its alerts are the run's
    summary, its tables the run's outputs, as `optplan monitor` writes them."""
    folder = tmp_path / "watched"
    shutil.copytree(DEMO, folder)
    seen = pd.DataFrame([(d, w, 500.0 if d == "D004" else 150.0) for d in ("D001", "D002", "D003", "D004", "D005")
                         for w in (1, 2, 3)], columns=["depot", "week", "blocks"])
    (folder / "seen").mkdir()
    seen.to_csv(folder / "seen" / "demand.csv", index=False)
    c = server.client()
    ds = c.upload(folder, kind="instance")
    run = c.wait(c.submit("monitor", ds["id"], options={"demand": "seen/demand.csv"})["id"], timeout=RUN_TIMEOUT)
    assert run["state"] == "finished", run["error"]
    assert {"monitor.json", "alerts.csv", "by_depot.csv", "demand.csv"} <= set(run["outputs"])
    cli = CliRunner().invoke(main, ["monitor", str(folder), "--demand", str(folder / "seen" / "demand.csv"),
                                    "--out", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    assert run["summary"] == json.loads((tmp_path / "cli" / "monitor.json").read_text())
    assert "D004" in {a["where"] for a in run["summary"]["alerts"] if a["kind"] == "depot"}
    with pytest.raises(ServiceError) as err:  # a path outside the dataset, or the server's own folders
        c.submit("monitor", ds["id"], options={"demand": "../../etc/passwd"})
    assert err.value.status == 422
    with pytest.raises(ServiceError) as err:
        c.submit("monitor", ds["id"], options={"demand": "seen/demand.csv", "plan": "/srv"})
    assert err.value.status == 422


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_a_schedule_submits_a_run_that_awaits_approval(server, demo_id):
    from datetime import datetime

    import sqlalchemy as sa

    from optplan.service.db import sqlite_url
    from optplan.service.models import Schedule

    c = server.client()
    with pytest.raises(ServiceError) as err:
        c.schedule("weekly", "every monday", "solve", demo_id)
    assert err.value.status == 422 and err.value.problems[0].startswith("cron: expected five cron fields")
    sch = c.schedule("weekly plan", "0 6 * * MON", "solve", demo_id, timezone="Europe/Berlin",
                     options={"time_limit": 60})
    engine = sa.create_engine(server.db_url or sqlite_url(server.data_dir))
    with engine.begin() as conn:  # its slot is due now (instead of waiting for Monday 06:00)
        conn.execute(sa.update(Schedule).where(Schedule.id == sch["id"]).values(next_run_at=datetime(2000, 1, 3, 5)))
    engine.dispose()
    run_id = wait_for(lambda: next((r["id"] for r in c.runs(limit=500)["items"] if r["schedule_id"] == sch["id"]),
                                   None), RUN_TIMEOUT, "the scheduled run", server)  # serve logs the submission
    run = c.wait(run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "finished" and run["options"] == {"time_limit": 60}
    assert c._json("GET", "/decisions", params={"run_id": run_id})["total"] == 0  # awaiting approval
    listed = next(s for s in c._json("GET", "/schedules")["items"] if s["id"] == sch["id"])
    assert listed["last_run_id"] == run_id and listed["next_run_at"] > "2026"
    # changed: checked as at creation; a new cron moves the next slot; another country sees nothing
    with pytest.raises(ServiceError) as err:
        c._json("PATCH", f"/schedules/{sch['id']}", json={"cron": "0 25 * * *", "options": {"time_limit": -1}})
    assert err.value.status == 422 and err.value.problems[0].startswith("cron: expected five cron fields")
    moved = c._json("PATCH", f"/schedules/{sch['id']}", json={"cron": "0 6 1 * *", "name": "monthly plan"})
    assert moved["name"] == "monthly plan" and moved["timezone"] == "Europe/Berlin"  # what was not given stays
    assert moved["next_run_at"][8:10] == "01" and moved["next_run_at"] != listed["next_run_at"]
    fr = server.client(c.create_token("Fay (France)", "planner", ["FR"])["token"])
    with pytest.raises(ServiceError) as err:
        fr._json("PATCH", f"/schedules/{sch['id']}", json={"enabled": False})
    assert err.value.status == 404


def test_the_workspace_needs_a_session_and_its_forms_a_csrf_token(server, demo_id):
    """Without a browser: /ui sends the unsigned to sign-in, a bad token is refused, a session
    cookie is HttpOnly and SameSite=Strict, and a form without the session's CSRF token changes
    nothing (the browser tests are in test_workspace.py)."""
    import re

    with httpx.Client(base_url=server.url, follow_redirects=False) as h:
        r = h.get("/ui/runs")
        assert r.status_code == 303 and r.headers["location"] == "/ui/sign-in?next=/ui/runs"
        assert h.post("/ui/sign-in", data={"token": "opt_wrong", "next": "/ui/runs"}).status_code == 401
        r = h.post("/ui/sign-in", data={"token": server.admin, "next": "//evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/runs"  # no open redirect
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        page = h.get("/ui/datasets").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert h.post(f"/ui/datasets/{demo_id}/solve", data={"csrf": "forged"}).status_code == 403
        before = server.client().runs(limit=500)["total"]
        r = h.post(f"/ui/datasets/{demo_id}/solve", data={"csrf": csrf})
        assert r.status_code == 303 and server.client().runs(limit=500)["total"] == before + 1
        server.client().wait(r.headers["location"].rsplit("/", 1)[1], timeout=RUN_TIMEOUT)
        assert h.get("/ui/runs/0123456789abcdef0123456789abcdef").status_code == 404
