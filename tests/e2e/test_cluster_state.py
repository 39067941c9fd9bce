"""State shared across nodes (issue 14; docs/cluster.md): the reputation
guard's sliding windows in a real Redis, with three nodes delivering to a
real fake MX that refuses some recipients (550 5.1.1)."""
import re
import socket

import helpers
from deliv import event_lines, transaction
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, wait_status  # noqa: F401
from redisfix import redis  # noqa: F401
from test_cluster_redis import metric

SENDER_IP = "127.0.0.11"
STORM_IP = "127.0.0.67"
BAD = {f"gone-{t}{i}@storm.test" for t in ("n0", "n1", "n2", "a", "b") for i in range(5)}
GUARD = "[reputation]\nwindow = 10m\nmin_volume = 10\nmax_bounce_rate = 20%\n"
PAUSED_RE = re.compile(r"^4\.7\.1 account paused: bounce rate (?P<rate>[\d.]+) % over 10m "
                       r"\(threshold 20 %\)$")


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "storm.test": STORM_IP})


def nodes_of(start, redis, n=3):
    extra = GUARD + f"[cluster]\nredis = {redis.url}\nnodes = {n}\n"
    nodes = [start(extra=extra) for _ in range(n)]
    for s in nodes:
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
    return nodes


def send_mix(srv, tag, n_bad, n_good):
    """One message to n_bad refused and n_good taken recipients, delivered."""
    rcpts = [f"gone-{tag}{i}@storm.test" for i in range(n_bad)] + \
            [f"ok-{tag}{i}@storm.test" for i in range(n_good)]
    _, rs, dr = transaction(srv.port, "shop@sender.test", rcpts,
                            msg_bytes("shop@sender.test", rcpts[0], tag))
    assert all(r.code == 250 for r in rs) and dr.code == 250, (rs, dr)
    qid = helpers.queued_id(dr.text)
    for r in rcpts:
        wait_status(srv, qid, r, "bounced" if r.startswith("gone") else "sent")
    return qid


def mail_reply(srv):
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["new@storm.test"])
    return mail


def test_bounces_over_three_nodes_pause_on_every_node(start, mxs, redis):
    mxs(STORM_IP, reject_rcpt=BAD)
    nodes = nodes_of(start, redis)
    # 4 outcomes on each node, 2 of them hard: each node's own window has
    # a volume of 4, below min_volume (10), so alone none would pause; the
    # cluster's window has 12 with 6 hard (50 % > 20 %)
    for i, s in enumerate(nodes[:2]):
        send_mix(s, f"n{i}", 2, 2)
    helpers.wait_for(lambda: redis_sums(redis)[0] == 8, 10, what="8 outcomes in Redis")
    for s in nodes:
        assert mail_reply(s).code == 250  # 8 of min_volume 10: not yet
        assert not event_lines(s, "account_paused")
    send_mix(nodes[2], "n2", 2, 2)
    for s in nodes:
        helpers.wait_for(lambda s=s: event_lines(s, "account_paused"), 10,
                         what="the pause on every node")
        # paused on the cluster's counts: at least min_volume of them, which
        # takes outcomes of all three nodes
        volume, hard = paused_counts(s)
        assert 10 <= volume <= 12 and hard * 5 > volume, (volume, hard)
        m = PAUSED_RE.match(mail_reply(s).text)
        assert m and float(m["rate"]) > 20, mail_reply(s)
        assert metric(s, "posthorn_cluster_fallback_total", limit="reputation") == 0
    assert redis_sums(redis) == (12, 6)


def redis_array(redis, *args):
    """An array reply of Redis, as text."""
    req = f"*{len(args)}\r\n" + "".join(f"${len(str(a))}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        s.sendall(req.encode())
        f = s.makefile("rb")
        head = f.readline().rstrip(b"\r\n")
        assert head.startswith(b"*"), head
        items = []
        for _ in range(int(head[1:])):
            n = int(f.readline().rstrip(b"\r\n")[1:])
            items.append(f.read(n + 2)[:n].decode())
        return items


def redis_sums(redis):
    """(volume, hard) in the shared window of account default: its hash's
    fields are START:OUTCOME (0 delivered, 1 bounced, 2 hard, 3 complained)."""
    flat = redis_array(redis, "HGETALL", "posthorn:rep:{default}:600")
    total = [0, 0, 0, 0]
    for f, v in zip(flat[::2], flat[1::2]):
        total[int(f.split(":")[1])] += int(v)
    return total[0] + total[1], total[2]


def paused_counts(srv):
    line = event_lines(srv, "account_paused")[0]
    m = re.search(r"volume=(\d+) hard=(\d+)", line)
    return int(m[1]), int(m[2])


def test_redis_down_judges_the_local_window(start, mxs, redis):
    mxs(STORM_IP, reject_rcpt=BAD)
    a, b = nodes_of(start, redis, n=2)
    redis.stop()
    helpers.wait_for(lambda: "event=redis_down" in a.log(), 10, what="redis_down")
    send_mix(a, "a", 3, 7)  # 10 on this node, 30 % hard: pauses on its own window
    helpers.wait_for(lambda: event_lines(a, "account_paused"), 10, what="the local pause")
    assert paused_counts(a) == (10, 3)
    assert a.log().count("event=reputation_fallback") == 1
    assert metric(a, "posthorn_cluster_fallback_total", limit="reputation") >= 1
    assert PAUSED_RE.match(mail_reply(a).text)
    assert not event_lines(b, "account_paused")
    # Redis back: what node a counted meanwhile is pushed, and node b
    # judges the shared window when its own outcomes come
    redis.start()
    for s in (a, b):
        helpers.wait_for(lambda s=s: s.log().count("event=redis_up") == 2, 15, what="redis_up")
    helpers.wait_for(lambda: redis_sums(redis) == (10, 3), 15, what="the counts pushed")
    send_mix(b, "b", 0, 1)
    helpers.wait_for(lambda: event_lines(b, "account_paused"), 10, what="the shared pause")
    assert paused_counts(b) == (11, 3)
    assert "event=reputation_fallback" not in b.log()
