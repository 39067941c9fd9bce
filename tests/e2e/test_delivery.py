"""End-to-end delivery: a real `posthorn serve` delivers to fake MX servers
(aiosmtpd, tests/e2e/mx.py) found through a test DNS (dnsmasq). SPEC.md §4.

One dnsmasq and one MX farm serve the whole module. Each test uses its own
destination domain(s) and fake MX address(es) (127.0.0.12 and up) and its
own sender address at sender.test, whose MX (127.0.0.11) is up for the whole
module and receives the bounces (DSNs). Every test starts its own server
(server_factory), which checks at teardown that SIGTERM makes it exit 0
with no sanitizer report.
"""
import email
import email.policy
import json
import re
import time
import uuid

import pytest

import helpers
from mx import (WAIT, Zone, alive_poll, assert_failure_dsn, deliveries, dns, dsns_to,  # noqa: F401
                farm, log_excerpt, msg_bytes, mxs, parse_dsn, poll, start, submit, submit_many,
                wait_dsn, wait_msgs, wait_queue_empty, wait_rcpts, wait_status)

SENDER_IP = "127.0.0.11"

# domain -> [(pref, mx host, ip)] ; the zone is built from this table
MX_TABLE = {
    "sender.test": [(10, "mx.sender.test", SENDER_IP)],
    "deliver.test": [(10, "mx.deliver.test", "127.0.0.12")],
    "prefdown.test": [(10, "mx1.prefdown.test", "127.0.0.13"),
                      (20, "mx2.prefdown.test", "127.0.0.14")],
    "prefup.test": [(10, "mx1.prefup.test", "127.0.0.15"),
                    (20, "mx2.prefup.test", "127.0.0.16")],
    "defer.test": [(10, "mx.defer.test", "127.0.0.18")],
    "reject.test": [(10, "mx.reject.test", "127.0.0.19")],
    "expire.test": [(10, "mx.expire.test", "127.0.0.20")],
    "nullsender.test": [(10, "mx.nullsender.test", "127.0.0.21")],
    "tls.test": [(10, "mx.tls.test", "127.0.0.22")],
    "notls.test": [(10, "mx.notls.test", "127.0.0.23")],
    "many.test": [(10, "mx.many.test", "127.0.0.24")],
    "reuse.test": [(10, "mx.reuse.test", "127.0.0.25")],
    "maxconn.test": [(10, "mx.maxconn.test", "127.0.0.26")],
    "crash.test": [(10, "mx.crash.test", "127.0.0.27")],
    "qretry.test": [(10, "mx.qretry.test", "127.0.0.28")],
    "statsok.test": [(10, "mx.statsok.test", "127.0.0.29")],
    "statsbad.test": [(10, "mx.statsbad.test", "127.0.0.30")],
    "idle.test": [(10, "mx.idle.test", "127.0.0.31")],
    "greet421.test": [(10, "mx1.greet421.test", "127.0.0.32"),
                      (20, "mx2.greet421.test", "127.0.0.33")],
    "mixedok.test": [(10, "mx.mixedok.test", "127.0.0.34")],
    "mixedbad.test": [(10, "mx.mixedbad.test", "127.0.0.35")],
    "drain.test": [(10, "mx.drain.test", "127.0.0.36")],
    "v6.test": [(10, "mx.v6.test", "::1")],
}
AONLY_IP = "127.0.0.17"  # aonly.test: no MX, an A record of its own
NXDOMAIN = "nx-nowhere.test"  # no record at all: NXDOMAIN (local=/test/)


def build_zone():
    z = Zone()
    for domain, hosts in MX_TABLE.items():
        for pref, host, ip in hosts:
            z.mx(domain, host, pref).host(host, ip)
    z.host("aonly.test", AONLY_IP)
    z.null_mx("nullmx.test")
    return z


def ip_of(domain, i=0):
    return MX_TABLE[domain][i][2]


# ---------------------------------------------------------------- the zone itself


def test_zone_sanity(dns):
    """The test DNS answers as the other tests assume (null MX included)."""
    rcode, an, _ = dns.query("deliver.test", 15)
    assert (rcode, an) == (0, 1)
    rcode, an, raw = dns.query("nullmx.test", 15)
    assert (rcode, an) == (0, 1)
    # the answer's RDATA: preference 0, root target (a single zero byte)
    assert raw.endswith(b"\x00\x03\x00\x00\x00"), raw
    rcode, an, _ = dns.query("aonly.test", 15)
    assert (rcode, an) == (0, 0)  # NODATA
    rcode, an, _ = dns.query("aonly.test", 1)
    assert (rcode, an) == (0, 1)
    rcode, an, _ = dns.query(NXDOMAIN, 15)
    assert rcode == 3  # NXDOMAIN


# ---------------------------------------------------------------- 1-3 routing


def test_delivery_via_mx(start, mxs):
    """Two recipients of one domain: one transaction, content intact, dot-stuffing round trip."""
    mx = mxs(ip_of("deliver.test"))
    srv = start()
    body = (b"First line.\r\n.leading dot\r\n..two dots\r\n.\r\n . space dot\r\n"
            + b"x" * 990 + b"\r\n\r\n\r\nlast line after blank lines\r\n")
    data = msg_bytes("t1@sender.test", ["a@deliver.test", "b@deliver.test"], "t1 dots", body)
    qid = submit(srv, "t1@sender.test", ["a@deliver.test", "b@deliver.test"], data)
    (t,) = wait_msgs(mx, 1, srv)
    assert t.mail_from == "t1@sender.test"
    assert sorted(r.lower() for r in t.rcpts) == ["a@deliver.test", "b@deliver.test"]
    # Posthorn's headers come first, then the submitted message byte for byte
    assert t.content.endswith(data), (t.content[:600], data[:300])
    prefix = t.content[:len(t.content) - len(data)]
    assert prefix.startswith(b"Received: "), prefix
    assert b"relay.test" in prefix.split(b"\r\n\r\n")[0]
    assert t.body == body
    for to in ("a@deliver.test", "b@deliver.test"):
        d = wait_status(srv, qid, to, "sent")
        assert f"[{ip_of('deliver.test')}]:{mx.farm.port}" in d["relay"], d["line"]
        assert d["tls"] == "none", d["line"]
        assert d["attempt"] == "1", d["line"]
        assert d["dsn"].startswith("2."), d["line"]
    wait_queue_empty(srv)
    assert len(mx.messages) == 1, mx.messages  # no second copy


def test_mx_preference(start, mxs):
    """Lowest preference first; a dead pref-10 host falls through to pref 20."""
    # prefdown.test: nothing listens on 127.0.0.13 (pref 10)
    down_20 = mxs(ip_of("prefdown.test", 1))
    up_10 = mxs(ip_of("prefup.test", 0))
    up_20 = mxs(ip_of("prefup.test", 1))
    srv = start()
    q1 = submit(srv, "t2@sender.test", ["x@prefdown.test"],
                msg_bytes("t2@sender.test", "x@prefdown.test", "t2 down"))
    q2 = submit(srv, "t2@sender.test", ["y@prefup.test"],
                msg_bytes("t2@sender.test", "y@prefup.test", "t2 up"))
    wait_rcpts(down_20, ["x@prefdown.test"], srv)
    d = wait_status(srv, q1, "x@prefdown.test", "sent")
    assert f"[{ip_of('prefdown.test', 1)}]" in d["relay"], d["line"]
    wait_rcpts(up_10, ["y@prefup.test"], srv)
    d = wait_status(srv, q2, "y@prefup.test", "sent")
    assert f"[{ip_of('prefup.test', 0)}]" in d["relay"], d["line"]
    assert up_20.connections == 0 and not up_20.messages
    wait_queue_empty(srv)


def test_implicit_mx(start, mxs):
    """No MX record: the domain's own A record is the mail host (RFC 5321 5.1)."""
    mx = mxs(AONLY_IP)
    srv = start()
    qid = submit(srv, "t3@sender.test", ["z@aonly.test"],
                 msg_bytes("t3@sender.test", "z@aonly.test", "t3"))
    wait_rcpts(mx, ["z@aonly.test"], srv)
    d = wait_status(srv, qid, "z@aonly.test", "sent")
    assert f"[{AONLY_IP}]" in d["relay"], d["line"]
    wait_queue_empty(srv)


# ---------------------------------------------------------------- 4-5 DNS failures


def test_null_mx_bounces_at_once(start, farm):
    """Null MX (RFC 7505): refused at RCPT with 556 5.1.10, or bounced at once with 5.1.10."""
    srv = start()
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        assert s.mail("t4@sender.test")[0] == 250
        code, text = s.rcpt("n@nullmx.test")
        if code != 250:
            # the other branch SPEC §4 allows
            assert code == 556 and text.startswith(b"5.1.10"), (code, text)
            return
        code, text = s.data(msg_bytes("t4@sender.test", "n@nullmx.test", "t4 nullmx"))
        assert code == 250, (code, text)
        qid = helpers.queued_id(text)
    d = wait_status(srv, qid, "n@nullmx.test", "bounced")
    assert d["attempt"] == "1" and d["dsn"] == "5.1.10" and d["relay"] == "none", d["line"]
    t = wait_dsn(farm, "t4@sender.test", srv)
    assert_failure_dsn(t, "n@nullmx.test", r"5\.1\.10", subject="t4 nullmx")
    assert not [x for x in deliveries(srv, qid) if x["status"] == "deferred"], \
        log_excerpt(srv, qid)
    wait_queue_empty(srv)


def test_nxdomain_bounces(start, farm):
    srv = start()
    rcpt = f"who@{NXDOMAIN}"
    qid = submit(srv, "t5@sender.test", [rcpt], msg_bytes("t5@sender.test", rcpt, "t5 nx"))
    d = wait_status(srv, qid, rcpt, "bounced")
    assert d["dsn"] == "5.1.2" and d["relay"] == "none", d["line"]
    t = wait_dsn(farm, "t5@sender.test", srv)
    assert_failure_dsn(t, rcpt, r"5\.1\.2", subject="t5 nx")
    wait_queue_empty(srv)


# ---------------------------------------------------------------- 6-9 replies


def test_451_then_accept(start, mxs):
    mx = mxs(ip_of("defer.test"), defer_first=2)
    srv = start()
    rcpt = "d@defer.test"
    qid = submit(srv, "t6@sender.test", [rcpt], msg_bytes("t6@sender.test", rcpt, "t6"))
    wait_rcpts(mx, [rcpt], srv, timeout=WAIT + 10)
    wait_status(srv, qid, rcpt, "sent")
    lines = deliveries(srv, qid, rcpt)
    assert [x["status"] for x in lines] == ["deferred", "deferred", "sent"], \
        "\n".join(x["line"] for x in lines)
    assert [x["attempt"] for x in lines] == ["1", "2", "3"], "\n".join(x["line"] for x in lines)
    assert lines[0]["dsn"].startswith("4.") and "451" in lines[0]["reply"], lines[0]["line"]
    assert mx.rcpt_tries[rcpt] == 3
    assert len(mx.messages) == 1
    wait_queue_empty(srv)


def test_550_bounce_dsn(start, mxs, farm):
    mx = mxs(ip_of("reject.test"), reject_rcpt=True)
    srv = start()
    rcpt = "nobody@reject.test"
    data = msg_bytes("t7@sender.test", rcpt, "t7 rejected", b"Original body line\r\n")
    qid = submit(srv, "t7@sender.test", [rcpt], data)
    d = wait_status(srv, qid, rcpt, "bounced")
    assert d["dsn"].startswith("5.") and "550" in d["reply"], d["line"]
    t = wait_dsn(farm, "t7@sender.test", srv)
    assert t.mail_from == ""  # RFC 3464: the null reverse-path
    # the report is logged once, on the bounced message's line (issue 9)
    queued = [l for l in srv.log().splitlines() if "event=dsn_queued" in l]
    assert len(queued) == 1 and f"queue={qid} " in queued[0] and "rcpts=1" in queued[0], queued
    # Python's email package, directly
    msg = email.message_from_bytes(t.content, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert "t7@sender.test" in str(msg["To"])
    parts = msg.get_payload()
    assert len(parts) >= 3, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    assert len(blocks) >= 2, blocks
    per = [b for b in blocks[1:] if rcpt in str(b.get("Final-Recipient", ""))]
    assert len(per) == 1, [dict(b) for b in blocks]
    b = per[0]
    assert str(b["Final-Recipient"]).lower().replace(" ", "") == f"rfc822;{rcpt}"
    assert str(b["Action"]).strip().lower() == "failed"
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", str(b["Status"]).strip()), b["Status"]
    diag = " ".join(str(b["Diagnostic-Code"]).split())
    assert "550" in diag and "fake mailbox unavailable here" in diag, diag
    assert parts[2].get_content_type() in ("message/rfc822", "text/rfc822-headers")
    orig = parts[2].as_bytes()
    assert b"Subject: t7 rejected" in orig, orig[:1000]
    info = parse_dsn(t.content)
    assert info["defects"] == [], info["defects"]
    assert info["bare_lf"] == 0 and info["max_line"] <= 998
    assert mx.rcpt_tries[rcpt] == 1  # 5xx: never retried
    wait_queue_empty(srv)


def test_dsn_diagnostic_code_is_the_smtp_reply(start, mxs, farm):
    """RFC 3464 2.3.6: Diagnostic-Code holds "the actual diagnostic code
    issued by the mail transport"; for a reply from an SMTP server its
    diagnostic-type is "smtp" and the text is that reply, e.g.
    `smtp; 550 5.1.1 <a@b>: ...` (what Postfix writes and what bounce
    processors parse). Remote-MTA names the host (2.3.5)."""
    mxs(ip_of("reject.test"), reject_rcpt=True)
    srv = start()
    rcpt = "nobody2@reject.test"
    qid = submit(srv, "t7b@sender.test", [rcpt], msg_bytes("t7b@sender.test", rcpt, "t7b"))
    wait_status(srv, qid, rcpt, "bounced")
    t = wait_dsn(farm, "t7b@sender.test", srv)
    info = parse_dsn(t.content)
    r = info["recipients"][0]
    diag = " ".join((r["diagnostic_code"] or "").split())
    assert re.match(r"(?i)smtp; ?550 5\.1\.1 ", diag), \
        f"Diagnostic-Code: {diag!r}; Remote-MTA: {r['remote_mta']!r}"
    assert "mx.reject.test" in (r["remote_mta"] or ""), r
    wait_queue_empty(srv)


def test_expiry_bounces_with_last_reply(start, mxs, farm):
    mx = mxs(ip_of("expire.test"), defer_always=True)
    srv = start(relay={"retry": "1s", "queue_lifetime": "3s"})
    rcpt = "late@expire.test"
    qid = submit(srv, "t8@sender.test", [rcpt], msg_bytes("t8@sender.test", rcpt, "t8 expiry"))
    d = wait_status(srv, qid, rcpt, "bounced", timeout=WAIT + 10)
    assert d["dsn"].startswith("5."), d["line"]
    lines = deliveries(srv, qid, rcpt)
    assert [x["status"] for x in lines[:-1]] == ["deferred"] * (len(lines) - 1), \
        "\n".join(x["line"] for x in lines)
    assert len(lines) >= 2, "\n".join(x["line"] for x in lines)
    t = wait_dsn(farm, "t8@sender.test", srv)
    tries = mx.rcpt_tries[rcpt]
    info = assert_failure_dsn(t, rcpt, r"5\.\d+\.\d+", subject="t8 expiry")
    diag = " ".join((info["recipients"][0]["diagnostic_code"] or "").split())
    # the last 451 the MX gave is in the diagnostic
    assert f"fake try again later (attempt {tries})" in diag, (diag, tries)
    assert tries == len(lines), (tries, "\n".join(x["line"] for x in lines))
    wait_queue_empty(srv)


def test_null_sender_never_bounced(start, mxs, farm):
    mx = mxs(ip_of("nullsender.test"), reject_rcpt=True)
    srv = start()
    rcpt = "gone@nullsender.test"
    token = uuid.uuid4().hex
    qid = submit(srv, "", [rcpt], msg_bytes("mailer-daemon@sender.test", rcpt, f"t9 {token}"))
    d = wait_status(srv, qid, rcpt, "bounced")
    assert d["dsn"].startswith("5."), d["line"]
    wait_queue_empty(srv)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for m in farm.mxs.values():
            with m.lock:
                hits = [t for t in m.messages if token.encode() in t.content]
            assert not hits, f"a bounce of a null-sender message was sent: {hits}"
        time.sleep(0.1)
    assert f"queue={qid} event=dsn_queued" not in srv.log(), log_excerpt(srv, qid)
    assert mx.rcpt_tries[rcpt] == 1
    assert srv.queue() == {}


# ---------------------------------------------------------------- 10 TLS


def test_starttls_opportunistic(start, mxs):
    mx = mxs(ip_of("tls.test"), tls=True)
    srv = start()
    rcpt = "s@tls.test"
    qid = submit(srv, "t10@sender.test", [rcpt], msg_bytes("t10@sender.test", rcpt, "t10"))
    (t,) = wait_msgs(mx, 1, srv)
    assert t.tls and t.tls.startswith("TLSv1."), t
    d = wait_status(srv, qid, rcpt, "sent")
    assert d["tls"] in ("TLSv1.2", "TLSv1.3"), d["line"]
    assert d["tls"] == t.tls, (d["line"], t.tls)
    wait_queue_empty(srv)


def test_outbound_tls_required(start, mxs):
    tls_mx = mxs(ip_of("tls.test"), tls=True)
    plain_mx = mxs(ip_of("notls.test"), tls=False)
    srv = start(relay={"outbound_tls": "required"})
    q_ok = submit(srv, "t10r@sender.test", ["s@tls.test"],
                  msg_bytes("t10r@sender.test", "s@tls.test", "t10 required ok"))
    q_no = submit(srv, "t10r@sender.test", ["p@notls.test"],
                  msg_bytes("t10r@sender.test", "p@notls.test", "t10 required plain"))
    d = wait_status(srv, q_ok, "s@tls.test", "sent")
    assert d["tls"] in ("TLSv1.2", "TLSv1.3"), d["line"]
    assert tls_mx.messages[0].tls, tls_mx.messages
    # two attempts at least (retry 1s): each deferred, nothing sent in clear
    alive_poll(srv, lambda: len(deliveries(srv, q_no, "p@notls.test")) >= 2, WAIT,
         what="two attempts at notls.test")
    lines = deliveries(srv, q_no, "p@notls.test")
    assert all(x["status"] == "deferred" for x in lines), "\n".join(x["line"] for x in lines)
    assert lines[0]["dsn"].startswith("4."), lines[0]["line"]
    assert plain_mx.connections >= 1  # it did try the host
    assert not plain_mx.messages and not plain_mx.rcpt_tries, \
        "mail (or a RCPT) went to an MX without TLS despite outbound_tls=required"
    assert q_no in srv.queue()
    assert q_ok not in srv.queue()


# ---------------------------------------------------------------- 11-13 batching, reuse, limits


def test_50_recipients_one_transaction(start, mxs):
    mx = mxs(ip_of("many.test"))
    srv = start()
    rcpts = [f"r{i:02d}@many.test" for i in range(50)]
    qid = submit(srv, "t11@sender.test", rcpts, msg_bytes("t11@sender.test", rcpts[:2], "t11"))
    wait_rcpts(mx, rcpts, srv)
    assert len(mx.messages) == 1, f"{len(mx.messages)} transactions: " \
        f"{[len(t.rcpts) for t in mx.messages]}"
    assert sorted(mx.messages[0].rcpts) == rcpts
    alive_poll(srv, lambda: len([d for d in deliveries(srv, qid) if d["status"] == "sent"]) == 50,
               WAIT,
         what="50 sent lines")
    wait_queue_empty(srv)


def test_connection_reuse(start, mxs):
    """Several messages per connection (SPEC §4).

    Part 1: 5 messages in one client session to a destination limited to
    one connection: one connection carries all 5 transactions. (With the
    default window of 5 connections a burst of 5 messages may open up to
    5 connections, by design: docs/delivery.md "Destinations".)
    Part 2: default limits, messages one after another, each submitted once
    the previous one is delivered: the idle connection is reused (it waits
    2 s for more work), so one connection carries them all."""
    mx = mxs(ip_of("reuse.test"))
    srv = start(extra="[domain.reuse.test]\nmax_connections = 1")
    items = [("t12@sender.test", [f"u{i}@reuse.test"],
              msg_bytes("t12@sender.test", f"u{i}@reuse.test", f"t12 #{i}")) for i in range(5)]
    submit_many(srv, items)
    wait_rcpts(mx, [f"u{i}@reuse.test" for i in range(5)], srv)
    assert len(mx.messages) == 5
    assert mx.connections == 1, f"{mx.connections} connections for 5 messages " \
        f"(transactions per connection: {dict(mx.txns_per_conn)})\n" \
        f"{log_excerpt(srv, 'event=queued', 'event=delivery', 'smtpc')}"
    assert dict(mx.txns_per_conn) == {1: 5}
    wait_queue_empty(srv)

    # part 2: default limits (prefup.test's pref-10 host), one at a time
    mx2 = mxs(ip_of("prefup.test", 0))
    for i in range(4):
        r = f"v{i}@prefup.test"
        submit(srv, "t12@sender.test", [r], msg_bytes("t12@sender.test", r, f"t12b #{i}"))
        wait_rcpts(mx2, [r], srv)
    assert mx2.connections == 1, f"{mx2.connections} connections for 4 sequential messages " \
        f"(transactions per connection: {dict(mx2.txns_per_conn)})\n" \
        f"{log_excerpt(srv, 'event=queued', 'event=delivery', 'smtpc')}"
    wait_queue_empty(srv)


def test_max_connections_honoured(start, mxs):
    mx = mxs(ip_of("maxconn.test"), data_delay=0.3)
    srv = start(extra="[domain.maxconn.test]\nmax_connections = 2\n"
                      "max_messages_per_connection = 100\nmax_rate = 1000/s")
    rcpts = [f"m{i:02d}@maxconn.test" for i in range(20)]
    submit_many(srv, [("t13@sender.test", [r], msg_bytes("t13@sender.test", r, f"t13 {r}"))
                      for r in rcpts])
    wait_rcpts(mx, rcpts, srv, timeout=WAIT + 20)
    assert mx.max_active <= 2, f"{mx.max_active} concurrent sessions with max_connections = 2"
    assert mx.max_active == 2, f"only {mx.max_active} session at a time: the limit is 2"
    wait_queue_empty(srv)


# ---------------------------------------------------------------- 14 crash


def test_kill9_during_delivery_at_least_once(start, mxs):
    mx = mxs(ip_of("crash.test"), data_delay=0.1)
    srv = start(extra="[domain.crash.test]\nmax_connections = 4\nmax_rate = 1000/s")
    ids = [f"<crash-{i}-{uuid.uuid4().hex[:8]}@sender.test>" for i in range(200)]
    items = [("t14@sender.test", [f"c{i:03d}@crash.test"],
              msg_bytes("t14@sender.test", f"c{i:03d}@crash.test", f"t14 {i}", msgid=ids[i]))
             for i in range(200)]
    submit_many(srv, items)
    wait_msgs(mx, 20, srv)
    srv.kill9()
    at_kill = len(mx.messages)
    assert at_kill < 200, "everything was delivered before the kill: not mid-way"
    srv.restart()
    want = {f"c{i:03d}@crash.test" for i in range(200)}
    wait_rcpts(mx, want, srv, timeout=WAIT + 30)
    got_ids = {t.header("Message-ID") for t in mx.messages}
    assert set(ids) <= got_ids, sorted(set(ids) - got_ids)[:5]
    wait_queue_empty(srv)
    dups = len(mx.messages) - 200
    print(f"kill -9 after {at_kill} of 200 delivered; {dups} duplicates after the restart")
    # at least once; duplicates only for what was in flight at the kill (4 connections)
    assert dups <= 8, f"{dups} duplicates after one crash with 4 connections in flight"


# ---------------------------------------------------------------- 15-17 operations


def test_queue_retry_all(start, mxs):
    mx = mxs(ip_of("qretry.test"), defer_first=1)
    srv = start(relay={"retry": "1h"})
    rcpt = "q@qretry.test"
    qid = submit(srv, "t15@sender.test", [rcpt], msg_bytes("t15@sender.test", rcpt, "t15"))
    wait_status(srv, qid, rcpt, "deferred")
    time.sleep(0.5)
    assert mx.rcpt_tries[rcpt] == 1 and not mx.messages
    assert qid in srv.queue()
    rc, out, err = srv.cli("queue", "retry", "--all")
    assert rc == 0, (rc, out, err)
    assert out.strip() == "1", (out, err)
    t0 = time.monotonic()
    wait_rcpts(mx, [rcpt], srv, timeout=10)
    assert time.monotonic() - t0 < 10
    wait_status(srv, qid, rcpt, "sent")
    wait_queue_empty(srv)


def test_stats_counts(start, mxs, farm):
    ok = mxs(ip_of("statsok.test"))
    mxs(ip_of("statsbad.test"), reject_rcpt=True)
    srv = start()
    items = [("t16@sender.test", [f"s{i}@statsok.test"],
              msg_bytes("t16@sender.test", f"s{i}@statsok.test", f"t16 {i}")) for i in range(3)]
    items.append(("t16@sender.test", ["bad@statsbad.test"],
                  msg_bytes("t16@sender.test", "bad@statsbad.test", "t16 bad")))
    ids = submit_many(srv, items)
    wait_rcpts(ok, [f"s{i}@statsok.test" for i in range(3)], srv)
    wait_status(srv, ids[3], "bad@statsbad.test", "bounced")
    wait_dsn(farm, "t16@sender.test", srv)
    last = {}

    def pred():
        nonlocal last
        rc, out, err = srv.cli("stats", "--json")
        assert rc == 0, (rc, out, err)
        last = json.loads(out)
        doms = last.get("domains", {})
        a, b = doms.get("statsok.test", {}), doms.get("statsbad.test", {})
        return (a.get("accepted") == 3 and a.get("delivered") == 3 and b.get("accepted") == 1
                and b.get("bounced") == 1)
    try:
        poll(pred, 10, interval=0.3, what="stats")
    except AssertionError as e:
        raise AssertionError(f"{e}: {json.dumps(last, indent=1)}") from None
    doms = last["domains"]
    assert doms["statsok.test"].get("bounced", 0) == 0
    assert doms["statsbad.test"].get("delivered", 0) == 0
    assert last["total"]["accepted"] >= 4


def test_sigterm_with_idle_delivery_connection(start, mxs):
    mx = mxs(ip_of("idle.test"))
    srv = start()
    rcpt = "i@idle.test"
    submit(srv, "t17@sender.test", [rcpt], msg_bytes("t17@sender.test", rcpt, "t17"))
    wait_msgs(mx, 1, srv)
    held = mx.active  # the server keeps the connection a little while for more mail
    print(f"connections open at SIGTERM: {held}")
    t0 = time.monotonic()
    srv.stop()  # asserts exit 0 within conftest's STOP_TIMEOUT and a clean stderr
    took = time.monotonic() - t0
    poll(lambda: mx.active == 0, 5, what="the MX connection to close")
    assert took < 10, took
    if held == 0:
        pytest.xfail("the delivery connection was already closed when SIGTERM came")


def test_sigterm_during_slow_delivery_loses_nothing(start, mxs):
    """SIGTERM while a transaction is in flight: exit 0, and the message is
    delivered either before the exit or after the restart (not lost)."""
    mx = mxs(ip_of("drain.test"), data_delay=1.5)
    srv = start()
    rcpt = "slow@drain.test"
    qid = submit(srv, "t17b@sender.test", [rcpt], msg_bytes("t17b@sender.test", rcpt, "t17b"))
    alive_poll(srv, lambda: mx.rcpt_tries[rcpt] >= 1, WAIT, what="the RCPT at the slow MX")
    srv.stop()
    if not mx.messages or qid in srv.queue():
        srv.restart()
        wait_rcpts(mx, [rcpt], srv)
        wait_queue_empty(srv)
    assert rcpt in mx.delivered_rcpts()


# ---------------------------------------------------------------- more of SPEC §4


def test_ipv6_mx(start, mxs):
    """An MX host with only an AAAA record (::1)."""
    mx = mxs("::1")
    srv = start()
    rcpt = "six@v6.test"
    qid = submit(srv, "t18@sender.test", [rcpt], msg_bytes("t18@sender.test", rcpt, "t18"))
    wait_rcpts(mx, [rcpt], srv)
    d = wait_status(srv, qid, rcpt, "sent")
    assert "[::1]" in d["relay"], d["line"]
    wait_queue_empty(srv)


def test_421_greeting_tries_next_mx(start, mxs):
    """A 421 greeting from the pref-10 host: the pref-20 host gets the mail."""
    busy = mxs(ip_of("greet421.test", 0), greet_421=True)
    good = mxs(ip_of("greet421.test", 1))
    srv = start()
    rcpt = "g@greet421.test"
    qid = submit(srv, "t19@sender.test", [rcpt], msg_bytes("t19@sender.test", rcpt, "t19"))
    wait_rcpts(good, [rcpt], srv)
    assert busy.connections >= 1
    d = wait_status(srv, qid, rcpt, "sent")
    assert f"[{ip_of('greet421.test', 1)}]" in d["relay"], d["line"]
    wait_queue_empty(srv)


def test_mixed_results_one_dsn_for_the_failed_recipients(start, mxs, farm):
    """One message to three recipients: one delivered, one rejected at RCPT
    in the same transaction, one at a rejecting domain -> one partial
    transaction and DSNs naming only the two failed recipients."""
    ok = mxs(ip_of("mixedok.test"), reject_rcpt={"no@mixedok.test"})
    mxs(ip_of("mixedbad.test"), reject_rcpt=True)
    srv = start()
    rcpts = ["yes@mixedok.test", "no@mixedok.test", "bad@mixedbad.test"]
    qid = submit(srv, "t20@sender.test", rcpts, msg_bytes("t20@sender.test", rcpts, "t20 mixed"))
    wait_rcpts(ok, ["yes@mixedok.test"], srv)
    assert [t.rcpts for t in ok.messages] == [["yes@mixedok.test"]]
    wait_status(srv, qid, "yes@mixedok.test", "sent")
    wait_status(srv, qid, "no@mixedok.test", "bounced")
    wait_status(srv, qid, "bad@mixedbad.test", "bounced")
    wait_queue_empty(srv)
    dsns = dsns_to(farm, "t20@sender.test")
    assert dsns, log_excerpt(srv, qid)
    failed = []
    for t in dsns:
        info = parse_dsn(t.content)
        failed += [r["final_recipient"].split(";", 1)[1].strip().lower()
                   for r in info["recipients"]]
        assert all((r["action"] or "").lower() == "failed" for r in info["recipients"]), info
    assert sorted(failed) == ["bad@mixedbad.test", "no@mixedok.test"], failed
