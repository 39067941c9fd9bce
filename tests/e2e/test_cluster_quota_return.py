"""Quota counts across a Redis outage (docs/cluster.md, "When Redis cannot
be reached"): three `posthorn serve` sharing one real PostgreSQL 15
(tests/e2e/pg.py) and one real Redis with its append-only file on
(redisfix.py), a quota of 6 per hour, so each node's share alone is 2.

While Redis is down a node that has used its share refuses at MAIL with a
reply that names the share, and that refusal is a fallback decision
(logged, in /metrics). What the nodes granted alone is added to Redis's
counter when Redis is back, so the cluster's total for the hour stays at
the quota: Redis's counter, the accepted recipients and `posthorn stats`
all say 6. Recipients granted alone and then given back (RSET) are not
added."""
import json
import re
import time

import helpers
from conftest import pg_cluster
from deliv import transaction
from httpapi import request
from mx import msg_bytes
from redisfix import redis, start_nodes, wait_out_of_hour_end  # noqa: F401

SHARE_TEXT = "this node's share while the shared counter is unreachable: "
QUOTA_RE = re.compile(r"^4\.7\.1 Quota exceeded: account default may send 6 messages per hour"
                      r"(; this node's share while the shared counter is unreachable: \d+)?"
                      r"; the quota resets at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def three(server_factory, redis):  # noqa: F811
    cl = {"postgres": pg_cluster().new_db(), "redis": redis.url, "nodes": 3}
    return start_nodes(server_factory, 3, extra="[quota]\nhour = 6", cluster=cl)


def send(srv, n, tag):
    """One transaction of n recipients: (accepted, the quota refusals' texts)."""
    rcpts = [f"{tag}{j}@nowhere.test" for j in range(n)]
    mail, rs, dr = transaction(srv.port, "a@sender.test", rcpts,
                               msg_bytes("a@sender.test", rcpts[0], tag))
    if mail.code != 250:
        assert mail.code == 450 and QUOTA_RE.match(mail.text), mail
        return 0, [mail.text]
    for r in rs:
        assert r.code == 250 or (r.code == 450 and QUOTA_RE.match(r.text)), r
    ok = sum(r.code == 250 for r in rs)
    if ok:
        assert dr.code == 250, dr
    return ok, [r.text for r in rs if r.code != 250]


def metric(srv, name, **labels):
    r = request(srv, "GET", "/metrics")
    assert r.status == 200
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in r.body.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{want} not in /metrics")


def stats_used(srv):
    rc, out, err = srv.cli("stats", "--json", "--account", "default")
    assert rc == 0, err
    return json.loads(out)["accounts"]["default"]["quota_hour"]["used"]


def test_counts_granted_alone_go_back_to_redis_and_the_quota_holds(server_factory, redis):
    wait_out_of_hour_end(180)
    n1, n2, n3 = three(server_factory, redis)
    key = f"posthorn:quota:{{default}}:h:{int(time.time()) // 3600 * 3600}"
    assert send(n3, 2, "before") == (2, [])
    redis.stop()
    for s in (n1, n2, n3):
        helpers.wait_for(lambda s=s: "event=redis_down" in s.log(), 10, what="redis_down")
    # node 3 has used its share (2 of 6) alone: refused at MAIL, naming the share
    ok, texts = send(n3, 1, "n3down")
    assert ok == 0 and len(texts) == 1 and SHARE_TEXT + "2; the quota resets at" in texts[0]
    assert n3.log().count("event=quota_fallback") == 1
    assert metric(n3, "posthorn_cluster_fallback_total", limit="quota") == 1
    # node 1 takes its share alone; the third recipient's refusal names it
    ok, texts = send(n1, 3, "n1down")
    assert ok == 2 and len(texts) == 1 and SHARE_TEXT + "2;" in texts[0], texts
    assert metric(n1, "posthorn_cluster_fallback_total", limit="quota") == 3
    redis.start()  # same port, same append-only file: the 2 counted before are kept
    for s in (n1, n2, n3):
        helpers.wait_for(lambda s=s: s.log().count("event=redis_up") == 2, 15,
                         what="redis_up again")
    # node 1's two, granted alone, are added to the shared counter
    helpers.wait_for(lambda: "event=quota_owed_pushed" in n1.log(), 10, what="owed pushed")
    assert re.search(r"event=quota_owed_pushed account=\S*default\S* hour=2 day=2", n1.log())
    assert redis.cmd("GET", key) == b"4"
    # shared again: only the 2 the cluster has left, wherever they are asked
    back = [send(n3, 3, "n3back"), send(n1, 3, "n1back"), send(n2, 3, "n2back")]
    assert [a for a, _ in back] == [2, 0, 0], back
    assert all(SHARE_TEXT not in t for _, texts in back for t in texts), back
    assert "event=quota_shared" in n3.log()
    # accepted in the hour: 2 + 2 + 2, the quota exactly; Redis and the stats agree
    assert redis.cmd("GET", key) == b"6"
    for s in (n1, n2, n3):
        helpers.wait_for(lambda s=s: stats_used(s) == 6, 10, what="stats at 6")


def test_recipients_granted_alone_and_given_back_are_not_added(server_factory, redis):
    wait_out_of_hour_end(180)
    cl = {"postgres": pg_cluster().new_db(), "redis": redis.url, "nodes": 2}
    n1, n2 = start_nodes(server_factory, 2, extra="[quota]\nhour = 6", cluster=cl)
    key = f"posthorn:quota:{{default}}:h:{int(time.time()) // 3600 * 3600}"
    redis.stop()
    helpers.wait_for(lambda: "event=redis_down" in n1.log(), 10, what="redis_down")
    with helpers.RawSMTP(n1.port) as c:  # two granted alone, then RSET: given back
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@sender.test>").code == 250
        assert [c.cmd(f"RCPT TO:<rset{j}@nowhere.test>").code for j in range(2)] == [250, 250]
        assert c.cmd("RSET").code == 250
        c.cmd("QUIT")
    assert send(n1, 1, "kept") == (1, [])
    redis.start()
    helpers.wait_for(lambda: "event=quota_owed_pushed" in n1.log(), 15, what="owed pushed")
    assert re.search(r"event=quota_owed_pushed account=\S*default\S* hour=1 day=1", n1.log())
    assert redis.cmd("GET", key) == b"1"
    assert send(n2, 6, "n2back")[0] == 5
    assert redis.cmd("GET", key) == b"6"
