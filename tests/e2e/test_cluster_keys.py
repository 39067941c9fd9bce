"""A node's own keys after it joins the cluster's (docs/cluster.md, "Shared
keys"): links and VERP addresses a node made with its own unsubscribe.key,
tracking.key and verp.key before it shared the first node's keys keep
verifying on it and on every other node (its keys are stored, sealed, as
NAME/NODE_ID), while everything new is made with the cluster's; a node
that made its key files at this start keeps and stores none of them. Two
nodes on a real PostgreSQL, delivering to a fake MX through the test DNS."""
import base64
import email
import email.policy
import hmac
import hashlib
import os
import re

import helpers
from deliv import dsn, event_lines, verp_address
from httpapi import create_key, request
from conftest import pg_cluster
from mx import dns, farm, mx_zone, mxs, start, wait_status  # noqa: F401
from test_bounce_loop import report
from test_cluster_state import (BOUNCES, OK_IP, SENDER_IP, build_zone, key_file,  # noqa: F401
                                keyed, verp_recorded)

NAMES = ("unsubscribe", "tracking", "verp")


def b64u(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def send_news(srv, key, rcpt):
    """One API message with an open pixel and the unsubscribe link: its queue ID."""
    r = request(srv, "POST", "/v1/messages", key=key,
                body={"from": "letters@news.test", "to": rcpt, "subject": "s",
                      "html": "<p>hi</p>", "text": "hi", "track": {"opens": True},
                      "unsubscribe": True})
    assert r.status == 200, r
    return r.json()["messages"][0]["id"]


def links_of(t):
    """(pixel path, unsubscribe path, return path) of a delivered message."""
    m = email.message_from_bytes(t.content, policy=email.policy.default)
    pixel = re.findall(r'<img src="[^"]*(/t/o/[^"]+)" width="1"',
                       m.get_body(("html",)).get_content())
    link = re.match(r"^<https://relay\.test(/u/[A-Za-z0-9_-]+)>$", m["List-Unsubscribe"])
    assert len(pixel) == 1 and link, m
    return pixel[0], link[1], t.mail_from


def unsubscribe(srv, path):
    return request(srv, "POST", path, body="List-Unsubscribe=One-Click",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})


def forged(pixel, unsub):
    """The same links with a MAC under a random key."""
    payload = pixel[len("/t/o/"):].split(".")[0]
    mac = hmac.new(os.urandom(32), unb64u(payload), hashlib.sha256).digest()
    raw = unb64u(unsub[len("/u/"):])
    return f"/t/o/{payload}.{b64u(mac)}", "/u/" + b64u(raw[:-16] + os.urandom(16))


def own_rows(db):
    """{name: key_box} of the rows NAME/NODE_ID in cluster_keys."""
    out = pg_cluster().sql(db, "SELECT name || ' ' || key_box FROM cluster_keys"
                               " WHERE name LIKE '%/%'")
    return dict(line.split(" ", 1) for line in out.split("\n") if line.strip())


def node_id(srv):
    with open(os.path.join(srv.data_dir, "node-id")) as f:
        return f.read().strip()


def suppress(srv, *args):
    rc, out, err = srv.cli("suppress", *args, "--account", "news")
    assert rc == 0, (out, err)
    return out


def honours(srv, links, qid):
    """srv takes the old pixel, unsubscribe link and a bounce to the old
    VERP address of message qid (to old@ok.test), and acts on each."""
    pixel, unsub, verp = links
    px = request(srv, "GET", pixel)
    assert px.status == 200 and px.body.startswith(b"GIF89a"), px
    assert "old@ok.test" not in suppress(srv, "list")
    u = unsubscribe(srv, unsub)
    assert u.status == 200, u
    assert "old@ok.test\tunsubscribed" in suppress(srv, "list")
    before = len([l for l in event_lines(srv, "bounced") if f"queue={qid}" in l])
    _, rcpt, dr = report(srv, verp, dsn(verp, "old@ok.test"))
    assert rcpt.code == 250 and dr.code == 250, (rcpt, dr)
    helpers.wait_for(lambda: len([l for l in event_lines(srv, "bounced")
                                  if f"queue={qid}" in l]) > before,
                     10, what="the bounce to the old VERP address applied")


def pixel_under(pixel, key):
    """The pixel path with its MAC made again under key."""
    payload = pixel[len("/t/o/"):].split(".")[0]
    mac = hmac.new(key, unb64u(payload), hashlib.sha256).digest()
    return f"/t/o/{payload}.{b64u(mac)}"


def test_a_nodes_own_links_and_verp_still_verify_after_it_joins(keyed, mxs):
    ok = mxs(OK_IP)
    n1, n2 = keyed(2)
    # node 2 first runs on the cluster's database without the secret: its own keys
    secret = n2._cluster.pop("secret_key_file")
    n2.write_conf()
    n1.add_user("news", domains=("news.test",))
    rc, _, err = n1.cli("user", "set", "news", "--unsubscribe", "on")
    assert rc == 0, err
    n1.start()  # the cluster's keys are node 1's
    n2.start()
    for name in NAMES:
        assert f"event=node_key name={name} shared=0" in n2.log(), n2.log()
    key = create_key(n1, "news")
    old_qid = send_news(n2, key, "old@ok.test")
    pixel, unsub, verp = links_of(ok.wait_messages(1)[0])
    assert verp == verp_address(key_file(n2, "verp.key"), old_qid, BOUNCES)
    helpers.wait_for(lambda: verp_recorded(keyed.db, old_qid), 10, what="the VERP record")
    # node 2 joins the shared keys: its own are kept for verifying only
    n2._cluster["secret_key_file"] = secret
    n2.write_conf()
    n2.restart()
    for name in NAMES:
        assert f"event=node_key name={name} shared=1" in n2.log(), n2.log()
        assert n2.log().count(f"event=node_key_own_accepted name={name} ") == 1, n2.log()
        assert "event=node_key_own_accepted" not in n1.log()  # its own are the cluster's
    # what node 2 makes now is made with the cluster's key: node 1 takes it
    new_qid = send_news(n2, key, "new@ok.test")
    new = ok.wait_messages(2)[1]
    assert new.mail_from == verp_address(key_file(n1, "verp.key"), new_qid, BOUNCES)
    new_pixel, new_unsub, _ = links_of(new)
    assert request(n1, "GET", new_pixel).status == 200
    # node 2's old links and return path are honoured by node 2
    honours(n2, (pixel, unsub, verp), old_qid)
    # node 2's own keys are in the database, sealed (never in clear)
    rows = own_rows(keyed.db)
    node2 = node_id(n2)
    assert sorted(rows) == sorted(f"{name}/{node2}" for name in NAMES), rows
    for name in NAMES:
        box = rows[f"{name}/{node2}"]
        assert key_file(n2, f"{name}.key").hex() not in box
    # and node 1, which started before node 2 joined, honours them within seconds
    helpers.wait_for(lambda: request(n1, "GET", pixel).status == 200, 15,
                     what="node 1 accepting node 2's old pixel")
    suppress(n2, "remove", "old@ok.test")
    honours(n1, (pixel, unsub, verp), old_qid)
    assert "event=node_key_own_accepted" not in n1.log()
    # a MAC under a random key is refused on both
    bad_pixel, bad_unsub = forged(pixel, unsub)
    bad_verp = verp_address(os.urandom(32), old_qid, BOUNCES)
    for s in (n1, n2):
        assert request(s, "GET", bad_pixel).status == 404
        assert unsubscribe(s, bad_unsub).status == 404
        assert report(s, bad_verp, dsn(bad_verp, "old@ok.test"))[1].code == 550
    assert request(n2, "GET", new_pixel).status == 200
    assert unsubscribe(n2, new_unsub).status == 200


def test_a_fresh_node_keeps_and_stores_no_key_of_its_own(keyed, mxs):
    """Node 2 has the secret from its first start: the key files it makes
    then were never used, so it keeps none as a second key and stores none,
    at that start or any later; node 1's links work on it, and links under a
    random key or node 2's unused keys on neither."""
    ok = mxs(OK_IP)
    n1, n2 = keyed(2)
    n1.add_user("news", domains=("news.test",))
    rc, _, err = n1.cli("user", "set", "news", "--unsubscribe", "on")
    assert rc == 0, err
    n1.start()
    n2.start()
    assert key_file(n2, "verp.key") != key_file(n1, "verp.key")  # made at its start
    for s in (n1, n2):
        for name in NAMES:
            assert f"event=node_key name={name} shared=1" in s.log(), s.log()
        assert "event=node_key_own_accepted" not in s.log(), s.log()
    assert own_rows(keyed.db) == {}
    # and it knows that its files were never used at its next starts too
    n2.restart()
    assert "event=node_key_own_accepted" not in n2.log(), n2.log()
    assert n2.log().count("event=node_key name=verp shared=1") == 2, n2.log()
    assert own_rows(keyed.db) == {}
    key = create_key(n1, "news")
    qid = send_news(n2, key, "a@ok.test")
    pixel, unsub, verp = links_of(ok.wait_messages(1)[0])
    assert verp == verp_address(key_file(n1, "verp.key"), qid, BOUNCES)
    bad_pixel, bad_unsub = forged(pixel, unsub)
    bad_verp = verp_address(key_file(n2, "verp.key"), qid, BOUNCES)  # its unused key
    bad_px2 = pixel_under(pixel, key_file(n2, "tracking.key"))
    for s in (n1, n2):
        assert request(s, "GET", pixel).status == 200
        assert request(s, "GET", bad_pixel).status == 404
        assert request(s, "GET", bad_px2).status == 404
        assert unsubscribe(s, bad_unsub).status == 404
        assert report(s, bad_verp, dsn(bad_verp, "a@ok.test"))[1].code == 550
