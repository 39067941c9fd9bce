"""An event batch whose COMMIT outlasts the node's answer deadline
([cluster] postgres_timeout) on a real PostgreSQL 15 (tests/e2e/pg.py):
the node drops the connection and retries the batch, although the server
goes on and commits it. The retry carries the batch's key and finds it
written (docs/events.md, "Durability"): every event is in the database
and at the webhook once, and the counters count it once. A batch whose
COMMIT fails (rolled back, its key with it) is written once by the retry."""
import collections
import time

import pytest

import helpers
from conftest import pg_cluster
from eventsapi import Receiver, events, send
from httpapi import create_key, request

TIMEOUT_S = 2  # the node's postgres_timeout
SLEEP_S = 4    # what each batch's COMMIT takes: past the deadline


def at_commit(name, body):
    """A deferred constraint trigger: `body` (PL/pgSQL) runs at the COMMIT
    of each transaction that wrote an accepted event, once per row."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {body}
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER {name} AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.type = 'accepted')
  EXECUTE FUNCTION {name}();
"""


# The COMMIT of a batch with accepted events takes SLEEP_S seconds (once
# per transaction), and still commits after the node has stopped waiting.
SLOW_COMMIT = at_commit("test_slow_commit", f"""
  IF current_setting('posthorn_test.slept', true) IS DISTINCT FROM 'yes' THEN
    PERFORM set_config('posthorn_test.slept', 'yes', true);
    PERFORM pg_sleep({SLEEP_S});
  END IF;""")
# The first such COMMIT fails (a sequence is not rolled back, so only the
# first): the batch, key and all, is rolled back.
FAILED_COMMIT = "CREATE SEQUENCE test_commits;" + at_commit("test_failed_commit", """
  IF nextval('test_commits') = 1 THEN
    RAISE EXCEPTION 'test: this COMMIT fails';
  END IF;""")
NO_TRIGGERS = ("DROP TRIGGER IF EXISTS test_slow_commit ON events;"
               " DROP TRIGGER IF EXISTS test_failed_commit ON events;")

RCPTS = [[f"r{m}{i}@example.net" for i in range(3)] for m in range(2)]


@pytest.fixture
def pg_node(server_factory):
    """A node on a fresh database; a test adds its trigger (the node has
    made the tables), which is dropped before the node stops."""
    url = pg_cluster().new_db()
    db = url.rsplit("/", 1)[1]
    node = server_factory(cluster={"postgres": url, "postgres_timeout": f"{TIMEOUT_S}s"},
                          extra="[events]\nwebhook_backoff = 1s\nwebhook_timeout = 2s\n")
    try:
        yield node, db
    finally:
        pg_cluster().sql(db, NO_TRIGGERS)  # a node without the fix can stop


def pairs(evs):
    return collections.Counter((e["message_id"], e["recipient"]) for e in evs)


def assert_once(node, db, want):
    assert pairs(events(node, key_of(node), "type=accepted")["events"]) == want
    rows = pg_cluster().sql(db, "SELECT count(*), count(DISTINCT (message_id, recipient))"
                                " FROM events WHERE type = 'accepted'")
    assert rows.strip() == f"{len(want)}|{len(want)}", rows
    counted = pg_cluster().sql(db, "SELECT sum(accepted) FROM event_counters WHERE tag = ''")
    assert counted.strip() == str(len(want)), counted


def key_of(node):
    if not hasattr(node, "key"):
        node.key = create_key(node, "default")
    return node.key


def send_all(node):
    want = collections.Counter()
    for rcpts in RCPTS:
        qid = send(node, rcpts)
        want.update((qid, rc) for rc in rcpts)
    helpers.wait_for(lambda: len(events(node, key_of(node), "type=accepted")["events"]) >= 6,
                     40, what="the accepted events")
    return want


def test_batch_retried_after_late_commit_is_written_once(pg_node):
    node, db = pg_node
    pg_cluster().sql(db, SLOW_COMMIT)
    key = key_of(node)
    receiver = Receiver()
    try:
        r = request(node, "POST", "/v1/webhooks", key=key,
                    body={"url": receiver.url, "types": ["accepted"]})
        assert r.status == 201, r
        want = send_all(node)
        helpers.wait_for(lambda: set(pairs(receiver.events())) >= set(want), 30,
                         what="every event at the webhook")
        time.sleep(SLEEP_S + 2)  # a retry that wrote again would have committed by now
        assert_once(node, db, want)
        assert pairs(receiver.events()) == want, "events sent to the webhook twice"
    finally:
        receiver.close()
    log = node.log()
    # the COMMIT did outlast the deadline, and the retry found its batch written
    assert "event=events_write_error" in log and "postgres_timeout" in log, log[-4000:]
    assert "event=events_written_before" in log, log[-4000:]


def test_batch_whose_commit_failed_is_written_once_by_its_retry(pg_node):
    """The key is written in the batch's transaction: a COMMIT that fails
    takes it back too, so the retry writes the batch (once) rather than
    taking it for written."""
    node, db = pg_node
    pg_cluster().sql(db, FAILED_COMMIT)
    want = send_all(node)
    time.sleep(2)  # a second retry, if there were one, has run
    assert_once(node, db, want)
    assert pg_cluster().sql(db, "SELECT last_value FROM test_commits").strip() != "1"
    log = node.log()
    assert "event=events_write_error" in log and "this COMMIT fails" in log, log[-4000:]
    assert "event=events_written_before" not in log, log[-4000:]
