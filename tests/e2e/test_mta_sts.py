"""MTA-STS (RFC 8461) end to end: a real server, dnsmasq serving the MX and
_mta-sts TXT records, an HTTPS policy server (https_peer.py) and fake MX
hosts (aiosmtpd) with certificates from a test CA (pki.py), which the
server trusts through [tls] ca_file. mta-sts.DOMAIN of every test domain
resolves to the policy server, reached on [relay] mta_sts_port.

Each test has its own domain and MX address(es); a test that needs a
policy sets it on the policy server before it sends."""
import time

import pytest

import helpers
from https_peer import HTTPSPeer
from mx import (WAIT, Zone, alive_poll, deliveries, dns, farm, log_excerpt, msg_bytes,  # noqa: F401
                mxs, poll, start, submit, wait_msgs, wait_status)
from pki import PKI, server_context

SENDER_IP = "127.0.0.11"
POLICY_IP = "127.0.0.40"
DOMAINS = {  # domain -> (MX host, its address)
    "ok.sts.test": ("mx.ok.sts.test", "127.0.0.41"),
    "out.sts.test": ("mx.rogue.out.sts.test", "127.0.0.42"),
    "badcert.sts.test": ("mx.badcert.sts.test", "127.0.0.43"),
    "testing.sts.test": ("mx.testing.sts.test", "127.0.0.44"),
    "cached.sts.test": ("mx.cached.sts.test", "127.0.0.45"),
    "nofetch.sts.test": ("mx.nofetch.sts.test", "127.0.0.46"),
    "redirect.sts.test": ("mx.redirect.sts.test", "127.0.0.47"),
    "optout.sts.test": ("mx.optout.sts.test", "127.0.0.48"),
    "none.sts.test": ("mx.none.sts.test", "127.0.0.49"),
    "refresh.sts.test": ("mx.refresh.sts.test", "127.0.0.50"),
    "bg.sts.test": ("mx.bg.sts.test", "127.0.0.58"),
    "bgfail.sts.test": ("mx.bgfail.sts.test", "127.0.0.59"),
}
FROM = "alice@sender.test"


def build_zone():
    z = Zone().mx("sender.test", "mx.sender.test").host("mx.sender.test", SENDER_IP)
    for domain, (host, ip) in DOMAINS.items():
        z.mx(domain, host).host(host, ip)
        z.txt(f"_mta-sts.{domain}", "v=STSv1; id=20260101T000000;")
        z.host(f"mta-sts.{domain}", POLICY_IP)
    return z


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def policy_server(pki):
    sans = ",".join(f"DNS:mta-sts.{d}" for d in DOMAINS)
    peer = HTTPSPeer(pki.leaf("mta-sts", sans), ip=POLICY_IP)
    yield peer
    peer.stop()


def policy(mode, *mx, max_age=86400):
    lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {m}" for m in mx]
    return "\r\n".join(lines + [f"max_age: {max_age}"]) + "\r\n"


def mx_cert(pki, host, san=None):
    return server_context(pki.leaf(host, san or f"DNS:{host}"))


@pytest.fixture
def sts_server(start, pki, policy_server):
    def make(**relay):
        r = {"mta_sts_port": str(policy_server.port)}
        r.update(relay)
        return start(relay=r, tls_keys={"ca_file": pki.ca})
    return make


def send(srv, domain, subject="sts", extra=b""):
    to = f"bob@{domain}"
    return submit(srv, FROM, [to], msg_bytes(FROM, to, subject, extra=extra)), to


def test_enforce_matching_mx_with_good_certificate_delivers(sts_server, mxs, pki,
                                                            policy_server):
    host, ip = DOMAINS["ok.sts.test"]
    policy_server.policies["mta-sts.ok.sts.test"] = (200, policy("enforce", "*.ok.sts.test"))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host))
    srv = sts_server()
    qid, to = send(srv, "ok.sts.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=mta-sts" in line["line"] and "verified=yes" in line["line"], line
    t = wait_msgs(mx, 1, srv)[0]
    assert t.tls, "delivered without TLS"
    # the fetch ended before the first attempt: one GET, logged before it
    assert policy_server.gets_for("mta-sts.ok.sts.test") == [
        ("mta-sts.ok.sts.test", "/.well-known/mta-sts.txt")]
    log = srv.log()
    assert log.index("event=mta_sts_policy domain=ok.sts.test") < log.index("event=delivery")
    rc, out, err = srv.cli("tls", "status", "ok.sts.test")
    assert rc == 0, err
    assert "mta-sts domain=ok.sts.test id=20260101T000000 mode=enforce max_age=86400" in out
    assert "mx=*.ok.sts.test" in out


def test_mx_outside_the_policy_defers_naming_it(sts_server, mxs, pki, policy_server):
    host, ip = DOMAINS["out.sts.test"]
    policy_server.policies["mta-sts.out.sts.test"] = (200, policy("enforce",
                                                                   "mx.allowed.out.sts.test"))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host))
    srv = sts_server()
    qid, to = send(srv, "out.sts.test")
    line = wait_status(srv, qid, to, "deferred")
    assert "dsn=4.7.5" in line["line"], line
    assert ("MX host mx.rogue.out.sts.test does not match the MTA-STS policy of out.sts.test "
            "(enforce)") in line["reply"], line
    assert "tls_policy=mta-sts" in line["line"], line
    assert mx.connections == 0, "an MX outside the policy was contacted"


def test_bad_certificate_defers_naming_the_policy(sts_server, mxs, pki, policy_server):
    host, ip = DOMAINS["badcert.sts.test"]
    policy_server.policies["mta-sts.badcert.sts.test"] = (200, policy("enforce", host))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host, san="DNS:someone-else.example"))
    srv = sts_server()
    qid, to = send(srv, "badcert.sts.test")
    line = wait_status(srv, qid, to, "deferred")
    assert "dsn=4.7.5" in line["line"], line
    assert "MTA-STS policy of badcert.sts.test (enforce): hostname mismatch" in line["reply"], line
    assert mx.messages == [], "mail went to an unverified MX"
    assert "event=tls_verify_failed" in srv.log()


def test_testing_mode_delivers_and_logs_the_failure(sts_server, mxs, pki, policy_server):
    host, ip = DOMAINS["testing.sts.test"]
    policy_server.policies["mta-sts.testing.sts.test"] = (200, policy("testing", host))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host, san="DNS:wrong.example"))
    srv = sts_server()
    qid, to = send(srv, "testing.sts.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=mta-sts" in line["line"] and "verified=no" in line["line"], line
    assert wait_msgs(mx, 1, srv)[0].tls
    assert ("event=tls_policy_testing host=mx.testing.sts.test addr=127.0.0.44 policy=mta-sts "
            "result=certificate-host-mismatch") in srv.log()


def test_mode_none_changes_nothing(sts_server, mxs, pki, policy_server):
    host, ip = DOMAINS["none.sts.test"]
    policy_server.policies["mta-sts.none.sts.test"] = (200, policy("none"))
    mx = mxs(ip)  # no TLS at all
    srv = sts_server()
    qid, to = send(srv, "none.sts.test")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=none" in line["line"], line
    assert wait_msgs(mx, 1, srv)[0].tls is None


def test_policy_is_cached_across_a_restart(sts_server, mxs, pki, policy_server):
    host, ip = DOMAINS["cached.sts.test"]
    policy_server.policies["mta-sts.cached.sts.test"] = (200, policy("enforce", host))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host))
    srv = sts_server()
    qid, to = send(srv, "cached.sts.test")
    wait_status(srv, qid, to, "sent")
    srv.restart()
    # the policy server is gone now: the cached policy must do
    policy_server.policies["mta-sts.cached.sts.test"] = (500, "down")
    qid2, _ = send(srv, "cached.sts.test", subject="again")
    line = wait_status(srv, qid2, to, "sent")
    assert "tls_policy=mta-sts" in line["line"], line
    assert len(policy_server.gets_for("mta-sts.cached.sts.test")) == 1
    assert len(wait_msgs(mx, 2, srv)) == 2


def test_policy_is_refreshed_before_it_expires(sts_server, mxs, pki, policy_server):
    host, ip = DOMAINS["refresh.sts.test"]
    policy_server.policies["mta-sts.refresh.sts.test"] = (200, policy("enforce", host,
                                                                      max_age=4))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host))
    srv = sts_server()
    qid, to = send(srv, "refresh.sts.test")
    wait_status(srv, qid, to, "sent")
    time.sleep(2.5)  # past half of max_age: the next use refreshes it, nobody waits
    qid2, _ = send(srv, "refresh.sts.test", subject="later")
    wait_status(srv, qid2, to, "sent")
    alive_poll(srv, lambda: len(policy_server.gets_for("mta-sts.refresh.sts.test")) >= 2, WAIT,
               what="a second fetch of the policy")
    assert len(wait_msgs(mx, 2, srv)) == 2


def cache_policy(sts_server, mxs, pki, policy_server, domain, max_age):
    """A server, refreshing in the background every second, that has
    cached domain's enforce policy by delivering one message."""
    host, ip = DOMAINS[domain]
    policy_server.policies[f"mta-sts.{domain}"] = (200, policy("enforce", host,
                                                               max_age=max_age))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host))
    srv = sts_server(mta_sts_refresh_interval="1s")
    qid, to = send(srv, domain)
    wait_status(srv, qid, to, "sent")
    return srv, mx


def test_policy_is_refreshed_without_mail(sts_server, mxs, pki, policy_server):
    """RFC 8461 10.2: a cached policy is refreshed before it expires even
    when no mail goes to the domain, after a restart too (the database,
    not memory, says which policies are due)."""
    host, _ = DOMAINS["bg.sts.test"]
    name = "mta-sts.bg.sts.test"
    srv, mx = cache_policy(sts_server, mxs, pki, policy_server, "bg.sts.test", 6)
    srv.restart()
    policy_server.policies[name] = (200, policy("testing", host, "*.bg.sts.test",
                                                max_age=86400))

    def refreshed():
        rc, out, err = srv.cli("tls", "status", "bg.sts.test")
        assert rc == 0, err
        return "mode=testing max_age=86400" in out and "mx=mx.bg.sts.test,*.bg.sts.test" in out
    alive_poll(srv, refreshed, WAIT, what="the policy refreshed without mail")
    assert len(policy_server.gets_for(name)) == 2
    assert srv.log().count("event=mta_sts_policy domain=bg.sts.test id=20260101T000000 "
                           "mode=testing max_age=86400") == 1
    assert len(mx.messages) == 1, "the refresh sent mail"


def test_failed_background_refresh_keeps_the_policy_and_logs_once(sts_server, mxs, pki,
                                                                  policy_server):
    """The policy host fails once the policy is due (half of max_age, 10 s):
    refreshes fail, one a second, the cached policy stays in force until it
    expires, and the failure is logged once, not once per attempt."""
    name = "mta-sts.bgfail.sts.test"
    srv, mx = cache_policy(sts_server, mxs, pki, policy_server, "bgfail.sts.test", 20)
    policy_server.policies[name] = (500, "down")
    alive_poll(srv, lambda: len(policy_server.gets_for(name)) >= 3, WAIT,
               what="two background refresh attempts")
    qid, to = send(srv, "bgfail.sts.test", subject="while the policy host is down")
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=mta-sts" in line["line"], line
    fails = [l for l in srv.log().splitlines()
             if "event=mta_sts_fetch_failed domain=bgfail.sts.test" in l]
    assert len(fails) == 1, fails
    assert "reason=\"HTTP status 500\" action=keep_cached" in fails[0], fails[0]
    assert len(wait_msgs(mx, 2, srv)) == 2


@pytest.mark.parametrize("domain,answer,reason", [
    ("nofetch.sts.test", (404, "gone"), "HTTP status 404"),
    ("redirect.sts.test", (302, "https://elsewhere.example/policy"), "HTTP status 302"),
])
def test_failed_fetch_without_cache_means_no_policy(sts_server, mxs, pki, policy_server, domain,
                                                    answer, reason):
    """No policy could be had (and redirects are not followed): the
    domain is treated as having none, and the failure is logged."""
    host, ip = DOMAINS[domain]
    policy_server.policies[f"mta-sts.{domain}"] = answer
    mx = mxs(ip)
    srv = sts_server()
    qid, to = send(srv, domain)
    line = wait_status(srv, qid, to, "sent")
    assert "tls_policy=none" in line["line"], line
    log = srv.log()
    assert f"event=mta_sts_fetch_failed domain={domain} result=sts-policy-fetch-error" in log
    assert reason in log
    assert len(wait_msgs(mx, 1, srv)) == 1


def test_tls_required_no_goes_despite_the_policy(sts_server, mxs, pki, policy_server):
    """RFC 8689 5: the sender waives the recipient's policy. The message
    that says so is delivered; the one that does not waits."""
    host, ip = DOMAINS["optout.sts.test"]
    policy_server.policies["mta-sts.optout.sts.test"] = (200, policy("enforce",
                                                                      "mx.other.example"))
    mx = mxs(ip, tls=True, tls_context=mx_cert(pki, host))
    srv = sts_server()
    q_plain, to = send(srv, "optout.sts.test", subject="strict")
    q_out, _ = send(srv, "optout.sts.test", subject="waived", extra=b"TLS-Required: No\r\n")
    line = wait_status(srv, q_out, to, "sent")
    assert "tls_policy=none" in line["line"], line
    wait_status(srv, q_plain, to, "deferred")
    msgs = wait_msgs(mx, 1, srv)
    assert [t.header("Subject") for t in msgs] == ["waived"]
    assert f"queue={q_out} event=tls_required_no" in srv.log()
    time.sleep(1)
    assert len(mx.messages) == 1, "the message without TLS-Required: No went too"


def test_tls_status_of_an_unknown_domain_and_usage(sts_server):
    srv = sts_server()
    rc, out, err = srv.cli("tls", "status", "never.sts.test")
    assert rc == 0, err
    assert out.splitlines() == ["mta-sts domain=never.sts.test policy=none",
                                "tlsa domain=never.sts.test records=none",
                                "tls-rpt domain=never.sts.test counts=none"]
    rc, out, err = srv.cli("tls", "status", "--help")
    assert rc == 0 and out.startswith("usage: posthorn tls status DOMAIN"), (rc, out)
    for args in (("tls",), ("tls", "status"), ("tls", "status", "a..b"), ("tls", "list", "x")):
        rc, out, err = srv.cli(*args)
        assert rc == 2 and "usage:" in err, (args, rc, err)
