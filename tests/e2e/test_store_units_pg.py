"""The PostgreSQL half of the store unit tests (tests/unit/store_fixture.h),
which runs only with POSTHORN_TEST_PG_URL set: each unit binary of the
build under test (POSTHORN_TOOLS, build/tests or build/san/tests) runs on a
fresh database of the session's real PostgreSQL (pg.py), and must pass all
its tests there. That it ran on PostgreSQL, not on SQLite files, is seen
in its log: the store migrates that database (event=store_migrate).

Left out, each failing on PostgreSQL by design in tests that read SQLite
itself (their SQLite half runs in `make unit`):
- test_store: PRAGMA user_version / journal_mode, the posthorn.db file, two
  first opens of one file, and `posthorn user` run with a config that has
  no [cluster] postgres (so on SQLite);
- test_store_stats: PRAGMA user_version, sqlite_master, SQLite triggers
  (CREATE TRIGGER ... RAISE(ABORT), which the tests of one transaction, of
  batches added once by key and of the writer's retry make fail), and
  its CLI tests as above;
- test_store_deliv: test_data_version asserts SQLite's data_version (our
  own writes do not move it); PostgreSQL's (the server's next transaction
  id, db_pg.c) moves on every write, this connection's too;
- test_events: test_accepted_message reads tags with SQLite's
  json_array_length() on a TEXT column."""
import os
import re
import subprocess

import pytest

from conftest import assert_no_sanitizer_report, pg_cluster, sanitizer_env

# Every unit binary that includes store_fixture.h and passes on PostgreSQL.
BINARIES = [
    "test_store_supp",
    "test_store_events_once",
    "test_store_nodes",
    "test_store_apikey",
    "test_store_events",
    "test_store_idem",
    "test_store_tls",
    "test_store_tmpl",
    "test_dkim_store",
    "test_dkim_sign",
    "test_api_tmpl",
    "test_deliv",
    "test_unsub",
]


def tools_dir():
    d = os.environ.get("POSTHORN_TOOLS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tests")
    return os.path.abspath(d)


def run_on_pg(name, url):
    path = os.path.join(tools_dir(), name)
    assert os.access(path, os.X_OK), f"{path} is missing: make e2e builds it"
    env = sanitizer_env()
    env["POSTHORN_TEST_PG_URL"] = url
    p = subprocess.run([path], capture_output=True, text=True, errors="replace",
                       timeout=300, env=env)
    out = p.stdout + p.stderr
    assert_no_sanitizer_report(p.stderr, name)
    return p.returncode, out


@pytest.mark.parametrize("name", BINARIES)
def test_the_store_unit_tests_pass_on_postgres(name):
    url = pg_cluster().new_db()
    db = url.rsplit("/", 1)[1]
    rc, out = run_on_pg(name, url)
    assert rc == 0, out[-6000:]
    ran = re.search(r"Running (\d+) test\(s\)", out)
    passed = re.search(r"PASSED\s*\] (\d+) test\(s\)", out)
    assert ran and passed and ran.group(1) == passed.group(1) and int(ran.group(1)) > 0, out
    # the PostgreSQL half ran: the store migrated this database (the log
    # names it with its password masked), not only SQLite files
    on_pg = re.findall(rf"event=store_migrate db=postgresql://\S*/{db} ", out)
    assert on_pg, f"{name} never opened {db}: it did not run on PostgreSQL\n{out[-6000:]}"
