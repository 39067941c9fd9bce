"""Queue-ID tags renewed with each heartbeat (docs/cluster.md, "Nodes"): a
live node whose heartbeats stall for more than 15 s can lose its tag to a
node that starts meanwhile; its next heartbeat finds that out, logs
event=node_tag_lost at error level, shows it in `posthorn cluster status`
and /metrics, and refuses new mail (SMTP 451 4.3.0, HTTP 503) until it has
its tag again. Two nodes on a real PostgreSQL; the stall is a SIGSTOP."""
import os
import re
import signal
import time

import helpers
from conftest import pg_cluster
from deliv import transaction
from httpapi import create_key, request
from mx import msg_bytes
from test_cluster_redis import metric
from test_cluster_state import pg_nodes, with_id
from test_cluster_status import by_id, status

ID1, ID2 = "ABC" + "1" * 17, "ABC" + "2" * 17
STALE_AFTER = 15


def claimed_at(db):
    out = pg_cluster().sql(db, "SELECT claimed_at FROM node_tags WHERE tag = 'ABC'").strip()
    return int(out)


def holder(db):
    return pg_cluster().sql(db, "SELECT node_id FROM node_tags WHERE tag = 'ABC'").strip()


def mail(srv, tag):
    return transaction(srv.port, "a@sender.test", ["x@nowhere.test"],
                       msg_bytes("a@sender.test", "x@nowhere.test", tag))


def api_send(srv, key):
    return request(srv, "POST", "/v1/messages", key=key,
                   body={"from": "a@sender.test", "to": "y@nowhere.test", "subject": "t",
                         "text": "hi"})


def test_a_stalled_node_that_lost_its_tag_refuses_mail_until_it_is_back(server_factory):
    db, (n1, n2) = pg_nodes(server_factory, 2)
    with_id(n1, ID1)
    with_id(n2, ID2)
    n1.start()
    n1.add_user("alice", domains=("sender.test",))
    key = create_key(n1, "alice")
    # the claim is renewed with each heartbeat, not only at start
    first = claimed_at(db)
    helpers.wait_for(lambda: claimed_at(db) > first, 2 * 5 + 2, what="the claim renewed")
    assert metric(n1, "posthorn_node_tag_lost") == 0
    # node 1 hangs past 15 s: node 2, starting meanwhile, takes the tag
    os.kill(n1.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(STALE_AFTER + 1.5)
        n2.start()
    finally:
        os.kill(n1.proc.pid, signal.SIGCONT)
    assert f"event=node_tag tag=ABC id={ID2}" in n2.log()
    assert holder(db) == ID2
    # node 1's next heartbeat finds it out
    helpers.wait_for(lambda: "event=node_tag_lost" in n1.log(), 10, what="node_tag_lost")
    lines = [l for l in n1.log().splitlines() if "event=node_tag_lost" in l]
    assert len(lines) == 1 and "level=error" in lines[0], lines
    assert f"tag=ABC node={ID1} held_by={ID2} " in lines[0], lines
    assert metric(n1, "posthorn_node_tag_lost") == 1
    assert metric(n2, "posthorn_node_tag_lost") == 0
    # cluster status shows it, from any node's config
    doc, err = status(n2)
    nodes = by_id(doc)
    assert nodes[ID1]["state"] == "up" and nodes[ID1]["tag_lost"] is True, nodes
    assert nodes[ID1]["tag_holder"] == ID2 and nodes[ID1]["tag"] == "ABC"
    assert nodes[ID2]["tag_lost"] is False and nodes[ID2]["tag_holder"] == ID2
    assert doc["tag_lost"] == 1
    assert f"posthorn: error: node {ID1} is up but its queue-ID tag ABC is held by node " \
           f"{ID2}" in err, err
    rc, out, err = n1.cli("cluster", "status")
    assert rc == 0, err
    line = [l for l in out.splitlines() if l.startswith(f"node={ID1} ")]
    assert len(line) == 1 and line[0].endswith(f" tag_lost={ID2}"), out
    assert [l for l in out.splitlines() if "tag_lost" in l] == line, out
    # node 1 makes no queue ID with the tag meanwhile: new mail is refused
    m, _, _ = mail(n1, "lost")
    assert m.code == 451 and m.text.startswith("4.3.0 "), m
    r = api_send(n1, key)
    assert r.status == 503 and r.json()["error"]["code"] == "node_tag_lost", r
    assert r.headers.get("retry-after"), r.headers
    assert n1.queue() == {}
    # node 2 accepts with the tag
    _, _, dr = mail(n2, "holder")
    assert dr.code == 250 and helpers.queued_id(dr.text)[9:12] == "ABC", dr
    # node 2 stopped: node 1's next heartbeat takes its tag back, mail flows again
    n2.stop()
    helpers.wait_for(lambda: "event=node_tag_regained" in n1.log(), 10,
                     what="node_tag_regained")
    assert holder(db) == ID1
    assert metric(n1, "posthorn_node_tag_lost") == 0
    _, rs, dr = mail(n1, "back")
    assert dr.code == 250 and helpers.queued_id(dr.text)[9:12] == "ABC", (rs, dr)
    assert api_send(n1, key).status == 200
    doc, err = status(n1)
    assert doc["tag_lost"] == 0 and "error" not in err, err
    assert not re.search(r"event=node_tag_lost", n2.log())
