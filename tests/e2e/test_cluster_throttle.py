"""A destination's max_rate and max_connections shared by the nodes of a
cluster through Redis (docs/cluster.md, "Redis"): three nodes, one real
redis-server, a fake MX. With max_rate = 4/h the three nodes together
deliver 4 messages (a new bucket in Redis is full), not 4 each, nor the
1 each that their own buckets (starting with one token) would let out;
with Redis stopped each node falls back to its own bucket at max_rate/N
(logged, in /metrics). With max_connections = 2 the MX never sees more
than 2 sessions from the three nodes together; without [cluster] each
node opens its own 2."""
import re
import time


import helpers
from httpapi import request
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, submit_many  # noqa: F401
from redisfix import redis  # noqa: F401

SENDER_IP = "127.0.0.11"
RATE_IP = "127.0.0.29"
CONN_IP = "127.0.0.32"
NODES = 3


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "rate.test": RATE_IP, "conn.test": CONN_IP})


def queue(srv, tag, n, domain="rate.test"):
    submit_many(srv, [("a@sender.test", [f"{tag}{i}@{domain}"],
                       msg_bytes("a@sender.test", f"{tag}{i}@{domain}", f"{tag}{i}"))
                      for i in range(n)])


def settled(mx, n, quiet=3.0):
    """n recipients delivered, and no more for quiet seconds."""
    helpers.wait_for(lambda: len(mx.delivered_rcpts()) >= n, 20, what=f"{n} deliveries")
    time.sleep(quiet)
    return len(mx.delivered_rcpts())


def test_max_rate_is_shared_then_split_without_redis(start, mxs, redis):
    mx = mxs(RATE_IP)
    extra = (f"[domain.rate.test]\nmax_rate = 4/h\n"
             f"[cluster]\nredis = {redis.url}\nnodes = {NODES}")
    nodes = [start(extra=extra) for _ in range(NODES)]
    for s in nodes:
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
    for i, s in enumerate(nodes):
        queue(s, f"s{i}x", 3)
    assert settled(mx, 4) == 4  # one bucket of 4 for the three nodes
    assert redis.cmd("EXISTS", "posthorn:rate:{rate.test}") == b":1"
    redis.stop()
    for s in nodes:
        helpers.wait_for(lambda s=s: "event=redis_down" in s.log(), 10, what="redis_down")
    # alone: 4/3 -> 1 per hour each, its own bucket (a new message pumps)
    for i, s in enumerate(nodes):
        queue(s, f"f{i}x", 1)
    assert settled(mx, 7) == 7
    for s in nodes:
        assert f"event=throttle_fallback reason=redis_unreachable share=1/{NODES}" in s.log()
        r = request(s, "GET", "/metrics")
        line = [x for x in r.body.decode().splitlines()
                if x.startswith('posthorn_cluster_fallback_total{limit="throttle"}')]
        assert line and float(line[0].split()[-1]) >= 1, line


def conn_cluster(start, redis, shared):
    extra = "[domain.conn.test]\nmax_connections = 2\nmax_messages_per_connection = 1\n"
    if shared:
        extra += f"[cluster]\nredis = {redis.url}\nnodes = {NODES}"
    nodes = [start(extra=extra) for _ in range(NODES)]
    for s in nodes if shared else ():
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
    return nodes


def test_max_connections_are_leased_across_nodes(start, mxs, redis):
    """max_connections = 2 held by the three nodes together: a slow MX
    never sees more than 2 sessions at once, though each node alone would
    open 2."""
    mx = mxs(CONN_IP, data_delay=0.7)
    nodes = conn_cluster(start, redis, shared=True)
    for i, s in enumerate(nodes):
        queue(s, f"n{i}x", 4, "conn.test")
    helpers.wait_for(lambda: len(mx.delivered_rcpts()) >= 12, 30, what="12 deliveries")
    assert mx.max_active == 2, mx.max_active
    # a node waiting for the other's connections asks again every 250 ms,
    # not in a loop
    stats = redis.cmd("INFO", "commandstats").decode()
    calls = int(re.search(r"cmdstat_evalsha:calls=(\d+)", stats)[1])
    assert calls < 200, calls
    # the leases are given back once the connections close (renewed every 5 s)
    helpers.wait_for(lambda: redis.cmd("EXISTS", "posthorn:conns:{conn.test}") == b":0", 30,
                     what="the leases given back")


def test_max_connections_without_the_cluster_are_per_node(start, mxs, redis):
    """The same three nodes without [cluster]: each opens its own 2."""
    mx = mxs(CONN_IP, data_delay=0.7)
    nodes = conn_cluster(start, redis, shared=False)
    for i, s in enumerate(nodes):
        queue(s, f"n{i}x", 4, "conn.test")
    helpers.wait_for(lambda: len(mx.delivered_rcpts()) >= 12, 30, what="12 deliveries")
    assert mx.max_active > 2, mx.max_active
