"""/metrics moves with real traffic (docs/metrics.md "Where each family is
counted"): an inbound SMTP session with STARTTLS and a message of two
recipients, a POST /v1/messages, their deliveries to a fake MX with
STARTTLS found through the test DNS. Each family the traffic touches
grows by what was sent: accepted by source, SMTP sessions and TLS
handshakes by direction, delivered, the DNS, spool-commit and delivery
histograms."""
import smtplib
import ssl

import pytest

import helpers
from conftest import Server
from httpapi import create_key, request, wait_http
from mx import dns, farm, mx_relay, mx_zone  # noqa: F401
from test_metrics import scrape, value

SENDER_IP = "127.0.0.11"
DEST_IP = "127.0.0.43"


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "metrics.test": DEST_IP})


@pytest.fixture(scope="module")
def mx(farm):
    m = farm.add(DEST_IP, tls=True)
    yield m
    farm.remove(DEST_IP)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, cert, dns, farm, mx):
    s = Server(tmp_path_factory.mktemp("metrics"), cert, relay=mx_relay(dns.address, farm),
               listeners={"mx": {"tls": "starttls", "auth": "optional"}})
    s.start()
    wait_http(s)
    s.add_user("ann", domains=("sender.test",))
    s.key = create_key(s, "ann")
    yield s
    s.stop()


def counter(fams, family, **labels):
    return value(fams, family, family + "_total", **labels) or 0


def count(fams, family):
    return value(fams, family, family + "_count") or 0


def delivered_to(mx, rcpt):
    with mx.lock:
        return any(rcpt in t.rcpts for t in mx.messages)


def test_traffic_moves_the_families(srv, mx):
    b = scrape(srv)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as c:
        c.ehlo("client.test")
        c.starttls(context=ctx)
        c.ehlo("client.test")
        c.sendmail("a@sender.test", ["m1@metrics.test", "m2@metrics.test"],
                   helpers.message())
    r = request(srv, "POST", "/v1/messages", key=srv.key,
                body={"from": "a@sender.test", "to": ["m3@metrics.test"], "subject": "s",
                      "text": "x"})
    assert r.status == 200, r.body
    for rcpt in ("m1@metrics.test", "m2@metrics.test", "m3@metrics.test"):
        helpers.wait_for(lambda: delivered_to(mx, rcpt), 20, what=f"delivery to {rcpt}")
    helpers.wait_for(lambda: counter(scrape(srv), "posthorn_messages_delivered")
                     >= counter(b, "posthorn_messages_delivered") + 3, 10, what="delivered 3")
    a = scrape(srv)
    grew = {
        "accepted smtp": (counter(a, "posthorn_messages_accepted", source="smtp")
                          - counter(b, "posthorn_messages_accepted", source="smtp")),
        "accepted http": (counter(a, "posthorn_messages_accepted", source="http")
                          - counter(b, "posthorn_messages_accepted", source="http")),
        "sessions in": (counter(a, "posthorn_smtp_sessions", direction="inbound")
                        - counter(b, "posthorn_smtp_sessions", direction="inbound")),
        "sessions out": (counter(a, "posthorn_smtp_sessions", direction="outbound")
                         - counter(b, "posthorn_smtp_sessions", direction="outbound")),
        "tls in ok": (counter(a, "posthorn_tls_handshakes", direction="inbound", result="ok")
                      - counter(b, "posthorn_tls_handshakes", direction="inbound", result="ok")),
        "tls out ok": (counter(a, "posthorn_tls_handshakes", direction="outbound", result="ok")
                       - counter(b, "posthorn_tls_handshakes", direction="outbound",
                                 result="ok")),
        "dns": (count(a, "posthorn_dns_lookup_duration_seconds")
                - count(b, "posthorn_dns_lookup_duration_seconds")),
        "delivered": (counter(a, "posthorn_messages_delivered")
                      - counter(b, "posthorn_messages_delivered")),
        "delivery": (count(a, "posthorn_delivery_duration_seconds")
                     - count(b, "posthorn_delivery_duration_seconds")),
        "commits": (count(a, "posthorn_spool_commit_duration_seconds")
                    - count(b, "posthorn_spool_commit_duration_seconds")),
    }
    assert grew["accepted smtp"] == 2 and grew["accepted http"] == 1, grew
    assert grew["sessions in"] == 1 and grew["tls in ok"] == 1, grew
    assert grew["sessions out"] >= 1 and grew["tls out ok"] >= 1, grew
    assert grew["dns"] >= 1 and grew["commits"] == 2, grew
    assert grew["delivered"] == 3 and grew["delivery"] == 3, grew
