"""Issue 14 "Visibility" (docs/cluster.md "Cluster status"): every running
node writes its heartbeat row (every 5 s) in the database; `posthorn
cluster status [--json]` and GET /v1/cluster/nodes list the nodes with
their state, version, queue size and round trips. On a real PostgreSQL
(tests/e2e/pg.py) with Redis (redisfix.py): three nodes up with their own
queue sizes, one stopped cleanly shows stopped, one killed with SIGKILL
turns stale after 15 s without a heartbeat; on the SQLite default, one
node."""
import json
import os
import re
import time

import pytest

import helpers
from conftest import pg_cluster
from deliv import transaction
from httpapi import create_key, request
from redisfix import redis  # noqa: F401

FIELDS = {"id", "hostname", "version", "state", "messages", "recipients", "started",
          "heartbeat", "heartbeat_age", "postgres_ms", "redis_ms", "tag", "tag_lost",
          "tag_holder", "id_clash", "clash_host"}
STALE_AFTER = 15
LINE = re.compile(r"^node=(\S+) host=(\S+) version=(\S+) state=(up|stale|stopped) "
                  r"messages=(\d+) recipients=(\d+) heartbeat_age=(\d+)s "
                  r"postgres_ms=(\S+) redis_ms=(\S+)$")
UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def status(srv):
    rc, out, err = srv.cli("cluster", "status", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert set(doc) == {"nodes", "stale", "tag_lost", "id_clash"}, doc
    for n in doc["nodes"]:
        assert set(n) == FIELDS, n
        assert UTC.match(n["started"]) and UTC.match(n["heartbeat"]), n
        assert isinstance(n["heartbeat_age"], int) and n["heartbeat_age"] >= 0, n
    assert doc["stale"] == sum(n["state"] == "stale" for n in doc["nodes"]), doc
    return doc, err


def by_id(doc):
    return {n["id"]: n for n in doc["nodes"]}


def node_id(srv):
    with open(os.path.join(srv.data_dir, "node-id")) as f:
        return f.read().strip()


def version(srv):
    rc, out, _ = srv.cli("version")
    assert rc == 0
    return out.split()[1]


def queue_mail(srv, rcpt_counts):
    for n in rcpt_counts:
        rcpts = [f"r{i}@dest{i}.test" for i in range(n)]
        _, rs, data = transaction(srv.port, "shop@example.com", rcpts,
                                  helpers.message("status").encode())
        assert [r.code for r in rs] == [250] * n and data.code == 250, (rs, data)


def test_sqlite_default_lists_this_one_node(server_factory):
    s = server_factory()
    me = node_id(s)
    doc = helpers.wait_for(lambda: (lambda d: d if d["nodes"] else None)(status(s)[0]), 10,
                           what="the first heartbeat")
    assert [n["id"] for n in doc["nodes"]] == [me]
    n = doc["nodes"][0]
    assert n["state"] == "up" and n["hostname"] == "relay.test" and n["version"] == version(s)
    if os.environ.get("POSTHORN_TEST_PG") == "1":  # every server on PostgreSQL
        assert isinstance(n["postgres_ms"], float), n
    else:
        assert n["postgres_ms"] is None, n  # SQLite: nothing measured
    assert n["redis_ms"] is None, n  # no Redis
    assert (n["messages"], n["recipients"]) == (0, 0) and doc["stale"] == 0
    # the text form: one line per node, same values
    rc, out, err = s.cli("cluster", "status")
    assert rc == 0 and err == "", err
    m = LINE.match(out.strip())
    assert m, out
    assert m.group(1, 2, 4, 9) == (me, "relay.test", "up", "-")
    assert m.group(8) == ("-" if n["postgres_ms"] is None else f"{n['postgres_ms']:.3f}")
    # the queue size follows at the next beat (every 5 s)
    queue_mail(s, [2, 1])
    n = helpers.wait_for(lambda: (lambda x: x if x["messages"] == 2 else None)(
        status(s)[0]["nodes"][0]), 8, interval=0.5, what="the queue in a heartbeat")
    assert n["recipients"] == 3 and n["heartbeat_age"] <= 5, n
    # the API: admin keys only
    admin = create_key(s, "default", "--admin")
    r = request(s, "GET", "/v1/cluster/nodes", key=admin)
    assert r.status == 200, r.body
    api = r.json()
    assert set(api) == {"nodes", "stale", "tag_lost", "id_clash"} and [set(x) for x in api["nodes"]] == [FIELDS]
    assert api["nodes"][0]["id"] == me and api["nodes"][0]["messages"] == 2
    assert request(s, "GET", "/v1/cluster/nodes", key=create_key(s)).status == 403
    assert request(s, "GET", "/v1/cluster/nodes").status == 401
    # a clean stop marks the row stopped
    s.stop()
    doc, err = status(s)
    assert [(x["id"], x["state"]) for x in doc["nodes"]] == [(me, "stopped")]
    assert doc["stale"] == 0 and "stale" not in err


def test_cluster_status_usage(server_factory):
    s = server_factory(start=False)
    rc, out, err = s.cli("cluster", "status", "--bogus")
    assert rc == 2 and "--bogus" in err
    rc, out, err = s.cli("cluster", "status", "extra")
    assert rc == 2
    rc, out, err = s.cli("cluster", "status", "--help")
    assert rc == 0 and "cluster status" in out and "stale" in out
    rc, out, err = s.cli("--help")
    assert rc == 0 and "cluster" in out
    # nothing has run with this configuration (no store, no [cluster]
    # postgres): said, exit 1, and no store is made in its data dir
    rc, out, err = s.cli("cluster", "status", "--json")
    assert rc == 1 and out == "", (rc, out, err)
    assert f"no store at {s.data_dir}/posthorn.db and no [cluster] postgres in " in err, err
    assert "give a node's configuration (-c FILE, or POSTHORN_CONFIG)" in err, err
    assert not os.path.exists(os.path.join(s.data_dir, "posthorn.db"))
    # a store made by the CLI, no server started yet: an empty list, said on stderr
    rc, out, err = s.cli("user", "add", "carol", "--password-stdin", input="pw-carol-123\n")
    assert rc == 0, err
    rc, out, err = s.cli("cluster", "status", "--json")
    assert rc == 0 and json.loads(out) == {"nodes": [], "stale": 0, "tag_lost": 0, "id_clash": 0}
    assert "no node has written a heartbeat" in err


def wait_state(srv, want, timeout, what):
    """Polls cluster status until pred(nodes by id) is true; returns the doc."""
    def ok():
        doc, err = status(srv)
        return (doc, err) if want(by_id(doc)) else None
    return helpers.wait_for(ok, timeout, interval=0.5, what=what)


def test_three_nodes_on_postgres_up_stopped_and_stale(server_factory, redis):  # noqa: F811
    db = pg_cluster().new_db()
    nodes = [server_factory(start=False, cluster={"postgres": db, "redis": redis.url})
             for _ in range(3)]
    for s in nodes:
        s.start(wait=False)
    for s in nodes:
        assert s.wait_ready(), s.log()
    n1, n2, n3 = nodes
    ids = [node_id(s) for s in nodes]
    assert len(set(ids)) == 3
    queue_mail(n1, [1, 3])  # 2 messages, 4 recipients
    queue_mail(n2, [2])     # 1 message, 2 recipients
    want = {ids[0]: (2, 4), ids[1]: (1, 2), ids[2]: (0, 0)}

    def all_up(nodes_by_id):
        return set(nodes_by_id) == set(ids) and all(
            x["state"] == "up" and (x["messages"], x["recipients"]) == want[x["id"]]
            and x["redis_ms"] is not None for x in nodes_by_id.values())
    doc, err = wait_state(n3, all_up, 12, "three nodes up with their queues")
    assert doc["stale"] == 0 and err == ""
    for x in doc["nodes"]:
        assert x["version"] == version(n1) and x["hostname"] == "relay.test"
        assert isinstance(x["postgres_ms"], float) and 0 < x["postgres_ms"] < 1000, x
        assert isinstance(x["redis_ms"], float) and 0 < x["redis_ms"] < 1000, x
    # any node's API shows the same rows
    admin = create_key(n1, "default", "--admin")
    api = request(n2, "GET", "/v1/cluster/nodes", key=admin).json()
    assert sorted(x["id"] for x in api["nodes"]) == sorted(ids)
    # the database holds the rows, one per node
    name = db.rsplit("/", 1)[1]
    assert pg_cluster().sql(name, "SELECT count(*) FROM nodes").strip() == "3"

    # node 3 stops cleanly: stopped at once, and never stale
    n3.stop()
    doc, _ = status(n1)
    assert by_id(doc)[ids[2]]["state"] == "stopped"
    # node 2 is killed: up until 15 s without a heartbeat, then stale
    n2.kill9()
    killed = time.monotonic()
    doc, err = wait_state(n1, lambda b: b[ids[1]]["state"] == "stale", STALE_AFTER + 8,
                          "the killed node stale")
    assert time.monotonic() - killed >= STALE_AFTER - 5 - 1  # its last beat was <= 5 s old
    assert by_id(doc)[ids[1]]["heartbeat_age"] >= STALE_AFTER
    assert {i: x["state"] for i, x in by_id(doc).items()} == \
        {ids[0]: "up", ids[1]: "stale", ids[2]: "stopped"}
    assert doc["stale"] == 1 and "1 node(s) stale" in err
    rc, out, err = n1.cli("cluster", "status")
    assert rc == 0 and "warning" in err
    states = {LINE.match(l).group(1): LINE.match(l).group(4) for l in out.splitlines()}
    assert states == {ids[0]: "up", ids[1]: "stale", ids[2]: "stopped"}, out
    # a restarted node is up again
    n3.start()
    wait_state(n1, lambda b: b[ids[2]]["state"] == "up", 8, "node 3 up again")


def test_beat_while_postgres_is_down_logged_once_then_back(server_factory):
    """The database stops: the heartbeat's failure is logged once (not at
    every beat), the node keeps running, and its next beat after the
    database is back logs the recovery and writes the row again."""
    pgc = pg_cluster()
    db = pgc.new_db()
    s = server_factory(cluster={"postgres": db})
    me = node_id(s)
    wait_state(s, lambda b: me in b and b[me]["state"] == "up", 10, "the first heartbeat")
    pgc.stop()
    try:
        helpers.wait_for(lambda: "event=node_beat_error" in s.log(), 12, interval=0.2,
                         what="node_beat_error")
        time.sleep(11)  # two more beats fail meanwhile
        assert s.log().count("event=node_beat_error") == 1, s.log()[-3000:]
        assert s.proc.poll() is None
    finally:
        pgc.start()
    helpers.wait_for(lambda: "event=node_beat_ok" in s.log(), 12, interval=0.2,
                     what="node_beat_ok")
    doc, _ = wait_state(s, lambda b: b[me]["state"] == "up" and b[me]["heartbeat_age"] <= 5, 8,
                        "the row written again")
    assert "node_beat_error" in s.log() and s.log().count("event=node_beat_ok") == 1
