"""A clean stop while PostgreSQL is down (issue 14; docs/cluster.md "Cluster
status"). PostgreSQL stopped (connections refused): SIGTERM ends the node
within a few seconds, its spool intact (the stopped mark of its heartbeat
row fails and is logged). PostgreSQL hung (its processes SIGSTOPped, so
the kernel still accepts and acknowledges every byte, and no TCP timeout
fires): every call's answer has a deadline of our own ([cluster]
postgres_timeout; 12 s once stopping), so the stop is not held, new mail
gets 451 4.3.0 within the deadline, and the node recovers when the
database answers again (src/db/db_pg_wait.c)."""
import os
import signal
import time

import helpers
from conftest import pg_cluster
from deliv import transaction
from test_cluster_status import node_id, wait_state

STOP_WITHIN = 5
HUNG_STOP_WITHIN = 16


def spool_files(srv):
    out = []
    for root, _, files in os.walk(os.path.join(srv.data_dir, "spool")):
        out += [os.path.join(root, f) for f in files]
    return sorted(out)


def node_with_mail(server_factory):
    """A node on a fresh PostgreSQL database, up, with one deferred message
    in its spool; returns (server, spool files)."""
    s = server_factory(cluster={"postgres": pg_cluster().new_db()})
    me = node_id(s)
    wait_state(s, lambda b: me in b and b[me]["state"] == "up", 10, "the first heartbeat")
    _, rs, data = transaction(s.port, "shop@example.com", ["a@unreachable.test"],
                              helpers.message("kept").encode())
    assert data.code == 250, data
    helpers.wait_for(lambda: "status=deferred" in s.log(), 10, what="the deferral")
    files = spool_files(s)
    assert files
    return s, files


def sigterm_and_time(s, within=STOP_WITHIN):
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(within * 2)
    return time.monotonic() - t0


def test_stop_with_postgres_stopped(server_factory):
    pgc = pg_cluster()
    s, files = node_with_mail(server_factory)
    pgc.stop()
    try:
        took = sigterm_and_time(s)
        assert took < STOP_WITHIN and s.proc.returncode == 0, s.log()[-2000:]
        assert spool_files(s) == files
        assert "event=node_stop_error" in s.log() and "event=stopped" in s.log()
    finally:
        pgc.start()


def pg_pids(pgc):
    """The postmaster and its children."""
    with open(os.path.join(pgc.data, "postmaster.pid")) as f:
        master = int(f.readline())
    kids = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                    kids.append(int(p))
        except OSError:
            pass
    return [master] + kids


def signal_all(pids, sig):
    """sig to each of pids; one that has exited meanwhile (a backend of a
    CLI that just closed its connection, reaped once the postmaster runs
    again) is no longer there to stop or continue."""
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def test_stop_with_postgres_hung(server_factory):
    pgc = pg_cluster()
    s, files = node_with_mail(server_factory)
    pids = pg_pids(pgc)
    signal_all(pids, signal.SIGSTOP)
    try:
        # a wait under way ends within 12 s of the stop (lock_timeout and a
        # margin), and nothing reconnects then
        took = sigterm_and_time(s, HUNG_STOP_WITHIN)
        assert took < HUNG_STOP_WITHIN and spool_files(s) == files
    finally:
        signal_all(pids, signal.SIGCONT)
        s.proc.wait(60)


def test_hung_postgres_gets_451_within_the_deadline_then_recovers(server_factory):
    """A silent database: RCPT (which needs the suppression list) answers
    451 4.3.0 once postgres_timeout (2 s here) has passed, not never; the
    dropped connection is opened again when the server answers."""
    pgc = pg_cluster()
    s = server_factory(cluster={"postgres": pgc.new_db(), "postgres_timeout": "2s"})
    me = node_id(s)
    wait_state(s, lambda b: me in b and b[me]["state"] == "up", 10, "the first heartbeat")
    pids = pg_pids(pgc)
    signal_all(pids, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        _, rs, _ = transaction(s.port, "shop@example.com", ["a@example.net"])
        took = time.monotonic() - t0
        assert rs and rs[0].code == 451 and "4.3.0" in rs[0].text, rs
        assert took < 8, took  # a deadline of 2 s per call, a few calls at most
    finally:
        signal_all(pids, signal.SIGCONT)
    assert "no answer from the database server in time" in s.log()

    def accepted():
        _, rs2, _ = transaction(s.port, "shop@example.com", ["b@example.net"])
        return rs2 and rs2[0].code == 250

    helpers.wait_for(accepted, 15, what="RCPT accepted again after PostgreSQL answers")
