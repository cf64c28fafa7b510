"""The workspace in a real browser (issue #28): Debian's Chromium driven by Playwright against a
real ``optplan serve``. Each step is checked by what the page shows. Screenshots of each page
at 1280 and 390 px wide are written to out/screenshots/ for review."""

from __future__ import annotations

import os
import re
import shutil

import pandas as pd
import pytest
from conftest import REPO
from service_support import RUN_TIMEOUT, Server

from optplan.client import ServiceError
from optplan.service.web import whole_numbers

pytestmark = pytest.mark.slow  # a real browser: CI's second step (.ci/run installs Chromium)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DEMO = REPO / "instances" / "demo"
SHOTS = REPO / "out" / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server on SQLite: the pages do not depend on the database (test_service.py runs the
    operations against PostgreSQL too)."""
    s = Server(tmp_path_factory.mktemp("ws") / "data").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("OPTPLAN_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (OPTPLAN_REQUIRE_BROWSER is set) but was not found")
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _page(browser, width=1280):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    return ctx, ctx.new_page()


def _sign_in(page, server, token):
    page.goto(f"{server.url}/ui/runs")
    assert "/ui/sign-in" in page.url
    page.get_by_label("Access token").fill(token)
    page.get_by_label("Access token").press("Enter")  # the keyboard alone submits
    page.wait_for_url("**/ui/runs")


def _shoot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _no_horizontal_overflow(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), page.url


#: Words a page may show with an underscore: the planner's own ids (the demo's channels).
DATA_IDS = {"job_board", "referral", "agency"}


#: Solver and modelling words a planner should not meet on a page (the log, folded away, may hold them).
JARGON = re.compile(r"\b(HiGHS|GLOP|CVaR|LP|MIP|dual|duals|simplex|presolve|basis|shadow price|"
                    r"reduced cost|slack|infeasible|objective)\b")


def _words_are_plain(page):
    """In what the page shows: no snake_case (but the data's own ids), no NaN or infinity, no
    solver jargon, and no number of 1,000 or more without thousands separators (dates, times and
    ids aside)."""
    text = page.inner_text("body")
    snake = set(re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b", text)) - DATA_IDS
    assert not snake, (page.url, sorted(snake))
    assert not re.search(r"\b(nan|NaN|inf|Infinity)\b", text), page.url
    assert not JARGON.search(text), (page.url, JARGON.findall(text))
    bare = re.findall(r"(?<![\w.:,-])\d{4,}(?:\.\d+)?(?![\w:-])", text)
    assert not bare, (page.url, bare[:5])


def _every_field_has_a_label(page):
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.name || e.id)""")
    assert unlabelled == [], (page.url, unlabelled)


def _wait_finished(page, timeout_s=RUN_TIMEOUT):
    page.wait_for_selector("#run-state.finished", timeout=timeout_s * 1000)


def test_a_planner_signs_in_uploads_runs_what_ifs_compares_and_approves(server, browser):
    ctx, page = _page(browser)
    try:
        _sign_in(page, server, server.admin)
        _shoot(page, "runs-1280")
        page.goto(f"{server.url}/ui/datasets")
        page.get_by_label("Files of an instance folder (or a zip of it)").set_input_files(
            [str(p) for p in sorted(DEMO.iterdir())])
        page.get_by_label("Name").fill("demo")
        page.get_by_role("button", name="Upload").click()
        page.wait_for_url("**/ui/datasets?uploaded=*")
        assert "demo: 5 depots, 3 channels, 12 weeks" in page.text_content("#datasets")
        _shoot(page, "data-1280")
        page.get_by_role("button", name="Plan demo").first.click()
        page.wait_for_url("**/ui/runs/*")
        _wait_finished(page)
        run_url = page.url.split("?")[0]
        run_id = run_url.rsplit("/", 1)[1]
        # the recommendation's totals are the plan file's, in whole applicants per depot and channel
        out = next((server.data_dir / "runs" / run_id).glob("attempt-*/out"))
        apps = pd.read_csv(out / "applicants.csv", dtype={"depot": str})
        want = sum(int(whole_numbers(g.sort_values("week")["applicants"].to_numpy()).sum())
                   for _, g in apps.groupby(["depot", "channel"]))
        assert page.text_content("#recommendation-total").replace(",", "") == str(want)
        inc = pd.read_csv(out / "incentives.csv", dtype={"depot": str})
        want_inc = sum(int(whole_numbers(g.groupby("week")["spend"].sum().to_numpy()).sum())
                       for _, g in inc.groupby("depot"))
        assert page.text_content("#incentives-total").replace(",", "") == str(want_inc)
        page.get_by_role("link", name="Depot", exact=True).click()  # sort by depot, A to Z
        page.wait_for_url("**sort=depot**")
        depots = page.locator("#recommendation tbody tr td:first-child").all_text_contents()
        assert depots == sorted(depots) and page.text_content("#recommendation-total").replace(",", "") == str(want)
        assert "Expected cost, total" in page.text_content("dl.figures")
        _no_horizontal_overflow(page)
        _shoot(page, "run-1280")
        # a what-if that halves the total budget: a child run, with its differences from the parent
        spend = float(pd.read_csv(out / "budgets.csv").query("scope == 'total'")["cap"].iloc[0]) \
            if "total" in set(pd.read_csv(out / "budgets.csv")["scope"]) else 2 * apps["cost"].sum()
        page.get_by_label("Total budget (USD)").fill(f"{spend / 2:.0f}")
        page.get_by_role("button", name="Plan this what-if").click()
        page.wait_for_url("**/ui/runs/*")
        _wait_finished(page)
        child_id = page.url.split("?")[0].rsplit("/", 1)[1]
        assert child_id != run_id and f"a what-if of run {run_id[:8]}" in page.text_content("main")
        assert "Differences from its parent" in page.text_content("main")
        # compare the two
        page.goto(f"{server.url}/ui/compare?a={run_id}&b={child_id}")
        rows = page.locator("#comparison tbody tr")
        assert rows.count() > 5
        _shoot(page, "compare-1280")
        # approve the parent: the decision and the in-force mark show, and the audit trail has it
        page.goto(run_url)
        page.get_by_label("Comment").fill("agreed with finance")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(run_url)
        assert "Approved for the network" in page.text_content("main") and "agreed with finance" in page.text_content("main")
        page.goto(f"{server.url}/ui/runs")
        assert "in force" in page.text_content("#runs")
        audit = server.client()._json("GET", "/audit", params={"limit": 500})["items"]
        assert any(a["action"] == "plan.approve" and a["object_id"] == run_id for a in audit)
        page.goto(run_url)  # the run's own trail says who did what, in words
        trail = page.text_content("#trail")
        assert "submitted the run" in trail and "approved the plan" in trail and "agreed with finance" in trail
        page.goto(f"{server.url}/ui/decisions")  # the plan in force, and the history
        assert run_id[:8] in page.text_content("#in-force") and "agreed with finance" in page.text_content("#history")
        _shoot(page, "decisions-1280")
        # the sensitivity report's sections on demand, on the plan's page
        page.goto(run_url)
        page.get_by_role("button", name="Make the sensitivity report").click()
        page.wait_for_selector("#tornado", timeout=RUN_TIMEOUT * 1000)
        tornado = page.text_content("#tornado")
        assert "Demand 10% higher" in tornado and "Demand 10% lower" in tornado
        assert "Value of planning for uncertainty" in page.text_content("section[aria-labelledby=h-sensitivity]")
        for width in (1280, 390):  # every page fits the width (wide tables scroll in their own box)
            small_ctx, small = _page(browser, width)
            small.context.add_cookies(ctx.cookies())
            for path in ("/ui/runs", run_url.replace(server.url, ""), "/ui/datasets",
                         f"/ui/compare?a={run_id}&b={child_id}", f"/ui/runs/{child_id}", "/ui/decisions",
                         "/ui/schedules"):
                small.goto(server.url + path)
                _no_horizontal_overflow(small)
                _words_are_plain(small)
                _every_field_has_a_label(small)
                name = {run_id: "run", child_id: "what-if"}.get(path.rsplit("/", 1)[-1], path.strip("/").split("?")[0]
                                                                    .replace("ui/", "").replace("/", "-"))
                _shoot(small, f"{name}-{width}")
            small_ctx.close()
    finally:
        ctx.close()


def test_a_viewer_sees_no_approve_button_and_a_scoped_user_no_other_country(server, browser, tmp_path):
    from click.testing import CliRunner

    from optplan.cli import main

    admin = server.client()
    ds = admin.upload(DEMO, kind="instance")["id"]
    run = admin.wait(admin.submit("solve", ds)["id"], timeout=RUN_TIMEOUT)
    viewer = admin.create_token("Vera Viewer", "viewer")["token"]
    ctx, page = _page(browser)
    try:
        _sign_in(page, server, viewer)
        page.goto(f"{server.url}/ui/runs/{run['id']}")
        _wait_finished(page)
        assert page.get_by_role("button", name="Approve").count() == 0
        assert page.get_by_role("button", name="Plan this what-if").count() == 0
        # nor through the API, nor by posting the page's form with the viewer's own session
        with pytest.raises(ServiceError) as err:
            server.client(viewer).decide(run["id"], "approved")
        assert err.value.status == 403
        csrf = page.evaluate("document.querySelector('input[name=csrf]').value")
        response = page.request.post(f"{server.url}/ui/runs/{run['id']}/decide",
                                     form={"csrf": csrf, "verdict": "approved", "for": "network:"})
        assert response.status == 403
        assert admin._json("GET", "/decisions", params={"run_id": run["id"]})["total"] == 0
    finally:
        ctx.close()
    folder = tmp_path / "fr"
    r = CliRunner().invoke(main, ["generate", "--depots", "2", "--weeks", "4", "--scenarios", "2", "--countries", "FR",
                                  "--out", str(folder)])
    assert r.exit_code == 0, r.output
    fr = admin.upload(folder, kind="instance")["id"]
    fr_run = admin.submit("solve", fr)["id"]
    de_token = admin.create_token("Dora (Germany)", "approver", ["DE"])["token"]
    ctx, page = _page(browser)
    try:
        _sign_in(page, server, de_token)
        assert fr_run[:8] not in page.text_content("#runs") and run["id"][:8] not in page.text_content("#runs")
        response = page.goto(f"{server.url}/ui/runs/{fr_run}")
        assert response.status == 404 and "Not found" in page.text_content("h1")
    finally:
        ctx.close()
        admin.wait(fr_run, timeout=RUN_TIMEOUT)


def test_schedules_are_added_changed_and_refused_in_words_with_the_keyboard_alone(server, browser):
    admin = server.client()
    admin.upload(DEMO, kind="instance")
    ctx, page = _page(browser)
    try:
        _sign_in(page, server, server.admin)
        page.goto(f"{server.url}/ui/schedules")
        page.get_by_label("Name", exact=True).last.fill("monday plan")
        page.locator("#new-cron").fill("every monday")
        page.locator("#new-cron").press("Enter")  # enter submits
        assert "cron: expected five cron fields" in page.text_content("[role=alert]")
        page.locator("#new-name").fill("monday plan")
        page.locator("#new-cron").fill("0 6 * * MON")
        page.locator("#new-tz").fill("Europe/Berlin")
        page.locator("#new-tz").press("Enter")
        page.wait_for_url("**/ui/schedules")
        row = page.locator("#schedules tbody tr").filter(has_text="monday plan")
        assert "0 6 * * MON" in row.text_content() and "CET" in row.text_content()  # next run in its own zone
        page.locator("details.edit summary").filter(has_text="monday plan").click()
        page.locator("#s1-cron").fill("30 5 * * TUE")
        page.locator("#s1-cron").press("Enter")
        page.wait_for_url("**/ui/schedules")
        assert "30 5 * * TUE" in page.locator("#schedules tbody tr").filter(has_text="monday plan").text_content()
        sch = next(x for x in admin._json("GET", "/schedules")["items"] if x["name"] == "monday plan")
        assert sch["cron"] == "30 5 * * TUE" and sch["timezone"] == "Europe/Berlin" and sch["enabled"]
        _shoot(page, "schedules-1280")
        # the tab order follows the page: header links, then the new schedule's fields in order
        page.locator("#new-name").focus()
        order = []
        for _ in range(5):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        assert order == ["new-dataset", "new-cron", "new-tz", "new-limit", "Add the schedule"], order
    finally:
        ctx.close()
