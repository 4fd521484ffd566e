"""Processes starting together on a fresh database: one migrates, the others find it done.

The processes start the app as ``flask run`` and ``flask wechat-sim`` do on a
fresh machine (AUTO_MIGRATE, dev secrets generated into a fresh instance
folder), or run ``flask db upgrade``. On PostgreSQL (when DATABASE_URL names
one) they share a scratch database of their own beside it, created and dropped
here. The dev secrets are also raced on their own, where a race shows far more
often.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from app import MIGRATIONS
from config.dev_secrets import GENERATORS
from config.settings import BASE
from tests.fixtures.database import REAL_DATABASE_URL, scratch_postgres

ROOT = Path(__file__).resolve().parents[2]
SECRETS = sorted(GENERATORS)
# Each process imports everything, says it is ready and waits for the word, so that all
# of them reach the migrations and the dev secrets within a few milliseconds. "app" starts
# the app (AUTO_MIGRATE, as `flask run` and `flask wechat-sim` do) and prints digests of
# the secrets it uses; "db-upgrade" runs `flask db upgrade` with AUTO_MIGRATE off, as in
# production.
START = f"""
import hashlib, json, os, sys, time
from pathlib import Path
from flask.cli import main
from app import create_app
Path(sys.argv[1], f"ready-{{os.getpid()}}").touch()
while not Path(sys.argv[1], "go").exists():
    time.sleep(0.002)
if sys.argv[2] == "db-upgrade":
    sys.argv[1:] = ["--app", "app", "db", "upgrade"]
    main()
config = create_app().config
print(json.dumps({{key: hashlib.sha256(config[key].encode()).hexdigest()
                  for key in {SECRETS!r}}}))
"""
ROLES = ["app", "app", "db-upgrade"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """'' for the embedded SQLite file under the instance folder, or a scratch PostgreSQL."""
    if request.param == "sqlite":
        yield ""
        return
    if not REAL_DATABASE_URL.startswith("postgresql"):
        pytest.skip("DATABASE_URL names no PostgreSQL")
    with scratch_postgres("mig") as url:
        yield url


def start_together(workdir: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Run one process per role, released at once; their outcomes, in ROLES's order."""
    processes = [
        subprocess.Popen([sys.executable, "-c", START, str(workdir), role], cwd=ROOT,
                         env={**env, "AUTO_MIGRATE": str(role == "app").lower()},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for role in ROLES]
    deadline = time.monotonic() + 60
    while (len(list(workdir.glob("ready-*"))) < len(ROLES) and time.monotonic() < deadline
           and all(process.poll() is None for process in processes)):
        time.sleep(0.01)
    (workdir / "go").touch()
    finished = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        finished.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return finished


def test_processes_starting_together_migrate_once_and_share_one_set_of_secrets(
        tmp_path, database_url):
    instance = tmp_path / "instance"
    # Nothing of the test run's own configuration (its DATABASE_URL, REDIS_URL, ...).
    env = {key: value for key, value in os.environ.items() if key not in BASE}
    env.update(APP_ENV="development", INSTANCE_PATH=str(instance), LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url

    results = start_together(tmp_path, env)

    for result in results:
        assert result.returncode == 0, result.stderr
    engine = create_engine(database_url or f"sqlite:///{instance / 'cobrand.db'}")
    with engine.connect() as connection:
        versions = connection.scalars(text("SELECT version_num FROM alembic_version")).all()
        columns = {column["name"] for column in inspect(connection).get_columns("delivery")}
    engine.dispose()
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    assert versions == ScriptDirectory.from_config(config).get_heads()
    assert {"marked", "first_claimed_at"} <= columns
    # Every app uses the keys the file keeps: no process overwrote another's.
    kept = json.loads((instance / "dev-secrets.json").read_text())
    expected = {key: hashlib.sha256(kept[key].encode()).hexdigest() for key in SECRETS}
    used = [json.loads(result.stdout) for role, result in zip(ROLES, results, strict=True)
            if role == "app"]
    assert used == [expected] * ROLES.count("app")


# Only the dev secrets, without the app's imports: processes released together reach the
# file within a millisecond or so of one another, where a race shows in most rounds.
CREATE_SECRETS = """
import json, sys, time
from pathlib import Path
from config.dev_secrets import load_or_create
Path(sys.argv[1], f"ready-{sys.argv[2]}").touch()
while not Path(sys.argv[1], "go").exists():
    time.sleep(0.001)
print(json.dumps(load_or_create(sys.argv[3])))
"""


def test_dev_secrets_created_together_are_the_ones_the_file_keeps(tmp_path):
    for round_ in range(10):
        workdir = tmp_path / str(round_)
        workdir.mkdir()
        instance = workdir / "instance"
        processes = [subprocess.Popen([sys.executable, "-c", CREATE_SECRETS, str(workdir),
                                       str(number), str(instance)],
                                      cwd=ROOT, stdout=subprocess.PIPE, text=True)
                     for number in range(6)]
        deadline = time.monotonic() + 30
        while (len(list(workdir.glob("ready-*"))) < len(processes)
               and time.monotonic() < deadline):
            time.sleep(0.005)
        (workdir / "go").touch()
        used = [json.loads(process.communicate(timeout=30)[0]) for process in processes]
        kept = json.loads((instance / "dev-secrets.json").read_text())
        assert used == [kept] * len(processes), f"round {round_}"
