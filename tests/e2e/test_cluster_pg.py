"""SPEC §8 with PostgreSQL (docs/cluster.md): several `posthorn serve`, each
with its own data_dir and spool, sharing one real PostgreSQL 15 database
(tests/e2e/pg.py) through `[cluster] postgres`. An account made with the
CLI against node 1's config AUTHs and sends on node 3; a suppression added
through node 2's API refuses RCPT on node 1 within a second; processes
that start together on an empty database apply each migration once; a
database that is not there is a clear error, not a silent SQLite file."""
import asyncio
import base64
import os
import re
import subprocess
import threading
import time

import pytest

import helpers
from conftest import free_port, pg_cluster
from deliv import transaction
from httpapi import create_key, request

MIGRATED = re.compile(r"event=store_migrate db=(\S+) from=(\d+) to=(\d+)")


@pytest.fixture
def cluster_db():
    return pg_cluster().new_db()


@pytest.fixture
def nodes(server_factory, cluster_db):
    """make(n) -> n stopped servers sharing one fresh database."""
    def make(n):
        return [server_factory(start=False, cluster={"postgres": cluster_db}) for _ in range(n)]
    return make


def start_together(servers):
    for s in servers:
        s.start(wait=False)
    for s in servers:
        assert s.wait_ready(), s.log()


def auth_plain(port, user, password):
    with helpers.RawSMTP(port) as c:
        c.ehlo()
        tok = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return c.cmd("AUTH PLAIN " + tok)


def test_account_made_on_node1_sends_on_node3(nodes):
    n1, n2, n3 = nodes(3)
    n1.add_user("carol", "node one made me", domains=("carol.test",))
    assert not os.path.exists(os.path.join(n1.data_dir, "posthorn.db"))
    start_together([n1, n2, n3])
    assert auth_plain(n3.port, "carol", "wrong password").code == 535
    msg = helpers.message("across nodes", frm="me@carol.test", to="you@example.net").encode()
    mail, rcpts, data = transaction(n3.port, "me@carol.test", ["you@example.net"], msg,
                                    login=("carol", "node one made me"))
    assert mail.code == 250 and [r.code for r in rcpts] == [250] and data.code == 250, data
    assert helpers.queued_id(data.text) in n3.queue()
    assert not n1.queue() and not n2.queue()  # each node keeps its own spool
    # and a password changed on node 2 is the one node 3 checks next
    rc, _, err = n2.cli("user", "passwd", "carol", "--password-stdin", input="second one\n")
    assert rc == 0, err
    assert auth_plain(n3.port, "carol", "node one made me").code == 535
    assert auth_plain(n3.port, "carol", "second one").code == 235


def test_suppression_added_on_node2_refuses_rcpt_on_node1(nodes):
    n1, n2 = nodes(2)
    start_together([n1, n2])
    key = create_key(n1, "default")  # made through node 1, used on node 2
    addr = "gone@far.test"
    _, before, _ = transaction(n1.port, "shop@example.com", [addr])
    assert [r.code for r in before] == [250], before
    r = request(n2, "POST", "/v1/suppressions", key=key,
                body={"address": addr, "reason": "complaint"})
    assert r.status == 201, r
    added = time.monotonic()

    def refused():
        _, rs, _ = transaction(n1.port, "shop@example.com", [addr])
        return rs[0] if rs[0].code != 250 else None
    r = helpers.wait_for(refused, 5, interval=0.05, what="RCPT refused on node 1")
    assert time.monotonic() - added <= 1.0
    assert r.code == 550 and r.text.startswith("5.1.1") and "complaint" in r.text, r
    # and its removal through node 1's CLI opens it on node 2
    rc, _, err = n1.cli("suppress", "remove", addr, "--account", "default")
    assert rc == 0, err
    _, after, _ = transaction(n2.port, "shop@example.com", [addr])
    assert [r.code for r in after] == [250], after


def test_migrations_run_once_when_processes_start_together(nodes, cluster_db):
    servers = nodes(3)
    procs = []
    for s in servers:  # three CLI commands at once on an empty database
        procs.append(subprocess.Popen([s.bin, "-c", s.conf, "user", "list"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    # one of them migrated, from nothing to the latest version; the others
    # waited for the lock and found nothing to do
    done = [(int(m.group(2)), int(m.group(3))) for _, err in outs for m in MIGRATED.finditer(err)]
    assert len(done) == 1 and done[0][0] == 0 and done[0][1] >= 13, outs
    db = cluster_db.rsplit("/", 1)[1]
    assert pg_cluster().sql(db, "SELECT version FROM posthorn_schema").split() == \
        [str(done[0][1])]
    # the built-in account exists once, made by the one who migrated
    assert pg_cluster().sql(db, "SELECT count(*) FROM accounts WHERE name = 'default'").strip() \
        == "1"
    # and servers started together afterwards migrate nothing
    start_together(servers)
    for s in servers:
        assert "store_migrate" not in s.log()


def test_database_not_there_is_an_error(server_factory):
    """A [cluster] postgres nobody listens at: the CLI and the server say so,
    with the URL (without its password), and fall back to nothing."""
    url = f"postgresql://posthorn:s3cret@127.0.0.1:{free_port()}/posthorn"
    s = server_factory(start=False, cluster={"postgres": url})
    rc, out, err = s.cli("user", "list")
    assert rc != 0
    assert "cannot connect" in err and "s3cret" not in err
    assert "postgresql://posthorn:****@127.0.0.1" in err
    assert not os.path.exists(os.path.join(s.data_dir, "posthorn.db"))
    p = subprocess.run([s.bin, "serve", "-c", s.conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "cannot connect" in p.stderr and "s3cret" not in p.stderr


class GatedSink:
    """An aiosmtpd peer whose DATA waits until open() is called."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.gate, self.messages, self.waiting = threading.Event(), [], False
        self.contents = []
        self.port = free_port()
        self.ctl = Controller(self, hostname="127.0.0.1", port=self.port)
        self.ctl.start()

    async def handle_DATA(self, server, session, envelope):
        self.waiting = True
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        self.contents.append(envelope.original_content or envelope.content)
        self.messages.append(envelope.rcpt_tos)
        return "250 2.0.0 taken"

    def close(self):
        self.gate.set()
        self.ctl.stop()


def test_database_down_451_for_new_mail_queued_mail_delivered_then_recovers(server_factory,
                                                                            cluster_db):
    sink = GatedSink()
    pgc = pg_cluster()
    try:
        n = server_factory(cluster={"postgres": cluster_db},
                           relay={"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "none"})
        msg = helpers.message("before the outage", to="a@dest.test").encode()
        _, rs, dr = transaction(n.port, "shop@example.com", ["a@dest.test"], msg)
        assert dr is not None and dr.code == 250, (rs, dr)
        helpers.wait_for(lambda: sink.waiting, 10, what="the delivery's DATA")
        pgc.stop()
        try:
            sink.gate.set()  # the delivery of the spooled message ends during the outage
            helpers.wait_for(lambda: sink.messages, 20, what="delivery during the outage")
            helpers.wait_for(lambda: "status=sent" in n.log(), 20, what="status=sent")
            _, rs, _ = transaction(n.port, "shop@example.com", ["b@dest.test"])
            assert rs[0].code == 451 and rs[0].text.startswith("4.3.0"), rs
        finally:
            pgc.start()

        def accepted():
            _, rs, _ = transaction(n.port, "shop@example.com", ["c@dest.test"])
            return rs[0].code == 250
        helpers.wait_for(accepted, 10, what="RCPT accepted again after the database is back")
    finally:
        sink.close()


def test_dkim_key_made_on_node1_signs_on_node2(server_factory, cluster_db, tmp_path):
    """With [cluster] secret_key_file, a key made by node 1's CLI is kept in
    the database sealed (no PEM text in it) and node 2, which has no key
    file, signs with it; a node with another secret cannot open it."""
    secret = tmp_path / "secret.key"
    secret.write_text(os.urandom(32).hex() + "\n")
    other = tmp_path / "other.key"
    other.write_text(os.urandom(32).hex() + "\n")
    sink = GatedSink()
    sink.gate.set()
    try:
        cl = {"postgres": cluster_db, "secret_key_file": str(secret)}
        relay = {"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "none"}
        n1 = server_factory(start=False, cluster=cl, relay=relay)
        n2 = server_factory(start=False, cluster=cl, relay=relay)
        rc, out, err = n1.cli("dkim", "keygen", "signed.test", "--selector", "s1")
        assert rc == 0, err
        db = cluster_db.rsplit("/", 1)[1]
        box = pg_cluster().sql(db, "SELECT key_box FROM dkim_keys WHERE selector = 's1'")
        assert box.strip() and "PRIVATE KEY" not in box and "MII" not in box
        n2.start()
        assert "dkim_keys_loaded keys=1" in n2.log() and "dkim_key_error" not in n2.log()
        msg = helpers.message("signed across", frm="me@signed.test", to="x@dest.test").encode()
        _, rs, dr = transaction(n2.port, "me@signed.test", ["x@dest.test"], msg)
        assert dr is not None and dr.code == 250, (rs, dr)
        helpers.wait_for(lambda: sink.messages, 20, what="the signed message")
        assert b"DKIM-Signature:" in sink.contents[0] and b"d=signed.test" in sink.contents[0]
        # another secret: the box does not open, and it is logged
        n3 = server_factory(start=False, relay=relay,
                            cluster={"postgres": cluster_db, "secret_key_file": str(other)})
        n3.start()
        assert "dkim_key_box_error" in n3.log()
    finally:
        sink.close()


def test_secret_key_file_errors(server_factory, cluster_db, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not hex at all\n")
    s = server_factory(start=False, cluster={"postgres": cluster_db, "secret_key_file": str(bad)})
    rc, _, err = s.cli("user", "list")
    assert rc != 0 and f"{bad}: expected 64 hex digits" in err and "not hex" not in err
    missing = tmp_path / "missing.key"
    s2 = server_factory(start=False,
                        cluster={"postgres": cluster_db, "secret_key_file": str(missing)})
    rc, _, err = s2.cli("user", "list")
    assert rc != 0 and f"cannot read {missing}" in err
