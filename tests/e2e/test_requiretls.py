"""REQUIRETLS (RFC 8689) end to end. Receiving: the keyword only after
STARTTLS, the MAIL parameter only over TLS (530 5.7.10), the flag kept in
the envelope. Delivering: only over TLS with a verified certificate to an
MX that offers REQUIRETLS, passed on in MAIL FROM; otherwise a bounce,
5.7.10 (no verified TLS session) or 5.7.30 (no REQUIRETLS), after every MX
host was tried. The fake MX hosts have certificates from a test CA the
server trusts through [tls] ca_file."""
import os
import smtplib

import pytest

import helpers
from mx import (WAIT, Zone, assert_failure_dsn, deliveries, dns, farm, msg_bytes,  # noqa: F401
                mxs, start, wait_dsn, wait_msgs, wait_status)
from pki import PKI, server_context

SENDER_IP = "127.0.0.11"
FROM = "alice@sender.test"
# Senders whose MX takes REQUIRETLS over verified TLS: a report about a
# REQUIRETLS message travels under REQUIRETLS too (RFC 8689 5)
RSENDER = ("rsender.test", "mx.rsender.test", "127.0.0.57")
DOMAINS = {  # domain -> [(pref, MX host, address)]
    "ok.rtls.test": [(10, "mx.ok.rtls.test", "127.0.0.51")],
    "plain.rtls.test": [(10, "mx.plain.rtls.test", "127.0.0.52")],
    "noext.rtls.test": [(10, "mx.noext.rtls.test", "127.0.0.53")],
    "selfsigned.rtls.test": [(10, "mx.selfsigned.rtls.test", "127.0.0.54")],
    "second.rtls.test": [(10, "mx1.second.rtls.test", "127.0.0.55"),
                         (20, "mx2.second.rtls.test", "127.0.0.56")],
}


def build_zone():
    z = Zone().mx("sender.test", "mx.sender.test").host("mx.sender.test", SENDER_IP)
    z.mx(RSENDER[0], RSENDER[1]).host(RSENDER[1], RSENDER[2])
    for domain, hosts in DOMAINS.items():
        for pref, host, ip in hosts:
            z.mx(domain, host, pref).host(host, ip)
    return z


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def srv_rtls(start, pki):
    def make():
        return start(listeners={"mx": {"tls": "starttls", "auth": "optional"}},
                     tls_keys={"ca_file": pki.ca})
    return make


def good_mx(mxs, pki, domain, i=0, **kw):
    _, host, ip = DOMAINS[domain][i]
    return mxs(ip, tls=True, tls_context=server_context(pki.leaf(host, f"DNS:{host}")), **kw)


def send_requiretls(srv, to, subject="rtls", frm=FROM):
    """Over STARTTLS, MAIL FROM ... REQUIRETLS; returns the queue ID."""
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=helpers.TIMEOUT) as s:
        s.ehlo("client.test")
        s.starttls(context=helpers.client_tls_context())
        s.ehlo("client.test")
        assert s.has_extn("requiretls")
        # RET=FULL: a report about it must still return headers only
        code, text = s.mail(frm, ["REQUIRETLS", "RET=FULL"])
        assert code == 250, (code, text)
        code, text = s.rcpt(to)
        assert code == 250, (code, text)
        code, text = s.data(msg_bytes(frm, to, subject))
        assert code == 250, (code, text)
        return helpers.queued_id(text)


def test_keyword_only_after_starttls_and_parameter_only_over_tls(srv_rtls):
    srv = srv_rtls()
    with helpers.RawSMTP(srv.port) as c:
        assert "REQUIRETLS" not in helpers.ehlo_keywords(c.ehlo())
        r = c.cmd(f"MAIL FROM:<{FROM}> REQUIRETLS")
        assert (r.code, r.lines[0].split()[0]) == (530, "5.7.10"), r
        c.starttls()
        assert "REQUIRETLS" in helpers.ehlo_keywords(c.ehlo())
        r = c.cmd(f"MAIL FROM:<{FROM}> REQUIRETLS")
        assert r.code == 250, r


def test_flag_is_kept_in_the_envelope_across_a_restart(srv_rtls, mxs, pki):
    """Queued while the MX is down (deferred): the envelope record is
    version 2 with the flag; after a restart the message still demands
    REQUIRETLS of the next hop."""
    srv = srv_rtls()
    to = "dave@ok.rtls.test"
    qid = send_requiretls(srv, to, subject="later")
    wait_status(srv, qid, to, "deferred")
    with open(os.path.join(srv.data_dir, "spool", "queue", qid), "rb") as f:
        data = f.read()
    assert b"PHENV 2\n" in data and b"\nrequiretls 1\n" in data
    srv.restart()
    mx = good_mx(mxs, pki, "ok.rtls.test", requiretls=True)
    wait_status(srv, qid, to, "sent")
    assert "REQUIRETLS" in wait_msgs(mx, 1, srv)[0].mail_options


def test_delivered_over_verified_tls_and_passed_on(srv_rtls, mxs, pki):
    mx = good_mx(mxs, pki, "ok.rtls.test", requiretls=True)
    srv = srv_rtls()
    to = "bob@ok.rtls.test"
    qid = send_requiretls(srv, to)
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=requiretls" in line["line"] and "verified=yes" in line["line"], line
    t = wait_msgs(mx, 1, srv)[0]
    assert t.tls and "REQUIRETLS" in t.mail_options, t.mail_options


@pytest.mark.parametrize("domain,status,words", [
    ("plain.rtls.test", "5.7.10", "REQUIRETLS: no verified TLS session"),
    ("noext.rtls.test", "5.7.30", "REQUIRETLS required but not offered"),
    ("selfsigned.rtls.test", "5.7.10", "REQUIRETLS: no verified TLS session"),
])
def test_bounces_without_a_path_that_keeps_it(srv_rtls, mxs, pki, farm, domain, status, words):
    """The bounce itself goes under REQUIRETLS (to a sender MX that offers
    it), with the original's headers only (RFC 8689 5: as if RET=HDRS)."""
    _, host, ip = DOMAINS[domain][0]
    if domain == "plain.rtls.test":
        mx = mxs(ip, requiretls=True)  # no STARTTLS at all
    elif domain == "noext.rtls.test":
        mx = good_mx(mxs, pki, domain)  # verified TLS, no REQUIRETLS
    else:
        mx = mxs(ip, tls=True, requiretls=True,
                 tls_context=server_context(pki.leaf(host, f"DNS:{host}", self_signed=True)))
    sender_mx = farm.mxs.get(RSENDER[2]) or good_sender_mx(mxs, pki)
    srv = srv_rtls()
    to, frm = f"bob@{domain}", f"{domain.split('.')[0]}@{RSENDER[0]}"
    qid = send_requiretls(srv, to, frm=frm)
    line = wait_status(srv, qid, to, "bounced")
    assert f"dsn={status}" in line["line"] and words in line["reply"], line
    assert mx.messages == [], "the message was downgraded"
    t = wait_dsn(farm, frm, srv)
    assert t.mx is sender_mx and t.tls and "REQUIRETLS" in t.mail_options, t.mail_options
    info = assert_failure_dsn(t, to, status.replace(".", r"\."), subject="rtls")
    assert b"Hello there." not in t.content, "the body came back"
    assert info["returned_headers"]


def good_sender_mx(mxs, pki):
    return mxs(RSENDER[2], tls=True, requiretls=True,
               tls_context=server_context(pki.leaf(RSENDER[1], f"DNS:{RSENDER[1]}")))


def test_next_mx_host_is_tried_before_bouncing(srv_rtls, mxs, pki):
    _, _, ip1 = DOMAINS["second.rtls.test"][0]
    first = mxs(ip1)  # no TLS
    second = good_mx(mxs, pki, "second.rtls.test", 1, requiretls=True)
    srv = srv_rtls()
    to = "bob@second.rtls.test"
    qid = send_requiretls(srv, to)
    wait_status(srv, qid, to, "sent")
    assert first.messages == [] and len(wait_msgs(second, 1, srv)) == 1


def test_plain_message_to_the_same_domain_is_not_held_to_it(srv_rtls, mxs):
    """Another message of the same domain, without REQUIRETLS, goes as
    usual (its own lane): the flag is the message's, not the domain's."""
    _, _, ip = DOMAINS["plain.rtls.test"][0]
    mx = mxs(ip)
    srv = srv_rtls()
    to = "carol@plain.rtls.test"
    qid = helpers.send_raw_message(srv.port, FROM, [to], msg_bytes(FROM, to, "plain"))
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=none" in line["line"], line
    assert len(wait_msgs(mx, 1, srv)) == 1
