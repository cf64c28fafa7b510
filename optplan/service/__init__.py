"""optplan serve: the planning service a team runs every week (issue #27).

    models     the tables (SQLAlchemy 2): datasets, runs, decisions, schedules, tokens,
               workers, audit log
    db         engine, sessions and migrations (Alembic, optplan/service/migrations/)
    storage    the data dir: content-addressed datasets, safe archive extraction, run outputs
    auth       tokens (stored hashed), roles and country scopes
    jobs       what a run does (solve, report, pipeline, ...), in a worker's child process
    worker     claims runs from the database queue with a lease and a heartbeat
    scheduler  cron schedules that submit runs (the autonomous weekly loop)
    app        the HTTP API under /api/v1 (FastAPI; OpenAPI at /api/v1/openapi.json)
    supervisor ``optplan serve``: migrations, the HTTP server, the workers, the scheduler

See docs/service.md.
"""
