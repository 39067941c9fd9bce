"""Cluster-wide quotas in Redis (SPEC 8; docs/cluster.md): three nodes,
each with its own data dir, share one real redis-server started on a
loopback port. A quota of 100 per hour holds exactly across the three
nodes under concurrent load; with Redis stopped each node enforces 1/N of
the limit on its own (logged, in /metrics); with Redis back the counter is
shared again. Also: every node has its own node ID and queue IDs carry its
tag."""
import os
import re
import subprocess
import threading
import time


import helpers
from conftest import posthorn_bin
from deliv import transaction
from httpapi import create_key, request
from mx import MXFarm, msg_bytes
from redisfix import Redis, redis, wait_out_of_hour_end  # noqa: F401

QUOTA_RE = re.compile(r"^4\.7\.1 Quota exceeded: account default may send (\d+) messages per "
                      r"hour(; this node's share while the shared counter is unreachable: \d+)?"
                      r"; the quota resets at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def cluster(server_factory, redis, hour, n=3, users=()):
    extra = f"[quota]\nhour = {hour}\n[cluster]\nredis = {redis.url}\nnodes = {n}"
    nodes = [server_factory(extra=extra, start=False) for _ in range(n)]
    for s in nodes:
        for u in users:
            s.add_user(u, domains=(f"{u}.test",))
        s.start()
    for s in nodes:
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
    return nodes


def read(path):
    with open(path) as f:
        return f.read()


def metric(srv, name, **labels):
    r = request(srv, "GET", "/metrics")
    assert r.status == 200
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                   if labels else "")
    for line in r.body.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{want} not in /metrics")


def send(srv, rcpts, tag):
    """One transaction; returns (accepted, refused by the quota) recipients."""
    mail, rs, dr = transaction(srv.port, "a@sender.test", rcpts,
                               msg_bytes("a@sender.test", rcpts[0], tag))
    if mail.code != 250:
        assert QUOTA_RE.match(mail.text), mail
        return 0, len(rcpts)
    ok = sum(r.code == 250 for r in rs)
    for r in rs:
        assert r.code == 250 or QUOTA_RE.match(r.text), r
    if ok:
        assert dr.code == 250, dr
    return ok, len(rcpts) - ok


def test_quota_exact_across_three_nodes(server_factory, redis):
    wait_out_of_hour_end()
    nodes = cluster(server_factory, redis, 100)
    results, errors = [], []

    def worker(i):
        try:
            srv = nodes[i % 3]
            for k in range(5):
                rcpts = [f"w{i}t{k}r{j}@nowhere.test" for j in range(3)]
                results.append(send(srv, rcpts, f"w{i}t{k}"))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    accepted = sum(a for a, _ in results)
    refused = sum(r for _, r in results)
    assert (accepted, refused) == (100, 80), results
    # the shared counter says the same
    key = f"posthorn:quota:{{default}}:h:{int(time.time()) // 3600 * 3600}"
    assert redis.cmd("GET", key) == b"100"
    assert metric(nodes[0], "posthorn_redis_up") == 1
    assert metric(nodes[0], "posthorn_cluster_fallback_total", limit="quota") == 0


def test_redis_down_falls_back_to_a_share_then_shared_again(server_factory, redis):
    wait_out_of_hour_end()
    nodes = cluster(server_factory, redis, 30)
    a = nodes[0]
    assert send(a, [f"s{j}@nowhere.test" for j in range(5)], "shared") == (5, 0)
    redis.stop()
    helpers.wait_for(lambda: "event=redis_down" in a.log(), 10, what="redis_down")
    assert metric(a, "posthorn_redis_up") == 0
    # alone: 30/3 = 10 per node, 5 of them sent by this node already
    assert send(a, [f"f{j}@nowhere.test" for j in range(15)], "fallback") == (5, 10)
    assert a.log().count("event=quota_fallback") == 1
    assert "share=1/3" in a.log()
    assert metric(a, "posthorn_cluster_fallback_total", limit="quota") >= 1
    # another node has its own share
    assert send(nodes[1], [f"g{j}@nowhere.test" for j in range(12)], "other") == (10, 2)
    redis.start()  # same port, same append-only file: the 5 shared are kept
    helpers.wait_for(lambda: a.log().count("event=redis_up") == 2, 15, what="redis_up again")
    assert metric(a, "posthorn_redis_up") == 1
    # what the nodes granted alone goes to the shared counter
    helpers.wait_for(lambda: "event=quota_owed_pushed" in nodes[1].log(), 15, what="pushed")
    # shared again: the cluster's 30, less the 5 Redis counted and the 15 granted alone
    assert send(a, [f"b{j}@nowhere.test" for j in range(20)], "back") == (10, 10)
    key = f"posthorn:quota:{{default}}:h:{int(time.time()) // 3600 * 3600}"
    assert redis.cmd("GET", key) == b"30"
    assert "event=quota_shared" in a.log()
    assert send(nodes[2], ["late@nowhere.test"], "late") == (0, 1)
    assert a.log().count("event=redis_down") == 1


def test_nodes_have_their_own_ids_and_tags(server_factory, redis):
    nodes = cluster(server_factory, redis, 0, n=2)
    ids = []
    for s in nodes:
        m = re.search(r"event=node id=([0-9A-Z]{20}) new=1", s.log())
        assert m, s.log()
        with open(s.data_dir + "/node-id") as f:
            assert f.read() == m[1] + "\n"
        ids.append(m[1])
    assert ids[0] != ids[1]
    nodes[0].restart()
    assert f"event=node id={ids[0]} new=0" in nodes[0].log()
    for s, nid in zip(nodes, ids):
        _, rs, dr = transaction(s.port, "a@sender.test", ["x@nowhere.test"],
                                msg_bytes("a@sender.test", "x@nowhere.test", "id"))
        qid = helpers.queued_id(dr.text)
        assert qid[9:12] == nid[:3], (qid, nid)


def test_api_send_counts_in_the_same_redis_quota(server_factory, redis):
    """POST /v1/messages reserves a message's recipients (all or none) in
    the same Redis counter as SMTP, whichever node it reaches."""
    wait_out_of_hour_end()
    nodes = cluster(server_factory, redis, 10, users=("carol",))
    keys = [create_key(s, "carol") for s in nodes]

    def api(i, n, tag):
        return request(nodes[i], "POST", "/v1/messages", key=keys[i],
                       body={"from": "c@carol.test", "subject": tag, "text": "x",
                             "to": [f"{tag}{j}@nowhere.test" for j in range(n)]})

    assert api(0, 8, "a").status == 200
    r = api(1, 3, "b")
    assert r.status == 429 and r.json()["error"]["code"] == "over_quota", r.body
    assert r.json()["messages"][0]["reason"].startswith(
        "Quota exceeded: account carol may send 10 messages per hour"), r.body
    assert api(1, 2, "c").status == 200
    assert api(2, 1, "d").status == 429
    key = f"posthorn:quota:{{carol}}:h:{int(time.time()) // 3600 * 3600}"
    assert redis.cmd("GET", key) == b"10"


def test_cluster_scripts_start_and_stop_everything():
    """scripts/cluster-up.sh starts Redis, PostgreSQL (when installed) and N
    nodes pointing at them, sending to SMARTHOST when it is given;
    scripts/cluster-down.sh stops all of it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    farm = MXFarm()
    sink = farm.add("127.0.0.73")
    env = dict(os.environ, POSTHORN_BIN=posthorn_bin(), SMARTHOST=f"127.0.0.73:{farm.port}")
    up = subprocess.run([os.path.join(root, "scripts/cluster-up.sh"), "2"], env=env,
                        capture_output=True, text=True, timeout=120)
    m = re.search(r"^cluster dir: (\S+)$", up.stdout, re.M)
    assert m, (up.stdout, up.stderr)
    d = m[1]
    try:
        assert up.returncode == 0, up.stderr
        assert f"mail goes to the smarthost 127.0.0.73:{farm.port}" in up.stdout, up.stdout
        port = int(re.search(r"^node2: smtp 127\.0\.0\.1:(\d+) ", up.stdout, re.M)[1])
        _, rs, dr = transaction(port, "shop@example.com", ["someone@example.net"],
                                data=msg_bytes("shop@example.com", "someone@example.net",
                                                  "via the smarthost"))
        assert rs[0].code == 250 and dr.code == 250, (rs, dr)
        sink.wait_messages(1)
        pids = []
        for i in (1, 2):
            helpers.wait_for(lambda i=i: "event=redis_up" in read(f"{d}/node{i}/server.log"), 10,
                             what="redis_up")
            with open(f"{d}/node{i}/posthorn.pid") as f:
                pids.append(int(f.read()))
            with open(f"{d}/node{i}/posthorn.conf") as f:
                conf = f.read()
            assert "nodes = 2" in conf and "redis = redis://127.0.0.1:" in conf
            assert f"smarthost = 127.0.0.73:{farm.port}\nsmarthost_tls = none\n" in conf
            if "postgres = " in conf:  # one secret: the keys are the cluster's
                helpers.wait_for(lambda i=i: "event=node_key name=verp shared=1"
                                 in read(f"{d}/node{i}/server.log"), 10, what="shared keys")
        assert f"-c {d}/node1/posthorn.conf cluster status" in up.stdout
        with open(f"{d}/redis/redis.pid") as f:
            pids.append(int(f.read()))
    finally:
        bad = subprocess.run([os.path.join(root, "scripts/cluster-down.sh"), d, "--kep"],
                             capture_output=True, text=True, timeout=120)
        down = subprocess.run([os.path.join(root, "scripts/cluster-down.sh"), "--keep", d],
                              capture_output=True, text=True, timeout=120)
        farm.stop()
    assert bad.returncode == 2 and "unknown option --kep" in bad.stderr, bad
    assert down.returncode == 0, down.stderr
    assert os.path.exists(d)  # --keep, before DIR too
    again = subprocess.run([os.path.join(root, "scripts/cluster-down.sh"), d],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "pg_ctl" not in again.stderr, again  # stopped already
    assert not os.path.exists(d)
    for pid in pids:
        helpers.wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), 10,
                         what=f"pid {pid} gone")


def test_a_tag_held_by_another_node_is_reported(server_factory, redis):
    """Two nodes whose IDs share the first 3 characters (the queue-ID tag):
    the second to come up logs event=node_tag_clash naming the other."""
    ids = ["7KQ2M0XH4TB9R1VW3CFD", "7KQ9999999999999999A"]
    extra = f"[cluster]\nredis = {redis.url}\nnodes = 2"
    nodes = []
    for nid in ids:
        s = server_factory(extra=extra, start=False)
        os.makedirs(s.data_dir, exist_ok=True)
        with open(s.data_dir + "/node-id", "w") as f:
            f.write(nid + "\n")
        s.start()
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
        nodes.append(s)
    helpers.wait_for(lambda: "event=node_tag_clash" in nodes[1].log(), 10, what="the clash")
    assert f"tag=7KQ node={ids[1]} other={ids[0]} " in nodes[1].log()
    assert "event=node_tag_clash" not in nodes[0].log()
    assert f"event=node id={ids[1]} new=0" in nodes[1].log()
    assert redis.cmd("GET", "posthorn:node-tag:7KQ") == ids[0].encode()


def test_a_hung_redis_times_out_and_falls_back(server_factory, redis):
    """A Redis that stops answering (SIGSTOP) costs a session at most the
    command timeout (500 ms): the reservation is then decided locally at
    1/N, the link is dropped (logged once) and dialled again, and shared
    decisions resume once Redis answers."""
    import signal
    wait_out_of_hour_end()
    [a, _] = cluster(server_factory, redis, 10, n=2)
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert send(a, [f"h{j}@nowhere.test" for j in range(6)], "hung") == (5, 1)
        assert time.monotonic() - t0 < 5
        assert 'event=redis_down host=127.0.0.1' in a.log()
        assert 'error="command timed out"' in a.log()
        assert "event=quota_fallback" in a.log()
        # it is dialled again and again meanwhile (the kernel accepts the
        # connections), but never reported up before it answers
        time.sleep(2.5)
        assert a.log().count("event=redis_up") == 1
        assert a.log().count("event=redis_down") == 1
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    helpers.wait_for(lambda: a.log().count("event=redis_up") == 2, 15, what="redis_up again")
    send(a, ["again@nowhere.test"], "again")
    assert "event=quota_shared" in a.log()
    assert a.log().count("event=redis_down") == 1


def test_a_redis_that_refuses_is_down_and_mail_still_flows(server_factory, tmp_path):
    """A Redis that answers with an error (here: a password is required,
    which Posthorn does not send) is never up: logged once with Redis's
    words, dialled again with backoff, and quotas are decided alone."""
    d = tmp_path / "redis-auth"
    d.mkdir()
    r = Redis(d, extra=["--requirepass", "secret"]).start()
    try:
        extra = f"[quota]\nhour = 4\n[cluster]\nredis = {r.url}\nnodes = 2"
        s = server_factory(extra=extra)
        helpers.wait_for(lambda: "event=redis_down" in s.log(), 10, what="redis_down")
        assert 'error="NOAUTH Authentication required."' in s.log()
        assert send(s, [f"n{j}@nowhere.test" for j in range(3)], "noauth") == (2, 1)
        time.sleep(1.5)  # redialled meanwhile, never up, logged once
        assert "event=redis_up" not in s.log()
        assert s.log().count("event=redis_down") == 1
        assert metric(s, "posthorn_redis_up") == 0
    finally:
        r.stop()
