"""Quota counts and reputation slots per node (docs/cluster.md): two
`posthorn serve` sharing one real PostgreSQL 15 (tests/e2e/pg.py), each
delivering to a real fake MX. Each node writes its own rows, so
`posthorn stats` on either node shows the sum of both nodes' mail, and a
node that restarts reads back its own counts only."""
import json

import helpers
from conftest import pg_cluster
from deliv import transaction
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
OK_IP = "127.0.0.68"


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "ok.test": OK_IP})


def send(srv, tag, n):
    """One message to n recipients through srv, delivered."""
    rcpts = [f"r-{tag}{i}@ok.test" for i in range(n)]
    _, rs, dr = transaction(srv.port, "shop@sender.test", rcpts,
                            msg_bytes("shop@sender.test", rcpts[0], tag))
    assert all(r.code == 250 for r in rs) and dr.code == 250, (rs, dr)
    qid = helpers.queued_id(dr.text)
    for r in rcpts:
        wait_status(srv, qid, r, "sent")


def stats_of(srv):
    rc, out, err = srv.cli("stats", "--json", "--account", "default")
    assert rc == 0, err
    a = json.loads(out)["accounts"]["default"]
    return a["quota_hour"]["used"], a["volume"]


def stored(db, table, col):
    rows = pg_cluster().sql(db, f"SELECT node_id, {col} FROM {table} ORDER BY {col}")
    return [tuple(line.split("|")) for line in rows.split()]


def test_stats_sum_both_nodes_and_a_restart_reads_its_own(start, mxs):
    mxs(OK_IP)
    url = pg_cluster().new_db()
    db = url.rsplit("/", 1)[1]
    n1, n2 = [start(cluster={"postgres": url}) for _ in range(2)]
    send(n1, "a", 2)
    send(n2, "b", 3)
    for s in (n1, n2):  # each node's flush, once a second: the sum on either
        helpers.wait_for(lambda s=s: stats_of(s) == (5, 5), 10, what="stats summing both nodes")
    counts = stored(db, "quota_counts WHERE period = 'hour'", "used")
    assert [c for _, c in counts] == ["2", "3"], counts
    assert len({node for node, _ in counts}) == 2 and "" not in {n for n, _ in counts}
    # node 1 again: it reads its own 2 back, not the sum, and counts on
    n1.restart()
    send(n1, "c", 1)
    helpers.wait_for(lambda: stats_of(n2) == (6, 6), 10, what="stats after the restart")
    assert [c for _, c in stored(db, "quota_counts WHERE period = 'hour'", "used")] == ["3", "3"]
