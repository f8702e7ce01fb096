"""Several workers on one study in a real PostgreSQL (Debian's server, started here)."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import optuna
import pytest

from nas.strategies.synthetic import run_synthetic
from nas.study import create_study, open_storage


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(p)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server installed (Debian package postgresql)")
    pytest.importorskip("psycopg")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data = root / "data"
    if as_user:
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run(as_user + [initdb, "-D", str(data), "-U", "nas", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="nas", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE search")
        yield f"postgresql://nas@127.0.0.1:{port}/search"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgres_study(postgres_url) -> None:
    create_study(open_storage(postgres_url), "pg", "evolution")  # as `nas search` does first
    ctx = mp.get_context("spawn")
    limits = {"madds": 600e6}
    procs = [ctx.Process(target=run_synthetic, args=(postgres_url, "pg", "evolution", s, 10,
                                                     limits)) for s in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    study = optuna.load_study(study_name="pg", storage=open_storage(postgres_url))
    statuses = Counter(t.user_attrs.get("status") for t in study.get_trials())
    assert statuses["ok"] == 10
    assert len({t.number for t in study.get_trials()}) == len(study.get_trials())


def test_bad_database_url_is_one_line() -> None:
    from nas.errors import UserError

    with pytest.raises(UserError, match="cannot open storage"):
        open_storage(f"postgresql://nobody@127.0.0.1:{_free_port()}/none")
