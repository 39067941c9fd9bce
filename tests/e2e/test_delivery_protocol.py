"""More of SPEC §4 against real peers: per-recipient results inside one
transaction, replies at the end of DATA, recipient batching above 100,
SIZE / 8BITMIME / SMTPUTF8 of the receiving server, temporary DNS failure,
a destination in backoff next to a healthy one, DSN parameters (NOTIFY,
RET, ENVID, ORCPT), queue delete, restart with deferred mail, equal MX
preferences. Same harness as test_delivery.py (tests/e2e/mx.py)."""
import signal
import time
import uuid

import helpers
from mx import (WAIT, FakeUpstreamDNS, Zone, alive_poll, assert_failure_dsn,  # noqa: F401
                deliveries, dns, dsns_to, farm, log_excerpt, msg_bytes, mxs, parse_dsn, start,
                submit, submit_many, wait_dsn, wait_queue_empty, wait_rcpts, wait_status)

SENDER_IP = "127.0.0.11"

MX_TABLE = {
    "sender.test": [(10, "mx.sender.test", SENDER_IP)],
    "partial.test": [(10, "mx.partial.test", "127.0.0.12")],
    "datarej.test": [(10, "mx.datarej.test", "127.0.0.13")],
    "datadefer.test": [(10, "mx.datadefer.test", "127.0.0.14")],
    "split.test": [(10, "mx.split.test", "127.0.0.15")],
    "small.test": [(10, "mx.small.test", "127.0.0.16")],
    "eight.test": [(10, "mx.eight.test", "127.0.0.17")],
    "noutf8.test": [(10, "mx.noutf8.test", "127.0.0.18")],
    "utf8.test": [(10, "mx.utf8.test", "127.0.0.19")],
    "busy.test": [(10, "mx.busy.test", "127.0.0.20")],
    "fast.test": [(10, "mx.fast.test", "127.0.0.21")],
    "dsnrej.test": [(10, "mx.dsnrej.test", "127.0.0.22")],
    "dsnok.test": [(10, "mx.dsnok.test", "127.0.0.23")],
    "qdel.test": [(10, "mx.qdel.test", "127.0.0.24")],
    "resume.test": [(10, "mx.resume.test", "127.0.0.25")],
    "permsg.test": [(10, "mx.permsg.test", "127.0.0.28")],
    "rate.test": [(10, "mx.rate.test", "127.0.0.29")],
    "badtls.test": [(10, "mx.badtls.test", "127.0.0.30")],
}
EQUAL_IPS = ("127.0.0.26", "127.0.0.27")
DUAL_IP = "127.0.0.31"
EQUAL_DOMAINS = [f"eq{i}.test" for i in range(12)]


def build_zone():
    z = Zone()
    for domain, hosts in MX_TABLE.items():
        for pref, host, ip in hosts:
            z.mx(domain, host, pref).host(host, ip)
    # twelve domains, each with the same two MX hosts at preference 10
    z.host("mxa.eq.test", EQUAL_IPS[0]).host("mxb.eq.test", EQUAL_IPS[1])
    for d in EQUAL_DOMAINS:
        z.mx(d, "mxa.eq.test", 10).mx(d, "mxb.eq.test", 10)
    # dual stack: AAAA ::1 (nothing listens there in this module) and A
    z.mx("dual.test", "mx.dual.test", 10).host("mx.dual.test", DUAL_IP, "::1")
    # an MX whose host has no address record at all
    z.mx("nohost.test", "mx.nohost.test", 10)
    return z


UPSTREAM = {}


def dns_hook(zone, farm):
    """servfail.test is forwarded to an upstream that answers SERVFAIL."""
    up = FakeUpstreamDNS(rcode=2)
    UPSTREAM["servfail"] = up
    zone.lines.append(f"server=/servfail.test/127.0.0.1#{up.port}")


def ip_of(domain):
    return MX_TABLE[domain][0][2]


def rcpt_lines(srv, qid, to):
    return "\n".join(d["line"] for d in deliveries(srv, qid, to))


# ---------------------------------------------------------------- per-recipient results


def test_partial_rcpt_deferral_no_duplicates(start, mxs):
    """One of three RCPTs gets 451 once: the other two are delivered in the
    first transaction and never again; the third alone in a later one."""
    mx = mxs(ip_of("partial.test"), defer_first={"b@partial.test": 1})
    srv = start()
    rcpts = ["a@partial.test", "b@partial.test", "c@partial.test"]
    qid = submit(srv, "m1@sender.test", rcpts, msg_bytes("m1@sender.test", rcpts, "m1"))
    wait_rcpts(mx, rcpts, srv)
    wait_queue_empty(srv)
    got = [sorted(t.rcpts) for t in mx.messages]
    assert got == [["a@partial.test", "c@partial.test"], ["b@partial.test"]], got
    assert [d["status"] for d in deliveries(srv, qid, "b@partial.test")] == \
        ["deferred", "sent"], rcpt_lines(srv, qid, "b@partial.test")
    for r in ("a@partial.test", "c@partial.test"):
        assert [d["status"] for d in deliveries(srv, qid, r)] == ["sent"], rcpt_lines(srv, qid, r)


def test_data_5xx_bounces_every_recipient(start, mxs, farm):
    mx = mxs(ip_of("datarej.test"), data_reply="554 5.7.1 fake content rejected here")
    srv = start()
    rcpts = ["x@datarej.test", "y@datarej.test"]
    qid = submit(srv, "m2@sender.test", rcpts, msg_bytes("m2@sender.test", rcpts, "m2 data"))
    for r in rcpts:
        d = wait_status(srv, qid, r, "bounced")
        assert d["dsn"] == "5.7.1" and "fake content rejected here" in d["reply"], d["line"]
    wait_queue_empty(srv)
    alive_poll(srv, lambda: dsns_to(farm, "m2@sender.test"), WAIT, "the DSN")
    failed = []
    for t in dsns_to(farm, "m2@sender.test"):
        info = parse_dsn(t.content)
        for r in info["recipients"]:
            assert r["action"].lower() == "failed" and r["status"] == "5.7.1", r
            assert "fake content rejected here" in " ".join(r["diagnostic_code"].split()), r
            failed.append(r["final_recipient"].split(";")[1].strip())
    assert sorted(failed) == rcpts
    assert mx.data_tries == 1  # 5xx: not retried


def test_data_4xx_defers_every_recipient_then_delivers(start, mxs):
    mx = mxs(ip_of("datadefer.test"), data_defer_first=1)
    srv = start()
    rcpts = ["x@datadefer.test", "y@datadefer.test"]
    qid = submit(srv, "m3@sender.test", rcpts, msg_bytes("m3@sender.test", rcpts, "m3"))
    wait_rcpts(mx, rcpts, srv)
    for r in rcpts:
        wait_status(srv, qid, r, "sent")
        assert [d["status"] for d in deliveries(srv, qid, r)] == ["deferred", "sent"], \
            rcpt_lines(srv, qid, r)
    assert [sorted(t.rcpts) for t in mx.messages] == [rcpts]
    wait_queue_empty(srv)


def test_150_recipients_two_transactions(start, mxs):
    """More recipients than one transaction should carry (100, RFC 5321
    4.5.3.1.8): split, each delivered exactly once."""
    mx = mxs(ip_of("split.test"))
    srv = start()
    rcpts = [f"r{i:03d}@split.test" for i in range(150)]
    qid = submit(srv, "m4@sender.test", rcpts, msg_bytes("m4@sender.test", rcpts[:1], "m4"))
    wait_rcpts(mx, rcpts, srv)
    wait_queue_empty(srv)
    sizes = sorted(len(t.rcpts) for t in mx.messages)
    assert sizes == [50, 100], sizes
    assert sorted(mx.delivered_rcpts()) == rcpts  # no duplicates
    assert len([d for d in deliveries(srv, qid) if d["status"] == "sent"]) == 150


# ---------------------------------------------------------------- the receiver's extensions


def test_message_over_remote_size_bounces_without_mail(start, mxs, farm):
    """The MX advertises SIZE 2000; a 6 kB message bounces (5.3.4) and no
    MAIL is sent (docs/delivery.md: Posthorn checks SIZE before MAIL)."""
    mx = mxs(ip_of("small.test"), size_limit=2000)
    srv = start()
    rcpt = "big@small.test"
    body = b"".join(b"line %04d of a long message, long enough to pass 2000 octets\r\n" % i
                    for i in range(100))
    qid = submit(srv, "m5@sender.test", [rcpt], msg_bytes("m5@sender.test", rcpt, "m5", body))
    d = wait_status(srv, qid, rcpt, "bounced")
    assert d["dsn"] == "5.3.4", d["line"]
    t = wait_dsn(farm, "m5@sender.test", srv)
    assert_failure_dsn(t, rcpt, r"5\.3\.4", subject="m5")
    assert mx.mails == [] and mx.messages == []
    wait_queue_empty(srv)


def test_8bitmime_passed_on(start, mxs):
    mx = mxs(ip_of("eight.test"))
    srv = start()
    rcpt = "e@eight.test"
    body = "Grüße, café, naïve — 8-bit body\r\n".encode("utf-8")
    data = msg_bytes("m6@sender.test", rcpt, "m6 8bit", body,
                     extra=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           b"Content-Transfer-Encoding: 8bit\r\n")
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        assert s.mail("m6@sender.test", ["BODY=8BITMIME"])[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        code, text = s.data(data)
        assert code == 250, (code, text)
        qid = helpers.queued_id(text)
    wait_rcpts(mx, [rcpt], srv)
    (conn, frm, params), = mx.mails
    assert "BODY=8BITMIME" in params, params
    assert mx.messages[0].content.endswith(data)
    wait_status(srv, qid, rcpt, "sent")


def _submit_utf8(srv, frm, rcpt, data):
    with helpers.smtp(srv.port) as s:
        s.command_encoding = "utf-8"
        code, text = s.ehlo("client.test")
        assert code == 250 and s.has_extn("smtputf8"), text
        code, text = s.mail(frm, ["SMTPUTF8", "BODY=8BITMIME"])
        assert code == 250, (code, text)
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)
        return helpers.queued_id(text)


def test_smtputf8(start, mxs, farm):
    """A message that needs SMTPUTF8: delivered with SMTPUTF8 to a server
    that offers it; bounced 5.6.7 without MAIL to one that does not."""
    yes = mxs(ip_of("utf8.test"), smtputf8=True)
    no = mxs(ip_of("noutf8.test"), smtputf8=False)
    srv = start()
    ok_rcpt, bad_rcpt = "jürgen@utf8.test", "jürgen@noutf8.test"
    q1 = _submit_utf8(srv, "m7@sender.test", ok_rcpt,
                      msg_bytes("m7@sender.test", "x@utf8.test", "m7 utf8"))
    q2 = _submit_utf8(srv, "m7@sender.test", bad_rcpt,
                      msg_bytes("m7@sender.test", "x@noutf8.test", "m7 no utf8"))
    wait_rcpts(yes, [ok_rcpt], srv)
    (conn, frm, params), = yes.mails
    assert "SMTPUTF8" in params, params
    wait_status(srv, q1, ok_rcpt, "sent")
    d = wait_status(srv, q2, bad_rcpt, "bounced")
    assert d["dsn"] == "5.6.7", d["line"]
    assert no.mails == [], no.mails
    t = wait_dsn(farm, "m7@sender.test", srv)
    info = parse_dsn(t.content)
    assert info["recipients"] and info["recipients"][0]["status"] == "5.6.7", info
    wait_queue_empty(srv)


# ---------------------------------------------------------------- DNS


def test_dns_servfail_defers(start, dns):
    """SERVFAIL is temporary: deferred (4.4.3), kept, no bounce."""
    srv = start()
    rcpt = "s@servfail.test"
    qid = submit(srv, "m8@sender.test", [rcpt], msg_bytes("m8@sender.test", rcpt, "m8"))
    d = wait_status(srv, qid, rcpt, "deferred")
    assert d["dsn"].startswith("4.") and d["relay"] == "none", d["line"]
    alive_poll(srv, lambda: len(deliveries(srv, qid, rcpt)) >= 2, WAIT, "a second attempt")
    assert all(x["status"] == "deferred" for x in deliveries(srv, qid, rcpt)), \
        rcpt_lines(srv, qid, rcpt)
    assert qid in srv.queue()
    assert UPSTREAM["servfail"].queries >= 1


def test_dual_stack_host_falls_back_to_ipv4(start, mxs):
    """The MX host has AAAA ::1 (refused) and A 127.0.0.31: the same attempt
    goes on to the IPv4 address."""
    mx = mxs(DUAL_IP)
    srv = start()
    rcpt = "d@dual.test"
    qid = submit(srv, "m21@sender.test", [rcpt], msg_bytes("m21@sender.test", rcpt, "m21"))
    wait_rcpts(mx, [rcpt], srv)
    d = wait_status(srv, qid, rcpt, "sent")
    assert d["attempt"] == "1" and f"[{DUAL_IP}]" in d["relay"], rcpt_lines(srv, qid, rcpt)


def test_mx_host_without_address_bounces(start, farm):
    """The only MX host has no A/AAAA (NXDOMAIN): bounced, 5.4.4 as
    docs/delivery.md says."""
    srv = start()
    rcpt = "h@nohost.test"
    qid = submit(srv, "m9@sender.test", [rcpt], msg_bytes("m9@sender.test", rcpt, "m9"))
    d = wait_status(srv, qid, rcpt, "bounced")
    assert d["dsn"] == "5.4.4", d["line"]
    wait_dsn(farm, "m9@sender.test", srv)
    wait_queue_empty(srv)


# ---------------------------------------------------------------- throttling


def test_backoff_does_not_block_other_domains(start, mxs):
    """busy.test greets 421 (push back: its destination backs off); mail to
    fast.test submitted afterwards still goes out at once."""
    busy = mxs(ip_of("busy.test"), greet_421=True)
    fast = mxs(ip_of("fast.test"))
    srv = start()
    items = [("m10@sender.test", [f"b{i}@busy.test"],
              msg_bytes("m10@sender.test", f"b{i}@busy.test", f"m10 {i}")) for i in range(5)]
    ids = submit_many(srv, items)
    alive_poll(srv, lambda: busy.connections >= 1, WAIT, "a connection to busy.test")
    t0 = time.monotonic()
    submit(srv, "m10@sender.test", ["f@fast.test"], msg_bytes("m10@sender.test", "f@fast.test",
                                                              "m10 fast"))
    wait_rcpts(fast, ["f@fast.test"], srv, timeout=5)
    assert time.monotonic() - t0 < 5
    for qid, (_, (r,), _) in zip(ids, items):
        assert all(d["status"] == "deferred" for d in deliveries(srv, qid, r)), \
            rcpt_lines(srv, qid, r)
    assert not busy.messages


def test_max_messages_per_connection(start, mxs):
    """max_connections = 1, max_messages_per_connection = 2: six messages
    take three connections of two transactions each."""
    mx = mxs(ip_of("permsg.test"))
    srv = start(extra="[domain.permsg.test]\nmax_connections = 1\n"
                      "max_messages_per_connection = 2")
    rcpts = [f"p{i}@permsg.test" for i in range(6)]
    submit_many(srv, [("m17@sender.test", [r], msg_bytes("m17@sender.test", r, f"m17 {r}"))
                      for r in rcpts])
    wait_rcpts(mx, rcpts, srv)
    assert mx.max_active == 1, mx.max_active
    assert sorted(mx.txns_per_conn.values()) == [2, 2, 2], dict(mx.txns_per_conn)
    wait_queue_empty(srv)


def test_max_rate(start, mxs):
    """max_rate = 2/s (a bucket of at most 2): six messages cannot all go
    out in less than (6 - 2) / 2 = 2 s."""
    mx = mxs(ip_of("rate.test"))
    srv = start(extra="[domain.rate.test]\nmax_rate = 2/s")
    rcpts = [f"q{i}@rate.test" for i in range(6)]
    submit_many(srv, [("m18@sender.test", [r], msg_bytes("m18@sender.test", r, f"m18 {r}"))
                      for r in rcpts])
    t0 = time.monotonic()
    wait_rcpts(mx, rcpts[:1], srv)
    first = time.monotonic()
    wait_rcpts(mx, rcpts, srv)
    spread = time.monotonic() - first
    assert spread >= 1.8, f"6 messages within {spread:.2f}s at max_rate = 2/s"
    assert time.monotonic() - t0 < 10
    wait_queue_empty(srv)


# ---------------------------------------------------------------- TLS trouble


def test_tls_handshake_failure_opportunistic_falls_back_to_clear(start, mxs):
    """STARTTLS offered but every handshake fails: under opportunistic the
    same host is tried again without STARTTLS (docs/delivery.md)."""
    mx = mxs(ip_of("badtls.test"), tls_broken=True)
    srv = start()
    rcpt = "t@badtls.test"
    qid = submit(srv, "m19@sender.test", [rcpt], msg_bytes("m19@sender.test", rcpt, "m19"))
    wait_rcpts(mx, [rcpt], srv)
    d = wait_status(srv, qid, rcpt, "sent")
    assert d["tls"] == "none", d["line"]
    assert mx.messages[0].tls is None
    assert mx.connections >= 2, mx.connections
    wait_queue_empty(srv)


def test_tls_handshake_failure_required_never_clear(start, mxs):
    mx = mxs(ip_of("badtls.test"), tls_broken=True)
    srv = start(relay={"outbound_tls": "required"})
    rcpt = "t@badtls.test"
    qid = submit(srv, "m20@sender.test", [rcpt], msg_bytes("m20@sender.test", rcpt, "m20"))
    alive_poll(srv, lambda: len(deliveries(srv, qid, rcpt)) >= 2, WAIT, "two attempts")
    assert all(d["status"] == "deferred" for d in deliveries(srv, qid, rcpt)), \
        rcpt_lines(srv, qid, rcpt)
    assert not mx.mails and not mx.messages, "mail went in clear under outbound_tls=required"
    assert qid in srv.queue()


# ---------------------------------------------------------------- DSN parameters


def test_notify_never_suppresses_the_bounce(start, mxs, farm):
    mxs(ip_of("dsnrej.test"), reject_rcpt=True)
    srv = start()
    rcpt = "never@dsnrej.test"
    token = uuid.uuid4().hex
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        assert s.has_extn("dsn")
        assert s.mail("m11@sender.test")[0] == 250
        assert s.rcpt(rcpt, ["NOTIFY=NEVER"])[0] == 250
        code, text = s.data(msg_bytes("m11@sender.test", rcpt, f"m11 {token}"))
        assert code == 250
        qid = helpers.queued_id(text)
    wait_status(srv, qid, rcpt, "bounced")
    wait_queue_empty(srv)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert not dsns_to(farm, "m11@sender.test"), "a DSN despite NOTIFY=NEVER"
        time.sleep(0.1)


def test_ret_hdrs_envid_orcpt_in_the_dsn(start, mxs, farm):
    mxs(ip_of("dsnrej.test"), reject_rcpt=True)
    srv = start()
    rcpt = "hdrs@dsnrej.test"
    body = b"SECRET-BODY-LINE must not come back with RET=HDRS\r\n"
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        assert s.mail("m12@sender.test", ["RET=HDRS", "ENVID=env-m12-42"])[0] == 250
        assert s.rcpt(rcpt, ["NOTIFY=FAILURE", "ORCPT=rfc822;orig-m12@example.org"])[0] == 250
        code, text = s.data(msg_bytes("m12@sender.test", rcpt, "m12 hdrs", body))
        assert code == 250
        qid = helpers.queued_id(text)
    wait_status(srv, qid, rcpt, "bounced")
    t = wait_dsn(farm, "m12@sender.test", srv)
    info = assert_failure_dsn(t, rcpt, r"5\.\d+\.\d+", subject="m12 hdrs")
    assert info["returned"] == "headers", info["returned_type"]
    assert b"SECRET-BODY-LINE" not in t.content
    assert info["original_envelope_id"] == "env-m12-42", info
    orig = (info["recipients"][0]["original_recipient"] or "").replace(" ", "").lower()
    assert orig == "rfc822;orig-m12@example.org", info["recipients"][0]


def test_dsn_parameters_not_sent_to_a_server_without_dsn(start, mxs, farm):
    """The MX does not offer DSN: Posthorn must not send NOTIFY/ORCPT/RET/
    ENVID to it (aiosmtpd answers 555 to unknown parameters). With
    NOTIFY=SUCCESS, RFC 3461 5.2.2 asks for a "relayed" DSN to the sender."""
    mx = mxs(ip_of("dsnok.test"))
    srv = start()
    rcpt = "ok@dsnok.test"
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        assert s.mail("m13@sender.test", ["RET=FULL", "ENVID=env-m13"])[0] == 250
        assert s.rcpt(rcpt, ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;ok@dsnok.test"])[0] == 250
        code, text = s.data(msg_bytes("m13@sender.test", rcpt, "m13"))
        assert code == 250
        qid = helpers.queued_id(text)
    d = wait_status(srv, qid, rcpt, "sent", timeout=WAIT)
    assert mx.mails and all(not any(p.startswith(("RET=", "ENVID=")) for p in params)
                            for _, _, params in mx.mails), mx.mails
    assert mx.messages, d["line"]
    t = wait_dsn(farm, "m13@sender.test", srv)
    info = parse_dsn(t.content)
    assert info["recipients"], info
    assert info["recipients"][0]["action"].lower() in ("relayed", "delivered"), info
    assert info["original_envelope_id"] == "env-m13", info


# ---------------------------------------------------------------- steering


def test_queue_delete_of_deferred_message(start, mxs, farm):
    mx = mxs(ip_of("qdel.test"), defer_always=True)
    srv = start()
    rcpt = "d@qdel.test"
    qid = submit(srv, "m14@sender.test", [rcpt], msg_bytes("m14@sender.test", rcpt, "m14"))
    wait_status(srv, qid, rcpt, "deferred")
    rc, out, err = srv.cli("queue", "delete", qid)
    assert rc == 0, (rc, out, err)
    wait_queue_empty(srv, timeout=5)
    tries = mx.rcpt_tries[rcpt]
    time.sleep(2.5)  # the retry schedule is 1s, 2s: an attempt would have come
    assert mx.rcpt_tries[rcpt] == tries, "a deleted message was tried again"
    assert not dsns_to(farm, "m14@sender.test"), "queue delete sent a bounce"


def test_restart_resumes_deferred_mail(start, mxs, farm):
    """The MX is down (connection refused): deferred. SIGTERM, the MX comes
    up, start again: the deferred recipient is delivered."""
    srv = start()
    rcpt = "r@resume.test"
    qid = submit(srv, "m15@sender.test", [rcpt], msg_bytes("m15@sender.test", rcpt, "m15"))
    d = wait_status(srv, qid, rcpt, "deferred")
    assert d["dsn"].startswith("4."), d["line"]
    srv.stop()
    assert qid in srv.queue()
    mx = mxs(ip_of("resume.test"))
    srv.restart()
    wait_rcpts(mx, [rcpt], srv)
    wait_status(srv, qid, rcpt, "sent")
    wait_queue_empty(srv)


def test_equal_preferences_are_shuffled(start, mxs):
    """Twelve domains with the same two MX hosts at preference 10: both hosts
    get mail (all twelve to one host: chance 1 in 2048 if shuffled)."""
    a = mxs(EQUAL_IPS[0])
    b = mxs(EQUAL_IPS[1])
    srv = start()
    items = [("m16@sender.test", [f"u@{d}"], msg_bytes("m16@sender.test", f"u@{d}", f"m16 {d}"))
             for d in EQUAL_DOMAINS]
    submit_many(srv, items)
    alive_poll(srv, lambda: len(a.messages) + len(b.messages) >= len(EQUAL_DOMAINS), WAIT,
               "all twelve delivered")
    assert a.messages and b.messages, (len(a.messages), len(b.messages))
    wait_queue_empty(srv)


# ---------------------------------------------------------------- SIGHUP


def test_sighup_reloads_domain_limits(start, mxs):
    """SPEC §1: SIGHUP reloads throttles. max_rate = 1/h lets one message
    out and holds the next for an hour; after the file says unlimited and
    the server gets SIGHUP, the held message goes at once. A file with an
    error on the next SIGHUP changes nothing and is logged."""
    mx = mxs(ip_of("rate.test"))
    srv = start(extra="[domain.rate.test]\nmax_rate = 1/h")
    rcpts = ["h1@rate.test", "h2@rate.test"]
    submit_many(srv, [("m40@sender.test", [r], msg_bytes("m40@sender.test", r, f"m40 {r}"))
                      for r in rcpts])
    wait_rcpts(mx, rcpts[:1], srv)
    time.sleep(1.5)
    assert len(mx.messages) == 1, "max_rate = 1/h let a second message through"
    srv._extra = "[domain.rate.test]\nmax_rate = unlimited"
    srv.write_conf()
    srv.proc.send_signal(signal.SIGHUP)
    wait_rcpts(mx, rcpts, srv)
    helpers.wait_for(lambda: "event=reload what=domains" in srv.log(), what="reload log line")
    srv._extra = "[domain.rate.test]\nmax_rate = fast"
    srv.write_conf()
    srv.proc.send_signal(signal.SIGHUP)
    helpers.wait_for(lambda: "event=reload_error" in srv.log(), what="reload error logged")
    assert "max_rate" in srv.log().split("event=reload_error", 1)[1].splitlines()[0]
    assert srv.proc.poll() is None
    srv._extra = ""  # the CLI reads the file too
    srv.write_conf()
    wait_queue_empty(srv)
