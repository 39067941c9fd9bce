"""The scheduler's share of /metrics (docs/metrics.md): recipients
delivered (with the delivery latency histogram), deferred and bounced by
reason class, and the age of the oldest queued message read from the
scheduler, against a real server and fake MX hosts."""
import re
import time

import helpers
import httpapi
from mx import dns, farm, mxs, start, wait_rcpts, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
OK_IP = "127.0.0.44"
BAD_IP = "127.0.0.45"
SLOW_IP = "127.0.0.46"


def build_zone():
    from mx import Zone
    z = Zone()
    for dom, ip in (("sender.test", SENDER_IP), ("ok.test", OK_IP), ("bad.test", BAD_IP),
                    ("slow.test", SLOW_IP)):
        z.mx(dom, f"mx.{dom}", 10).host(f"mx.{dom}", ip)
    return z


def scrape(s):
    r = httpapi.request(s, "GET", "/metrics")
    assert r.status == 200
    return r.body.decode()


def value(text, series):
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert m, f"{series} not in /metrics"
    return float(m.group(1))


def test_delivery_counters(start, mxs):
    mxs(OK_IP)
    mxs(BAD_IP, reject_rcpt=True)
    mxs(SLOW_IP, defer_always=True)
    s = start()
    httpapi.wait_http(s)
    before = scrape(s)
    helpers.send_raw_message(s.port, "a@sender.test", ["x@ok.test", "y@ok.test"],
                             helpers.message(frm="a@sender.test", to="x@ok.test"))
    bad = helpers.send_raw_message(s.port, "a@sender.test", ["z@bad.test"],
                                   helpers.message(frm="a@sender.test", to="z@bad.test"))
    slow = helpers.send_raw_message(s.port, "a@sender.test", ["w@slow.test"],
                                    helpers.message(frm="a@sender.test", to="w@slow.test"))
    wait_status(s, bad, "z@bad.test", "bounced")
    wait_status(s, slow, "w@slow.test", "deferred")
    delivered = "posthorn_messages_delivered_total"
    # x and y, and the bounce report to a@sender.test
    helpers.wait_for(lambda: value(scrape(s), delivered) == value(before, delivered) + 3,
                     what="three delivered")
    after = scrape(s)

    def grew(series):
        return value(after, series) - value(before, series)

    assert grew(delivered) == 3
    assert grew("posthorn_delivery_duration_seconds_count") == 3
    assert grew('posthorn_messages_bounced_total{class="address"}') == 1  # 550 5.1.1
    assert grew('posthorn_messages_bounced_total{class="system"}') == 0
    assert grew('posthorn_messages_deferred_total{class="system"}') >= 1  # 451 4.3.0
    assert grew('posthorn_messages_deferred_total{class="address"}') == 0
    # the oldest queued message, from the index: the deferred one
    time.sleep(1.1)
    assert value(scrape(s), "posthorn_queue_oldest_message_age_seconds") >= 1
    assert value(scrape(s), "posthorn_queue_messages") == 1
