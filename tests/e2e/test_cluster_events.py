"""Events across nodes (docs/events.md, "More than one node"): three
`posthorn serve` share one real PostgreSQL 15 database (tests/e2e/pg.py).
Mail sent through all three at once makes events that every node's writer
commits concurrently; /v1/events pages, read through one node while they
are written, see each of them once, in id order, with no gap. API keys made
by three CLIs at once all get their own id."""
import subprocess
import threading

import pytest

import helpers
from conftest import pg_cluster
from eventsapi import events, send
from httpapi import create_key

PER_NODE = 25


@pytest.fixture
def cluster_db():
    return pg_cluster().new_db()


@pytest.fixture
def three(server_factory, cluster_db):
    servers = [server_factory(start=False, cluster={"postgres": cluster_db}) for _ in range(3)]
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


def test_events_written_by_three_nodes_page_without_gaps_or_repeats(three):
    key = create_key(three[0], "default")
    sent, errors, seen, stop = [], [], [], threading.Event()
    reader = threading.Thread(target=poll, args=(three[1], key, stop, seen))
    reader.start()
    threads = [threading.Thread(target=sender, args=(n, f"n{i}", sent, errors))
               for i, n in enumerate(three)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    want = sorted(sent)
    assert len(want) == 3 * PER_NODE * 2

    def all_written():
        doc = events(three[2], key, "type=accepted&limit=1000")
        return doc["events"] if len(doc["events"]) >= len(want) else None
    final = helpers.wait_for(all_written, 30, what="every accepted event")
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
