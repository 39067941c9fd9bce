"""A node's own keys after it joins the cluster's (docs/cluster.md, "Shared
keys"): links and VERP addresses a node made with its own unsubscribe.key,
tracking.key and verp.key before it shared the first node's keys keep
verifying on it, while everything new is made with the cluster's. Two
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
    px = request(n2, "GET", pixel)
    assert px.status == 200 and px.body.startswith(b"GIF89a"), px
    u = unsubscribe(n2, unsub)
    assert u.status == 200, u
    rc, out, err = n2.cli("suppress", "list", "--account", "news")
    assert rc == 0 and "old@ok.test\tunsubscribed" in out, (out, err)
    _, rcpt, dr = report(n2, verp, dsn(verp, "old@ok.test"))
    assert rcpt.code == 250 and dr.code == 250, (rcpt, dr)
    helpers.wait_for(lambda: [l for l in event_lines(n2, "bounced") if f"queue={old_qid}" in l],
                     10, what="node 2 applying the bounce to its old VERP address")
    # node 1 never knew node 2's own keys
    assert request(n1, "GET", pixel).status == 404
    assert unsubscribe(n1, unsub).status == 404
    assert report(n1, verp, dsn(verp, "old@ok.test"))[1].code == 550
    # a MAC under a random key is refused on both
    bad_pixel, bad_unsub = forged(pixel, unsub)
    bad_verp = verp_address(os.urandom(32), old_qid, BOUNCES)
    for s in (n1, n2):
        assert request(s, "GET", bad_pixel).status == 404
        assert unsubscribe(s, bad_unsub).status == 404
        assert report(s, bad_verp, dsn(bad_verp, "old@ok.test"))[1].code == 550
    assert request(n2, "GET", new_pixel).status == 200
    assert unsubscribe(n2, new_unsub).status == 200
