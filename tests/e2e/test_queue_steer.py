"""Steering the queue with the real CLI (docs/queue.md): queue hold,
release, retry and delete, pause and resume, on a running server (through
its control socket) and on a stopped one (on the spool, under its lock),
against fake MX hosts that count what they are offered."""
import fcntl
import json
import os
import re
import subprocess
import time

import pytest

import helpers
import spoolgen
from mx import dns, farm, mxs, start, wait_rcpts, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
A_IP = "127.0.0.51"  # a.test
B_IP = "127.0.0.52"  # b.test
C_IP = "127.0.0.53"  # c.test
QUIET = 1.5  # seconds to watch that nothing is delivered


def build_zone():
    from mx import Zone
    z = Zone()
    for dom, ip in (("sender.test", SENDER_IP), ("a.test", A_IP), ("b.test", B_IP),
                    ("c.test", C_IP)):
        z.mx(dom, f"mx.{dom}", 10).host(f"mx.{dom}", ip)
    return z


def send(s, rcpts, frm="s@sender.test"):
    return helpers.send_raw_message(s.port, frm, rcpts, helpers.message(frm=frm, to=rcpts[0]))


def cli(s, *args, rc=0):
    got, out, err = s.cli(*args)
    assert got == rc, (args, got, out, err)
    return out, err


def show(s, qid):
    out, _ = cli(s, "queue", "show", qid, "--json")
    return {r["address"]: r for r in json.loads(out)["recipients"]}


def test_hold_release_running(start, mxs):
    a, b = mxs(A_IP), mxs(B_IP)
    s = start(extra="[domain.*]\nmax_connections = 1")
    cli(s, "pause", "--all")  # nothing leaves until the holds are in place
    q1 = send(s, ["x@a.test", "y@b.test"])
    q2 = send(s, ["z@a.test"])
    out, err = cli(s, "queue", "hold", "--domain", "A.TEST")
    assert out == "2\n" and "held 2 recipients of 2 messages" in err
    cli(s, "resume", "--all")
    wait_rcpts(b, ["y@b.test"], s)
    time.sleep(QUIET)
    assert a.delivered_rcpts() == [] and a.connections == 0
    assert show(s, q1)["x@a.test"]["state"] == "held"
    log = s.log()
    for q, r in ((q1, "x@a.test"), (q2, "z@a.test")):
        assert f"queue={q} event=held to=<{r}> by=cli" in log
    out, _ = cli(s, "queue", "list", "--state", "held")
    assert q1 in out and q2 in out and "2 held" in out
    # a hold outlives a restart
    s.restart()
    time.sleep(QUIET)
    assert a.connections == 0
    out, err = cli(s, "queue", "release", q1)
    assert out == "1\n"
    wait_rcpts(a, ["x@a.test"], s)
    assert "z@a.test" not in a.delivered_rcpts()
    assert re.search(rf"queue={q1} event=released to=<x@a.test> held=\d+ by=cli", s.log())
    cli(s, "queue", "release", "--domain", "a.test")
    wait_rcpts(a, ["z@a.test"], s)
    assert len(a.delivered_rcpts()) == 2  # each once


def test_stopped_server_hold_delete_journal(start, mxs):
    a, b = mxs(A_IP), mxs(B_IP)
    s = start()
    cli(s, "pause", "--all")
    q1 = send(s, ["x@a.test", "y@b.test"])
    q2 = send(s, ["z@b.test"])
    s.stop()
    out, err = cli(s, "queue", "hold", q2)
    assert out == "1\n"
    out, err = cli(s, "queue", "delete", "--domain", "a.test")
    assert out == "1\n"
    assert f"queue={q1} event=deleted to=<x@a.test> by=cli offline=1" in err
    assert os.path.exists(os.path.join(s.data_dir, "spool", "deleted"))
    assert show(s, q1)["x@a.test"]["state"] == "deleted"
    assert show(s, q1)["y@b.test"]["state"] == "pending"
    cli(s, "resume", "--all")
    s.start()
    log = s.log()
    assert re.search(rf"queue={q1} event=deleted to=<x@a.test> by=cli offline=1 deleted_at=\d+",
                     log)
    assert not os.path.exists(os.path.join(s.data_dir, "spool", "deleted"))
    wait_rcpts(b, ["y@b.test"], s)
    time.sleep(QUIET)
    assert a.connections == 0 and "z@b.test" not in b.delivered_rcpts()
    helpers.wait_for(lambda: q1 not in cli(s, "queue", "list")[0], what=f"{q1} done")
    cli(s, "queue", "release", q2)
    wait_rcpts(b, ["z@b.test"], s)


def test_delete_running_logs_each_recipient(start, mxs):
    mxs(A_IP)
    s = start()
    cli(s, "pause", "a.test")
    ids = [send(s, ["p@a.test", "q@a.test"]) for _ in range(3)]
    out, err = cli(s, "queue", "delete", ids[0], ids[1])
    assert out == "4\n" and "deleted 4 recipients of 2 messages" in err
    log = s.log()
    for q in ids[:2]:
        for r in ("p@a.test", "q@a.test"):
            assert f"queue={q} event=deleted to=<{r}> by=cli" in log
    out, _ = cli(s, "queue", "list", "--json")
    assert [json.loads(l)["id"] for l in out.splitlines()] == [ids[2]]
    # an unknown ID: the others are done, the exit code says one was not
    out, err = cli(s, "queue", "delete", ids[2], "1L94W0FC000061K5", rc=1)
    assert out == "2\n" and "no message 1L94W0FC000061K5" in err
    out, _ = cli(s, "queue", "list", "--json")
    assert out == ""


def test_bulk_delete_progress_in_slices(start):
    s = start(start=False)
    n = 12000
    ids = spoolgen.make_queue(s.data_dir, n, lambda i: [f"r{i}@bulk.test"])
    with open(os.path.join(s.data_dir, "paused"), "w") as f:
        f.write("bulk.test\n")
    s.start()
    t0 = time.monotonic()
    p = subprocess.Popen([s.bin, "-c", s.conf, "queue", "delete", "--all"], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    slowest = 0.0
    with helpers.RawSMTP(s.port) as c:  # the loop answers all along
        c.ehlo()
        while p.poll() is None:
            t = time.monotonic()
            assert c.cmd("NOOP").code == 250
            slowest = max(slowest, time.monotonic() - t)
            time.sleep(0.01)
    out, err = p.communicate()
    took = time.monotonic() - t0
    assert p.returncode == 0, err
    assert out == f"{n}\n"
    assert err.count("posthorn: delete: ") == 1 and "delete: 10000 of 12000 messages" in err
    assert s.log().count("event=deleted to=<r") == n
    assert not os.listdir(os.path.join(s.data_dir, "spool", "queue"))
    print(f"deleted {n} messages through the server in {took:.1f}s; "
          f"slowest NOOP meanwhile {slowest * 1000:.0f} ms")
    assert slowest < 0.5
    assert len(ids) == n


def test_retry_is_not_an_attempt(start, mxs):
    a = mxs(A_IP, defer_always=True)
    s = start(relay={"retry": "1h"})
    qid = send(s, ["x@a.test"])
    wait_status(s, qid, "x@a.test", "deferred")
    before = show(s, qid)["x@a.test"]
    assert before["attempts"] == 1
    a.defer_always = False
    out, _ = cli(s, "queue", "retry", qid)
    assert out == "1\n"
    wait_rcpts(a, ["x@a.test"], s)
    line = [l for l in s.log().splitlines() if "status=sent" in l and qid in l][0]
    assert "attempt=1 retry=manual" in line


def test_retry_on_a_stopped_server(start, mxs):
    a = mxs(A_IP, defer_always=True)
    s = start(relay={"retry": "1h"})
    qid = send(s, ["x@a.test"])
    wait_status(s, qid, "x@a.test", "deferred")
    s.stop()
    out, _ = cli(s, "queue", "retry", "--all")
    assert out == "1\n"
    s.start()
    helpers.wait_for(lambda: s.log().count(f"queue={qid} event=delivery") == 2,
                     what="the manual attempt")
    line = s.log().splitlines()
    assert any("retry=manual status=deferred" in l for l in line if qid in l)
    assert show(s, qid)["x@a.test"]["attempts"] == 1  # still one of the schedule
    assert a.rcpt_tries["x@a.test"] == 2


def test_retry_of_a_message_not_queued(start, mxs):
    """docs/cli.md: a queue ID that is not queued is reported and makes the exit code 1,
    for retry as for hold, release and delete, on a running server and a stopped one."""
    a = mxs(A_IP, defer_always=True)
    s = start(relay={"retry": "1h"})
    qid = send(s, ["x@a.test"])
    wait_status(s, qid, "x@a.test", "deferred")
    cli(s, "queue", "delete", qid)
    for running in (True, False):
        if not running:
            s.stop()
        out, err = cli(s, "queue", "retry", qid, rc=1)
        assert (out, err) == ("", f"posthorn: no message {qid}\n"), (running, out, err)
        _, err = cli(s, "queue", "hold", qid, rc=1)
        assert f"posthorn: no message {qid}\n" in err, (running, err)
    assert a


def test_pause_resume(start, mxs):
    a, b = mxs(A_IP), mxs(B_IP)
    s = start()
    out, err = cli(s, "pause", "a.test")
    assert out == "" and "a.test paused" in err
    q = send(s, ["x@a.test", "y@b.test"])
    wait_rcpts(b, ["y@b.test"], s)
    time.sleep(QUIET)
    assert a.connections == 0
    out, _ = cli(s, "queue", "list")
    assert "-- delivery paused: a.test" in out
    out, err = cli(s, "stats", "--json")
    assert json.loads(out)["paused"] == {"all": False, "destinations": ["a.test"]}
    _, err = cli(s, "stats")
    assert "delivery paused: a.test" in err
    s.restart()  # kept in the data directory
    time.sleep(QUIET)
    assert a.connections == 0 and "event=paused dest=a.test" in s.log()
    cli(s, "pause", "--all")
    _, err = cli(s, "resume", "a.test", rc=1)
    assert "resume --all first" in err
    out, err = cli(s, "resume", "--all")
    assert "every destination resumed" in err
    wait_rcpts(a, ["x@a.test"], s)
    assert q
    _, err = cli(s, "resume", "a.test")
    assert "a.test was not paused" in err


def test_lock_while_a_server_starts(server_factory):
    """The server holds the spool but does not answer its control socket
    (as while it starts): the CLI does not write behind its back."""
    s = server_factory(start=False)
    os.makedirs(os.path.join(s.data_dir, "spool"), exist_ok=True)
    with open(os.path.join(s.data_dir, "spool", "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _, err = cli(s, "queue", "delete", "--all", rc=1)
        assert "in use" in err and "try again" in err
        _, err = cli(s, "queue", "retry", "--all", rc=1)
        assert "try again" in err


@pytest.mark.parametrize("args,why", [
    (("queue", "hold"), "takes queue IDs"),
    (("queue", "hold", "--all"), "unknown option"),
    (("queue", "release", "1L94W0FC000061K5", "--domain", "a.test"), "takes queue IDs"),
    (("queue", "delete", "nope"), "invalid queue ID"),
    (("queue", "delete", "--domain", ""), "needs a domain"),
    (("queue", "retry", "1L94W0FC000061K5", "--all"), "a queue ID or --all"),
    (("pause",), "a domain or --all"),
    (("pause", "a..b"), "not a domain"),
    (("resume", "x.test", "--all"), "a domain or --all"),
])
def test_usage_errors(server_factory, args, why):
    s = server_factory(start=False)
    _, err = cli(s, *args, rc=2)
    assert why in err, err


def test_server_stops_during_a_bulk_delete(start):
    """SIGTERM while a bulk delete runs: the server stops cleanly (the
    operation is cut between slices), the CLI says so, and what is left is
    whole: every message either deleted, and logged, or queued and readable."""
    s = start(start=False)
    n = 30000
    spoolgen.make_queue(s.data_dir, n, lambda i: [f"r{i}@bulk.test"])
    with open(os.path.join(s.data_dir, "paused"), "w") as f:
        f.write("bulk.test\n")
    s.start()
    p = subprocess.Popen([s.bin, "-c", s.conf, "queue", "delete", "--all"], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    helpers.wait_for(lambda: s.log().count("event=deleted to=") >= 3000, timeout=60,
                     what="the delete under way")
    s.stop()
    out, err = p.communicate(timeout=90)
    deleted = s.log().count("event=deleted to=")
    left = len(os.listdir(os.path.join(s.data_dir, "spool", "queue")))
    assert 0 < deleted < n and left == n - deleted, (deleted, left)
    assert p.returncode == 1 and ("stopped answering" in err or "stopping" in err), err
    s.start()
    assert f"event=spool_recovered messages={left} tmp_removed=0 quarantined=0" in s.log()
