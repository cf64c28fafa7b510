"""``optplan serve`` and the commands that talk to a running service (``datasets``, ``runs``)
or to its database directly (``tokens create``). The service's address and token come from
``--url``/``--token`` or $OPTPLAN_URL/$OPTPLAN_TOKEN. docs/service.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from optplan.cli.common import EXIT_BAD_INPUT, EXIT_UNEXPECTED

#: Exit status when the service answered with an error (the lines say which).
EXIT_SERVICE = 5
ROLES = ("viewer", "planner", "approver", "admin")

url_option = click.option("--url", envvar="OPTPLAN_URL", default="http://127.0.0.1:8765", show_default=True,
                          help="The service's address ($OPTPLAN_URL).")
token_option = click.option("--token", envvar="OPTPLAN_TOKEN", default=None, help="An API token ($OPTPLAN_TOKEN).")


def _client(url: str, token: str | None):
    from optplan.client import Client

    return Client(url, token)


def _call(fn):
    """Run a client call; a service error is its lines on stderr and exit 5, no traceback."""
    import httpx

    from optplan.client import ServiceError

    try:
        return fn()
    except ServiceError as exc:
        for p in exc.problems:
            click.secho(f"error: {p}", fg="red", err=True)
        raise SystemExit(EXIT_SERVICE) from None
    except httpx.HTTPError as exc:
        click.secho(f"error: the service cannot be reached: {exc}", fg="red", err=True)
        raise SystemExit(EXIT_SERVICE) from None


def _pairs(items: tuple[str, ...], what: str) -> dict:
    import yaml

    out = {}
    for text in items:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            click.secho(f"error: {what}: expected NAME=VALUE, found {text!r}", fg="red", err=True)
            raise SystemExit(EXIT_BAD_INPUT)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


@click.command("serve")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("optplan-data"), show_default=True,
              help="Where datasets, run outputs and the default SQLite database live.")
@click.option("--db", "db_url", default=None,
              help="A SQLAlchemy URL (default: sqlite:///<data-dir>/service.sqlite), e.g. postgresql+psycopg://u@host/db.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Worker processes that run the queue (runs never execute in the web process).")
@click.option("--scheduler", default=None, help="A Dask scheduler address: runs that can use one (--backend) run there.")
@click.option("--lease", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="Seconds a worker holds a run without a heartbeat; a run whose worker is lost is retried after it.")
@click.option("--max-upload-mb", type=click.IntRange(1, 100_000), default=512, show_default=True,
              help="Largest upload (unpacked), MB.")
@click.option("--schedule-tick", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds between two looks for due schedules.")
def serve(data_dir, db_url, host, port, workers, scheduler, lease, max_upload_mb, schedule_tick):
    """Run the planning service: HTTP API under /api/v1, a database queue, workers, schedules."""
    from optplan.service.supervisor import serve as run_service

    try:
        run_service(data_dir, db_url, host, port, workers, scheduler, lease, max_upload_mb, schedule_tick,
                    say=lambda m: click.echo(m, err=True))
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        click.secho(f"error: the service could not start: {type(exc).__name__}: {exc}", fg="red", err=True)
        raise SystemExit(EXIT_UNEXPECTED) from None


@click.group("tokens")
def tokens():
    """API tokens, written to the service's database directly (for the first admin or a lost one)."""


@tokens.command("create")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("optplan-data"), show_default=True)
@click.option("--db", "db_url", default=None, help="The database URL (default: the data dir's SQLite file).")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--country", "countries", multiple=True, help="Scope to a country id (repeatable; none: every country).")
def tokens_create(data_dir, db_url, name, role, countries):
    """Create a token and print it (once: only its hash is stored)."""
    from optplan.service import auth
    from optplan.service.db import Database, migrate, sqlite_url

    url = db_url or sqlite_url(data_dir)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    migrate(url)
    with Database(url).session() as s:
        _, secret = auth.create_token(s, name, role, countries, created_by="cli")
    click.echo(secret)


@click.group("datasets")
def datasets():
    """Datasets of a running service."""


@datasets.command("upload")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--kind", type=click.Choice(("instance", "history", "logs", "pipeline")), required=True)
@click.option("--name", default="")
@url_option
@token_option
def datasets_upload(path, kind, name, url, token):
    """Upload a folder, an archive or a file; prints the dataset as JSON."""
    with _client(url, token) as c:
        click.echo(json.dumps(_call(lambda: c.upload(path, kind, name)), indent=1))


@click.group("runs")
def runs():
    """Runs of a running service: submit, list, show, wait, approve, reject, cancel."""


@runs.command("submit")
@click.argument("kind", type=click.Choice(("solve", "report", "simulate", "replan", "pipeline", "forecast", "backtest")))
@click.argument("dataset_id")
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE", help="A command option, e.g. time_limit=60.")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help="A what-if change, as for optplan solve --set.")
@click.option("--idempotency-key", default=None, help="The same key makes a retried submission one run.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the run to end (exit 0 finished, 5 otherwise).")
@url_option
@token_option
def runs_submit(kind, dataset_id, options, sets, idempotency_key, wait_, url, token):
    """Submit a run; prints its id (and, with --wait, the run when it ends)."""
    with _client(url, token) as c:
        run = _call(lambda: c.submit(kind, dataset_id, _pairs(options, "--option"), _pairs(sets, "--set"),
                                     idempotency_key=idempotency_key))
        click.echo(run["id"])
        if wait_:
            run = _call(lambda: c.wait(run["id"]))
            click.echo(json.dumps(run, indent=1))
            if run["state"] != "finished":
                raise SystemExit(EXIT_SERVICE)


@runs.command("list")
@click.option("--state", default=None)
@click.option("--kind", default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@url_option
@token_option
def runs_list(state, kind, limit, url, token):
    """The latest runs, one line each."""
    with _client(url, token) as c:
        page = _call(lambda: c.runs(state=state, kind=kind, limit=limit))
    for r in page["items"]:
        click.echo(f"{r['id']}  {r['kind']:<9} {r['state']:<10} {r['created_at']}  {r['progress'][:60]}")
    click.echo(f"{len(page['items'])} of {page['total']} run(s)", err=True)


@runs.command("show")
@click.argument("run_id")
@url_option
@token_option
def runs_show(run_id, url, token):
    """A run as JSON."""
    with _client(url, token) as c:
        click.echo(json.dumps(_call(lambda: c.run(run_id)), indent=1))


@runs.command("wait")
@click.argument("run_id")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Seconds (default: no limit).")
@url_option
@token_option
def runs_wait(run_id, timeout, url, token):
    """Wait until a run ends; exit 0 when it finished, 5 otherwise."""
    with _client(url, token) as c:
        run = _call(lambda: c.wait(run_id, timeout=timeout))
    click.echo(json.dumps(run, indent=1))
    if run["state"] != "finished":
        raise SystemExit(EXIT_SERVICE)


def _decide(verdict):
    @click.argument("run_id")
    @click.option("--comment", default="")
    @click.option("--scope", type=click.Choice(("network", "country", "region")), default="network", show_default=True)
    @click.option("--key", "scope_key", default="", help="The country or region id of the scope.")
    @click.option("--week", default=None, help="The planning week's first day (default: the instance's start).")
    @url_option
    @token_option
    def command(run_id, comment, scope, scope_key, week, url, token):
        with _client(url, token) as c:
            click.echo(json.dumps(_call(lambda: c.decide(run_id, verdict, comment, scope, scope_key, week)), indent=1))

    command.__doc__ = f"Record that a run's plan is {verdict} (the approver role)."
    return command


runs.command("approve")(_decide("approved"))
runs.command("reject")(_decide("rejected"))


@runs.command("cancel")
@click.argument("run_id")
@url_option
@token_option
def runs_cancel(run_id, url, token):
    """Cancel a queued or running run."""
    with _client(url, token) as c:
        click.echo(json.dumps(_call(lambda: c.cancel(run_id)), indent=1))
