"""Events across nodes (docs/events.md, "More than one node"): three
`posthorn serve` share one real PostgreSQL 15 database (tests/e2e/pg.py).
Mail sent through all three at once makes events that every node's writer
commits concurrently; /v1/events pages, read through one node while they
are written, see each of them once, in id order, with no gap. API keys made
by three CLIs at once all get their own id. A webhook receives each event
exactly once while three nodes dispatch; a node killed in the middle of a
POST gives the batch up to another node when its claim runs out."""
import collections
import http.server
import subprocess
import threading
import time

import pytest

import helpers
import pg
from conftest import pg_cluster
from eventsapi import Receiver, events, send
from httpapi import create_key, request

FAST = "[events]\nwebhook_backoff = 1s\nwebhook_timeout = 2s\n"

PER_NODE = 25


@pytest.fixture
def cluster_db():
    return pg_cluster().new_db()


@pytest.fixture
def three(server_factory, cluster_db):
    servers = [server_factory(start=False, cluster={"postgres": cluster_db}, extra=FAST)
               for _ in range(3)]
    for s in servers:
        s.start(wait=False)
    for s in servers:
        assert s.wait_ready(), s.log()
    return servers


def sender(node, tag, sent, errors):
    try:
        for i in range(PER_NODE):
            rcpts = [f"r{i}a.{tag}@example.net", f"r{i}b.{tag}@example.net"]
            qid = send(node, rcpts, subject=f"{tag} {i}")
            sent.extend((qid, r) for r in rcpts)
    except Exception as e:  # reported by the main thread
        errors.append(e)


def send_through_all(nodes, sent):
    """PER_NODE messages of 2 recipients through each node, all at once."""
    errors = []
    threads = [threading.Thread(target=sender, args=(n, f"n{i}", sent, errors))
               for i, n in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(sent) == len(nodes) * PER_NODE * 2


def poll(node, key, stop, seen):
    """What a client polling with `after` sees while the events arrive."""
    after = ""
    while True:
        last = stop.is_set()
        doc = events(node, key, f"type=accepted&limit=7{after}")
        seen.extend((e["id"], e["message_id"], e["recipient"]) for e in doc["events"])
        if doc["next"]:
            after = f"&after={doc['next']}"
        if last and len(doc["events"]) < 7:
            return


def wait_accepted(node, key, n):
    def all_written():
        doc = events(node, key, "type=accepted&limit=1000")
        return doc["events"] if len(doc["events"]) >= n else None
    return helpers.wait_for(all_written, 30, what="every accepted event")


def test_events_written_by_three_nodes_page_without_gaps_or_repeats(three):
    key = create_key(three[0], "default")
    sent, seen, stop = [], [], threading.Event()
    reader = threading.Thread(target=poll, args=(three[1], key, stop, seen))
    reader.start()
    send_through_all(three, sent)
    want = sorted(sent)

    final = wait_accepted(three[2], key, len(want))
    stop.set()
    reader.join(60)
    assert not reader.is_alive()
    ids = [e["id"] for e in final]
    assert ids == sorted(set(ids)), "ids repeat or are out of order"
    assert sorted((e["message_id"], e["recipient"]) for e in final) == want
    # the poller, reading while three writers committed, saw each event once
    # and in id order: no id was committed behind its cursor
    assert [s[0] for s in seen] == ids
    for n in three:
        assert "events_write_error" not in n.log(), n.log()


def test_api_keys_made_by_three_clis_at_once_get_distinct_ids(three, cluster_db):
    procs = []
    for i in range(10):
        for n, s in enumerate(three):
            procs.append(subprocess.Popen(
                [s.bin, "-c", s.conf, "apikey", "create", "default", "--name", f"k{n}-{i}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 30, outs
    assert len({out.strip() for out, _ in outs}) == 30
    db = cluster_db.rsplit("/", 1)[1]
    counts = pg_cluster().sql(db, "SELECT count(DISTINCT id), count(*) FROM api_keys"
                                  " WHERE name LIKE 'k%'")
    assert counts.strip() == "30|30", counts


def hold_events_lock(db, seconds):
    """Another node's event writer in the middle of its batch: a session
    holding the events' advisory lock (store_tx_serial's key) for a while."""
    c = pg_cluster()
    p = subprocess.Popen([f"{pg.PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(c.port), "-U", pg.USER,
                          "-d", db, "-c",
                          f"SELECT pg_advisory_lock(1886352244, 1); SELECT pg_sleep({seconds})"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    helpers.wait_for(lambda: c.sql(db, "SELECT count(*) FROM pg_locks WHERE locktype ="
                                       " 'advisory' AND granted").strip() != "0",
                     10, what="the events lock taken")
    return p


def test_event_writer_waiting_for_another_node_holds_up_no_rcpt(server_factory, cluster_db):
    """The event writer has a connection of its own: while it waits for
    another node's writer, RCPT (whose suppression check reads the
    database) is answered at once, not after that wait."""
    node = server_factory(cluster={"postgres": cluster_db})
    key = create_key(node, "default")
    holder = hold_events_lock(cluster_db.rsplit("/", 1)[1], 6)
    try:
        send(node, ["first@example.net"])  # its events: the writer's batch now waits
        time.sleep(0.5)
        t0 = time.monotonic()
        for i in range(3):
            send(node, [f"next{i}@example.net"])
        took = time.monotonic() - t0
    finally:
        holder.wait(30)
    assert took < 2, f"3 messages took {took:.1f} s while the event writer waited"
    assert len(wait_accepted(node, key, 4)) == 4  # written once the lock was free
    assert "events_write_error" not in node.log(), node.log()


def make_hook(node, key, url):
    r = request(node, "POST", "/v1/webhooks", key=key, body={"url": url, "types": ["accepted"]})
    assert r.status == 201, r
    return r.json()


def test_webhook_gets_each_event_once_while_three_nodes_dispatch(three):
    key = create_key(three[0], "default")
    receiver = Receiver()
    try:
        make_hook(three[1], key, receiver.url)
        sent = []
        send_through_all(three, sent)
        want = {e["id"] for e in wait_accepted(three[0], key, len(sent))}
        assert len(want) == len(sent)
        helpers.wait_for(lambda: {e["id"] for e in receiver.events()} >= want, 30,
                         what="every event at the webhook")
        time.sleep(3)  # a few more rounds of every node's dispatcher
        got = collections.Counter(e["id"] for e in receiver.events())
        assert set(got) == want
        assert [i for i, n in got.items() if n > 1] == [], "events sent twice"
    finally:
        receiver.close()


class HangingReceiver:
    """A webhook endpoint whose first POST gets no answer until release()."""

    def __init__(self):
        self.posts, self.gate, self.lock = [], threading.Event(), threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.posts.append((time.monotonic(), body))
                    first = len(outer.posts) == 1
                if first:
                    outer.gate.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def bodies(self):
        with self.lock:
            return [b for _, b in self.posts]

    def close(self):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_node_killed_mid_post_gives_the_batch_to_another_node(server_factory, cluster_db):
    slow = "[events]\nwebhook_backoff = 1s\nwebhook_timeout = 8s\n"  # claims last 18 s
    n1, n2, n3 = [server_factory(start=False, cluster={"postgres": cluster_db}, extra=slow)
                  for _ in range(3)]
    n1.start()
    key = create_key(n1, "default")
    receiver = HangingReceiver()
    try:
        make_hook(n1, key, receiver.url)
        qid = send(n1, ["one@example.net"])
        helpers.wait_for(lambda: receiver.bodies(), 20, what="node 1's POST")
        claimed = time.monotonic()
        n2.start()
        n3.start()
        time.sleep(2)  # node 1 alive, its POST unanswered: nobody else sends
        assert len(receiver.bodies()) == 1
        assert time.monotonic() - claimed < 8  # node 1 has not given up its POST yet
        n1.kill9()
        again = helpers.wait_for(lambda: receiver.bodies()[1:], 40,
                                 what="the batch sent again by another node")
        # not before node 1's claim (webhook_timeout + 10 s) ran out
        assert receiver.posts[1][0] - claimed >= 16
        assert again[0] == receiver.bodies()[0] and qid.encode() in again[0]
        time.sleep(2)
        assert len(receiver.bodies()) == 2  # the survivor's POST was answered: once
    finally:
        receiver.close()
