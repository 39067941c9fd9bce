"""Two processes with one node ID (docs/cluster.md, "Nodes"): a copied data
dir (its node-id and key files) started beside the original, on a real
PostgreSQL. Each process writes a random instance token with its heartbeat
row and reads the row's token before each beat: within a few beats both
log event=node_id_clash at error level, refuse new mail (SMTP 451 4.3.0,
HTTP 503) while the original's spool is still delivered, and
`posthorn cluster status` and /metrics show it. Once the copy stops, the
original accepts again (15 s after the copy's last beat at most) and its
row is not left `stopped` by the copy's stop. A node killed (kill -9) and
restarted at once is no clash: the dead process never writes again."""
import os
import shutil
import time

import helpers
from conftest import pg_cluster
from deliv import transaction
from httpapi import create_key, request
from mx import dns, farm, msg_bytes, mx_relay, mx_zone, mxs, wait_status  # noqa: F401
from test_cluster_redis import metric
from test_cluster_state import with_id
from test_cluster_status import by_id, status

NODE = "CLA" + "7" * 17
SENDER_IP = "127.0.0.11"
CLASH_IP = "127.0.0.71"
STALE_AFTER = 15


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "clash.test": CLASH_IP})


def mail(srv, rcpt, tag):
    return transaction(srv.port, "a@sender.test", [rcpt], msg_bytes("a@sender.test", rcpt, tag))


def api_send(srv, key):
    return request(srv, "POST", "/v1/messages", key=key,
                   body={"from": "a@sender.test", "to": "y@clash.test", "subject": "t",
                         "text": "hi"})


def row(db):
    """(instance, stopped_at) of the node's row."""
    out = pg_cluster().sql(db, f"SELECT instance || '|' || coalesce(stopped_at::text, '')"
                               f" FROM nodes WHERE id = '{NODE}'").strip()
    inst, stopped = out.split("|")
    return inst, stopped


def copy_data_dir(src, dst):
    """What an operator copying a data dir takes along: node-id and keys."""
    os.makedirs(dst.data_dir, exist_ok=True)
    names = [n for n in os.listdir(src.data_dir) if n == "node-id" or n.endswith(".key")]
    assert "node-id" in names and len(names) > 1, names
    for n in names:
        shutil.copy2(os.path.join(src.data_dir, n), os.path.join(dst.data_dir, n))


def clash_lines(srv):
    return [l for l in srv.log().splitlines() if "event=node_id_clash " in l]


def test_a_copied_data_dir_beside_its_original_refuses_mail_on_both(server_factory, dns, mxs,
                                                                     farm):
    db = pg_cluster().new_db()
    name = db.rsplit("/", 1)[1]
    relay = mx_relay(dns.address, farm)
    orig = server_factory(start=False, cluster={"postgres": db}, relay=relay)
    copy = server_factory(start=False, cluster={"postgres": db}, relay=relay,
                          server={"hostname": "copy.test"})
    with_id(orig, NODE)
    orig.start()
    orig.add_user("alice", domains=("sender.test",))
    key = create_key(orig, "alice")
    mx = mxs(CLASH_IP, defer_always=True)
    _, _, dr = mail(orig, "held@clash.test", "held")  # spooled before: delivered during
    assert dr.code == 250, dr
    held = helpers.queued_id(dr.text)
    helpers.wait_for(lambda: row(name)[0] != "", 10, what="the original's row")
    own = row(name)[0]
    copy_data_dir(orig, copy)
    copy.start()
    assert f"event=node_tag tag=CLA id={NODE}" in copy.log()
    # both notice within a few beats (5 s each)
    for s in (orig, copy):
        helpers.wait_for(lambda s=s: clash_lines(s), 3 * 5 + 2, what="node_id_clash")
    for s, other in ((orig, "copy.test"), (copy, "relay.test")):
        lines = clash_lines(s)
        assert len(lines) == 1 and "level=error" in lines[0], lines
        assert f"node={NODE} other_host={other} " in lines[0], lines
        assert metric(s, "posthorn_node_id_clash") == 1
        m, _, _ = mail(s, "new@clash.test", "refused")
        assert m.code == 451 and m.text.startswith("4.3.0 "), m
    r = api_send(orig, key)
    assert r.status == 503 and r.json()["error"]["code"] == "node_id_clash", r
    assert r.headers.get("retry-after"), r.headers
    assert copy.queue() == {}
    # cluster status shows it (written by the beat that saw it), JSON and
    # text, with an error line
    doc, err = helpers.wait_for(lambda: (lambda d: d[0]["id_clash"] and d)(status(orig)),
                                5 + 2, what="the clash in cluster status")
    n = by_id(doc)[NODE]
    assert n["state"] == "up" and n["id_clash"] is True, n
    assert n["clash_host"] in ("copy.test", "relay.test"), n
    assert doc["id_clash"] == 1 and doc["tag_lost"] == 0, doc
    assert f"posthorn: error: node {NODE} is run by two processes" in err, err
    rc, out, err = orig.cli("cluster", "status")
    assert rc == 0, err
    line = [l for l in out.splitlines() if l.startswith(f"node={NODE} ")]
    assert len(line) == 1 and line[0].endswith(f" id_clash={n['clash_host']}"), out
    # the spool still delivers meanwhile
    mx.defer_always = False
    wait_status(orig, held, "held@clash.test", "sent")
    # the copy stops right after the original's beat: the row is the
    # original's, and the copy's stop leaves it alone
    helpers.wait_for(lambda: row(name)[0] == own, 10, interval=0.05,
                     what="a beat of the original")
    copy.stop()
    inst, stopped = row(name)
    assert (inst == own and stopped == "") or (inst != own and stopped != ""), (inst, stopped)
    helpers.wait_for(lambda: "event=node_id_clash_end" in orig.log(), STALE_AFTER + 7,
                     what="node_id_clash_end")
    assert metric(orig, "posthorn_node_id_clash") == 0
    _, rs, dr = mail(orig, "back@clash.test", "back")
    assert dr.code == 250, (rs, dr)
    assert api_send(orig, key).status == 200
    doc, err = status(orig)
    assert by_id(doc)[NODE]["state"] == "up" and doc["id_clash"] == 0, doc
    assert "error" not in err, err
    assert row(name) == (own, "")


def test_kill9_and_restart_at_once_is_no_clash(server_factory):
    db = pg_cluster().new_db()
    name = db.rsplit("/", 1)[1]
    n = server_factory(start=False, cluster={"postgres": db})
    with_id(n, NODE)
    n.start()
    helpers.wait_for(lambda: row(name)[0] != "", 10, what="the row")
    before = row(name)[0]
    n.kill9()
    n.proc = None
    n.start()  # at once: the row is live, with the dead process's token
    m, _, _ = transaction(n.port, "a@sender.test", ["x@nowhere.test"])
    assert m.code == 250, m
    helpers.wait_for(lambda: row(name)[0] not in ("", before), 10, what="the new token")
    # three beats later: still no clash, mail still accepted
    time.sleep(3 * 5 + 1)
    assert "node_id_clash" not in n.log()
    assert metric(n, "posthorn_node_id_clash") == 0
    m, _, _ = transaction(n.port, "a@sender.test", ["x@nowhere.test"])
    assert m.code == 250, m
