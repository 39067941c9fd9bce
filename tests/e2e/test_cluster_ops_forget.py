"""`posthorn cluster forget NODE_ID [--force]` (docs/cli.md, docs/cluster.md
"Cluster status"): a stopped or stale node's heartbeat row and its queue-ID
tag claim are deleted, so `cluster status` no longer lists it; an up node
is refused (exit 1) unless --force; an unknown ID is exit 1. On a real
PostgreSQL (tests/e2e/pg.py) with two nodes and a stale row, and on the
SQLite default."""
import os
import sqlite3
import time

import helpers
from conftest import pg_cluster
from test_cluster_status import by_id, node_id, status, wait_state


def forget(srv, *args):
    return srv.cli("cluster", "forget", *args)


def listed(srv):
    return set(by_id(status(srv)[0]))


def test_forget_on_postgres_stopped_stale_up_and_unknown(server_factory):
    pgc = pg_cluster()
    db = pgc.new_db()
    name = db.rsplit("/", 1)[1]
    n1, n2 = [server_factory(cluster={"postgres": db}) for _ in range(2)]
    id1, id2 = node_id(n1), node_id(n2)
    wait_state(n1, lambda b: {id1, id2} <= set(b) and all(
        x["state"] == "up" for x in b.values()), 10, "both nodes up")
    # a node gone long ago: stale, with its tag claim
    gone, now = "ZZZ0000000000000GONE", int(time.time())
    pgc.sql(name, "INSERT INTO nodes (id, hostname, version, started_at, beat_at, messages,"
            f" recipients) VALUES ('{gone}', 'old.test', '0.1.0', {now - 999}, {now - 100}, 3, 4);"
            f" INSERT INTO node_tags (tag, node_id, claimed_at) VALUES ('ZZZ', '{gone}',"
            f" {now - 999})")
    assert by_id(status(n1)[0])[gone]["state"] == "stale"

    def tags():
        return set(pgc.sql(name, "SELECT node_id FROM node_tags").split())
    assert tags() == {id1, id2, gone}

    # up: refused, nothing deleted
    rc, out, err = forget(n1, id2)
    assert rc == 1 and f"node {id2} is up" in err and "--force" in err, err
    assert listed(n1) == {id1, id2, gone} and tags() == {id1, id2, gone}
    # unknown
    rc, out, err = forget(n1, "NOSUCHNODE")
    assert rc == 1 and "no node NOSUCHNODE" in err, err
    # stale: forgotten, row and tag
    rc, out, err = forget(n1, gone)
    assert (rc, out.strip(), err) == (0, f"node {gone} forgotten", ""), err
    assert listed(n1) == {id1, id2} and tags() == {id1, id2}
    assert forget(n1, gone)[0] == 1  # once
    # stopped: forgotten
    n2.stop()
    assert by_id(status(n1)[0])[id2]["state"] == "stopped"
    rc, out, err = forget(n1, id2)
    assert rc == 0, err
    assert listed(n1) == {id1} and tags() == {id1}
    assert pgc.sql(name, f"SELECT count(*) FROM nodes WHERE id = '{id2}'").strip() == "0"
    # up with --force: deleted (a row that says up, of no running process)
    ghost = "YYY00000000000GHOST"
    pgc.sql(name, "INSERT INTO nodes (id, hostname, version, started_at, beat_at, messages,"
            f" recipients) VALUES ('{ghost}', 'ghost.test', '0.1.0', {now}, {int(time.time())},"
            f" 0, 0); INSERT INTO node_tags (tag, node_id, claimed_at) VALUES ('YYY',"
            f" '{ghost}', {now})")
    assert forget(n1, ghost)[0] == 1 and ghost in listed(n1)
    rc, out, err = forget(n1, ghost, "--force")
    assert rc == 0, err
    assert listed(n1) == {id1} and tags() == {id1}
    # a running node forgotten with --force writes its row again at its next beat
    rc, out, err = forget(n1, id1, "--force")
    assert rc == 0, err
    wait_state(n1, lambda b: id1 in b and b[id1]["state"] == "up", 8, "the row written again")
    # and its tag claim, renewed with each heartbeat
    helpers.wait_for(lambda: id1 in tags(), 8, what="the tag claimed again")
    # the stopped node starts again on its own ID: its tag is free again
    n2.start()
    wait_state(n1, lambda b: id2 in b and b[id2]["state"] == "up", 8, "node 2 back")
    assert tags() == {id1, id2}


def test_forget_on_sqlite_and_usage(server_factory):
    s = server_factory()
    me = node_id(s)
    wait_state(s, lambda b: me in b, 10, "the first heartbeat")
    rc, out, err = forget(s, me)
    assert rc == 1 and "is up" in err
    s.stop()
    rc, out, err = forget(s, me)
    assert rc == 0 and out.strip() == f"node {me} forgotten", err
    assert listed(s) == set()
    db = sqlite3.connect(os.path.join(s.data_dir, "posthorn.db"))
    try:
        assert db.execute("SELECT count(*) FROM nodes").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM node_tags").fetchone() == (0,)
    finally:
        db.close()
    rc, out, err = forget(s, me)
    assert rc == 1 and f"no node {me}" in err
    # usage
    for args in ((), (me, "other"), (me, "--bogus")):
        rc, out, err = forget(s, *args)
        assert rc == 2, (args, err)
    rc, out, err = s.cli("cluster", "forget", "--help")
    assert rc == 0 and "cluster forget" in out and "--force" in out
    # the node starts again afterwards, and is listed again
    s.start()
    helpers.wait_for(lambda: me in listed(s), 10, what="listed again")
