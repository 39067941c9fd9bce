"""An event batch whose COMMIT outlasts the node's answer deadline
([cluster] postgres_timeout) on a real PostgreSQL 15 (tests/e2e/pg.py):
the node drops the connection and retries the batch, although the server
goes on and commits it. The retry carries the batch's key and finds it
written (docs/events.md, "Durability"): every event is in the database
and at the webhook once, and the counters count it once."""
import collections
import time

import pytest

import helpers
from conftest import pg_cluster
from eventsapi import Receiver, events, send
from httpapi import create_key, request

TIMEOUT_S = 2  # the node's postgres_timeout
SLEEP_S = 4    # what each batch's COMMIT takes: past the deadline

# A deferred constraint trigger runs at COMMIT: it makes the COMMIT of a
# batch with accepted events take SLEEP_S seconds (once per transaction),
# and the COMMIT still commits after the node has stopped waiting.
SLOW_COMMIT = f"""
CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('posthorn_test.slept', true) IS DISTINCT FROM 'yes' THEN
    PERFORM set_config('posthorn_test.slept', 'yes', true);
    PERFORM pg_sleep({SLEEP_S});
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.type = 'accepted')
  EXECUTE FUNCTION test_slow_commit();
"""
FAST_COMMIT = "DROP TRIGGER test_slow_commit ON events; DROP FUNCTION test_slow_commit();"

RCPTS = [[f"r{m}{i}@example.net" for i in range(3)] for m in range(2)]


@pytest.fixture
def slow_node(server_factory):
    url = pg_cluster().new_db()
    db = url.rsplit("/", 1)[1]
    node = server_factory(cluster={"postgres": url, "postgres_timeout": f"{TIMEOUT_S}s"},
                          extra="[events]\nwebhook_backoff = 1s\nwebhook_timeout = 2s\n")
    pg_cluster().sql(db, SLOW_COMMIT)  # the node has made the tables
    try:
        yield node, db
    finally:
        pg_cluster().sql(db, FAST_COMMIT)  # a node without the fix can stop


def pairs(evs):
    return collections.Counter((e["message_id"], e["recipient"]) for e in evs)


def test_batch_retried_after_late_commit_is_written_once(slow_node):
    node, db = slow_node
    key = create_key(node, "default")
    receiver = Receiver()
    try:
        r = request(node, "POST", "/v1/webhooks", key=key,
                    body={"url": receiver.url, "types": ["accepted"]})
        assert r.status == 201, r
        want = collections.Counter()
        for rcpts in RCPTS:
            qid = send(node, rcpts)
            want.update((qid, rc) for rc in rcpts)
        helpers.wait_for(lambda: len(events(node, key, "type=accepted")["events"]) >= 6,
                         40, what="the accepted events")
        helpers.wait_for(lambda: set(pairs(receiver.events())) >= set(want), 30,
                         what="every event at the webhook")
        time.sleep(SLEEP_S + 2)  # a retry that wrote again would have committed by now
        assert pairs(events(node, key, "type=accepted")["events"]) == want
        assert pairs(receiver.events()) == want, "events sent to the webhook twice"
        rows = pg_cluster().sql(db, "SELECT count(*), count(DISTINCT (message_id, recipient))"
                                    " FROM events WHERE type = 'accepted'")
        assert rows.strip() == "6|6", rows
        counted = pg_cluster().sql(db, "SELECT sum(accepted) FROM event_counters"
                                       " WHERE tag = ''")
        assert counted.strip() == "6", counted
    finally:
        receiver.close()
    log = node.log()
    # the COMMIT did outlast the deadline, and the retry found its batch written
    assert "event=events_write_error" in log and "postgres_timeout" in log, log[-4000:]
    assert "event=events_written_before" in log, log[-4000:]
