"""TLS-RPT (RFC 8460) end to end. Two domains publish MTA-STS policies and
_smtp._tls TXT records whose rua names a mailto: address (a fake MX, the
sink) and an https: collector (https_peer.py). One domain's MX presents a
certificate for the wrong name under a testing policy (delivered, counted
as certificate-host-mismatch), the other's a good one under enforce
(counted as successes). With tls_rpt_interval = 2s, each period's report
must arrive at both addresses, gzipped JSON of the RFC's schema, once."""
import base64
import datetime
import email
import email.policy
import gzip
import json
import re
import time

import pytest

from https_peer import HTTPSPeer
from mx import (WAIT, Zone, alive_poll, dns, farm, msg_bytes, mxs, start, submit,  # noqa: F401
                wait_msgs, wait_status)
from pki import PKI, server_context

SENDER_IP = "127.0.0.11"
FROM = "alice@sender.test"
POLICY_IP = "127.0.0.90"
SINK_IP = "127.0.0.91"
BAD = ("bad.rpt.test", "mx.bad.rpt.test", "127.0.0.92")
GOOD = ("good.rpt.test", "mx.good.rpt.test", "127.0.0.93")
COLLECTOR = "collector.rpt.test"
INTERVAL = 2


def build_zone():
    z = Zone().mx("sender.test", "mx.sender.test").host("mx.sender.test", SENDER_IP)
    z.mx("sink.rpt.test", "mx.sink.rpt.test").host("mx.sink.rpt.test", SINK_IP)
    z.host(COLLECTOR, POLICY_IP)
    for domain, host, ip in (BAD, GOOD):
        z.mx(domain, host).host(host, ip)
        z.txt(f"_mta-sts.{domain}", "v=STSv1; id=1;")
        z.host(f"mta-sts.{domain}", POLICY_IP)
    return z


def dns_hook(zone, farm):
    """The collector's URL holds its port, known once it listens."""
    for domain, _, _ in (BAD, GOOD):
        zone.txt(f"_smtp._tls.{domain}",
                 f"v=TLSRPTv1; rua=mailto:tlsrpt@sink.rpt.test,"
                 f"https://{COLLECTOR}:{PEER_PORT[0]}/v1/tlsrpt")


PEER_PORT = [None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def peer(pki, farm):
    from conftest import free_port
    PEER_PORT[0] = free_port()
    sans = f"DNS:{COLLECTOR},DNS:mta-sts.{BAD[0]},DNS:mta-sts.{GOOD[0]}"
    p = HTTPSPeer(pki.leaf("rpt-peer", sans), ip=POLICY_IP, port=PEER_PORT[0])
    p.policies[f"mta-sts.{BAD[0]}"] = (200, f"version: STSv1\nmode: testing\nmx: {BAD[1]}\n"
                                            "max_age: 86400\n")
    p.policies[f"mta-sts.{GOOD[0]}"] = (200, f"version: STSv1\nmode: enforce\nmx: {GOOD[1]}\n"
                                             "max_age: 86400\n")
    yield p
    p.stop()


def reports_in(sink):
    """{report-id: (message, report JSON)} of the report mails at the sink."""
    out = {}
    with sink.lock:
        msgs = list(sink.messages)
    for t in msgs:
        m = email.message_from_bytes(t.content, policy=email.policy.default)
        assert m.get_content_type() == "multipart/report", m
        assert m.get_param("report-type") == "tlsrpt"
        part = [p for p in m.iter_parts() if p.get_content_type() == "application/tlsrpt+gzip"]
        assert len(part) == 1
        data = json.loads(gzip.decompress(part[0].get_payload(decode=True)))
        out[data["report-id"]] = (m, part[0], data)
    return out


def posted(peer):
    with peer.lock:
        return [(path, headers, json.loads(gzip.decompress(body)))
                for path, headers, body in peer.posts]


def parse_time(s):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s), s
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


def check_schema(r, domain):
    """RFC 8460 4.4: the fields, their types and how they fit."""
    assert r["organization-name"] == "relay.test"
    assert r["contact-info"] == "mailto:postmaster@relay.test"
    assert r["report-id"].endswith(f".{domain}@relay.test")
    rng = r["date-range"]
    assert parse_time(rng["end-datetime"]) > parse_time(rng["start-datetime"])
    assert len(r["policies"]) >= 1
    for p in r["policies"]:
        pol = p["policy"]
        assert pol["policy-type"] in ("sts", "tlsa", "no-policy-found")
        assert pol["policy-domain"] == domain
        s = p["summary"]
        assert isinstance(s["total-successful-session-count"], int)
        assert isinstance(s["total-failure-session-count"], int)
        fails = sum(d["failed-session-count"] for d in p.get("failure-details", []))
        assert fails == s["total-failure-session-count"], p
        for d in p.get("failure-details", []):
            assert set(d) <= {"result-type", "sending-mta-ip", "receiving-mx-hostname",
                              "receiving-mx-helo", "receiving-ip", "failed-session-count",
                              "additional-information", "failure-reason-code"}, d


def totals(reports, domain):
    ok = bad = 0
    details = []
    for r in reports:
        if r["policies"][0]["policy"]["policy-domain"] != domain:
            continue
        for p in r["policies"]:
            ok += p["summary"]["total-successful-session-count"]
            bad += p["summary"]["total-failure-session-count"]
            details += p.get("failure-details", [])
    return ok, bad, details


def test_reports_arrive_by_mail_and_https_once(start, mxs, pki, peer):
    sink = mxs(SINK_IP)
    bad = mxs(BAD[2], tls=True, tls_context=server_context(pki.leaf(BAD[1], "DNS:wrong.example")))
    good = mxs(GOOD[2], tls=True, tls_context=server_context(pki.leaf(GOOD[1],
                                                                      f"DNS:{GOOD[1]}")))
    extra = (f"[domain.{BAD[0]}]\nmax_messages_per_connection = 1\n"
             f"[domain.{GOOD[0]}]\nmax_messages_per_connection = 1\n")
    srv = start(relay={"mta_sts_port": str(peer.port), "tls_rpt_interval": f"{INTERVAL}s"},
                tls_keys={"ca_file": pki.ca}, extra=extra)
    for domain, n in ((BAD[0], 2), (GOOD[0], 1)):
        for i in range(n):
            to = f"r{i}@{domain}"
            qid = submit(srv, FROM, [to], msg_bytes(FROM, to, f"{domain} {i}"))
            wait_status(srv, qid, to, "sent")
    wait_msgs(bad, 2, srv)
    wait_msgs(good, 1, srv)

    def all_in():
        mails = [d for _, _, d in reports_in(sink).values()]
        posts = [d for _, _, d in posted(peer)]
        return (totals(mails, BAD[0])[1] == 2 and totals(mails, GOOD[0])[0] == 1 and
                totals(posts, BAD[0])[1] == 2 and totals(posts, GOOD[0])[0] == 1)
    alive_poll(srv, all_in, WAIT + 4 * INTERVAL, what="the TLS-RPT reports", interval=0.2)

    mails = reports_in(sink)
    for rid, (m, part, r) in mails.items():
        domain = r["policies"][0]["policy"]["policy-domain"]
        check_schema(r, domain)
        assert m["Subject"] == f"Report Domain: {domain} Submitter: relay.test Report-ID: <{rid}>"
        assert m["TLS-Report-Domain"] == domain and m["TLS-Report-Submitter"] == "relay.test"
        assert m["TLS-Required"] == "No"
        assert re.fullmatch(rf"relay\.test!{re.escape(domain)}!\d+!\d+!\d+\.json\.gz",
                            part.get_filename()), part.get_filename()
    ok, failed, details = totals([r for _, _, r in mails.values()], BAD[0])
    assert (ok, failed) == (0, 2)
    assert {d["result-type"] for d in details} == {"certificate-host-mismatch"}
    assert {(d["receiving-mx-hostname"], d["receiving-ip"], d["sending-mta-ip"])
            for d in details} == {(BAD[1], BAD[2], "127.0.0.1")}
    pol = [r for _, _, r in mails.values()
           if r["policies"][0]["policy"]["policy-domain"] == BAD[0]][0]["policies"][0]["policy"]
    assert pol["policy-type"] == "sts" and pol["mx-host"] == [BAD[1]]
    assert "mode: testing" in pol["policy-string"]
    assert totals([r for _, _, r in mails.values()], GOOD[0])[:2] == (1, 0)

    posts = posted(peer)
    assert all(path == "/v1/tlsrpt" for path, _, _ in posts)
    assert all(h.get("Content-Type") == "application/tlsrpt+gzip" for _, h, _ in posts)
    assert sorted(d["report-id"] for _, _, d in posts) == sorted(mails)

    # sent once: a restart and two more periods bring no second copy. The
    # collector has the reports before the server has recorded them (a
    # worker writes "sent"); a stop in between sends again at the next
    # start, by design (policy_rpt_send.c): wait for both records first.
    alive_poll(srv, lambda: all(f"event=tlsrpt_done domain={d} " in srv.log()
                                for d in (BAD[0], GOOD[0])),
               WAIT, what="both periods recorded as done", interval=0.2)
    srv.restart()
    time.sleep(3 * INTERVAL)
    assert sorted(reports_in(sink)) == sorted(mails)
    assert len(posted(peer)) == len(posts)
    rc, out, err = srv.cli("tls", "status", BAD[0])
    assert rc == 0, err
    assert "policy=sts successful=0 failed=" in out, out
    assert "result=certificate-host-mismatch mx=mx.bad.rpt.test" in out, out
