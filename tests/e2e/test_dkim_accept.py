"""SPEC §5 and §3, DKIM at accept: mail through the real server's SMTP
listener, from domains with keys made by `posthorn dkim keygen`, arrives at
the fake MX signed, and every signature verifies with two independent
verifiers (dkimpy, opendkim-testmsg) reading the keys from the test DNS:
rsa-sha256, ed25519-sha256 and both, on 7-bit, 8BITMIME, SMTPUTF8 (and
BDAT) and multipart mail and on long folded headers; Date and Message-ID
added by the relay are signed. What the spool stores is what is sent:
a retry after a deferral sends the very same bytes, and a restart with
signed mail queued delivers it still verifiable. A From domain without a
key goes unsigned, with the log line saying so. Rotation on the running
server: a pending key does not sign until its record is published, and
the server's own timer ([dkim] check_interval) activates it. The TLS-RPT
report mails the server writes itself are signed with its hostname's key."""
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e_support"))
import accept_env  # noqa: E402
import dkim_verify  # noqa: E402
import helpers  # noqa: E402
import mx  # noqa: E402
import test_dkim_sign as samples  # noqa: E402  (the message kinds of the signer's tests)
from https_peer import HTTPSPeer  # noqa: E402
from pki import PKI, server_context  # noqa: E402

DEST_IP, RETRY_IP, LATE_IP = "127.0.0.71", "127.0.0.72", "127.0.0.73"
MX_TABLE = {"dest.test": (DEST_IP, {"smtputf8": True}),
            "retry.test": (RETRY_IP, {"data_defer_first": 1}),
            "late.test": (LATE_IP, {})}
KEYS = [("rsa.test", "r1", "rsa2048"), ("ed.test", "e1", "ed25519"),
        ("dual.test", "r1", "rsa2048"), ("dual.test", "e1", "ed25519"),
        ("rot.test", "old", "rsa2048")]
DOMAINS = {"rsa.test": ["r1"], "ed.test": ["e1"], "dual.test": ["e1", "r1"]}


@pytest.fixture(scope="module")
def env(tmp_path_factory, cert):
    e = accept_env.AcceptEnv(tmp_path_factory.mktemp("dkimaccept"), cert, MX_TABLE, KEYS)
    e.srv.start()
    yield e
    e.stop()


def options(kind):
    if kind == "smtputf8":
        return ["SMTPUTF8", "BODY=8BITMIME"]
    return ["BODY=8BITMIME"] if kind in ("8bit", "multipart") else []


@pytest.mark.parametrize("kind", sorted(samples.MESSAGES))
@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_signed_at_accept(env, domain, kind):
    msg = samples.MESSAGES[kind](domain)
    rcpt = f"{kind}.{domain.split('.')[0]}@dest.test"
    qid, _ = env.send(f"sender@{domain}", [rcpt], msg, options(kind))
    [t] = env.received(DEST_IP, rcpt)
    got = t.content
    # the message as sent, below our signatures and Received field
    assert got.endswith(msg), "the message itself must arrive unchanged"
    assert got.index(b"Received: ") > got.index(b"DKIM-Signature: ") >= 0
    env.assert_verifies(got, DOMAINS[domain])
    for field in dkim_verify.signature_fields(got):
        t = dkim_verify.tags(field)
        assert t["d"] == domain and t["c"] == "relaxed/relaxed", t
        assert t["a"] == ("ed25519-sha256" if t["s"] == "e1" else "rsa-sha256"), t
        assert t["h"].lower().split(":")[-1] == "from", t  # From oversigned
    lines = accept_env.log_lines(env.srv, f"queue={qid} event=dkim ")
    assert len(lines) == 1 and "result=signed" in lines[0], lines
    assert f"domain={domain} signatures={len(DOMAINS[domain])}" in lines[0], lines


def test_added_date_and_message_id_are_signed(env):
    """A message without Date and Message-ID gets both from the relay, and
    the signatures cover them."""
    msg = b"From: sender@dual.test\r\nTo: x@dest.test\r\nSubject: bare\r\n\r\nbody\r\n"
    qid, _ = env.send("sender@dual.test", ["bare@dest.test"], msg)
    [t] = env.received(DEST_IP, "bare@dest.test")
    head = dkim_verify.header_section(t.content)
    assert b"\r\nDate: " in head and f"Message-ID: <{qid}@relay.test>".encode() in head
    for field in dkim_verify.signature_fields(t.content):
        h = dkim_verify.tags(field)["h"].lower().split(":")
        assert "date" in h and "message-id" in h, h
    env.assert_verifies(t.content, ["e1", "r1"])


def test_bdat(env):
    """CHUNKING: the content of two BDAT chunks is signed as one message."""
    msg = samples.msg_7bit("rsa.test")
    with helpers.RawSMTP(env.srv.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@rsa.test> BODY=8BITMIME").code == 250
        assert c.cmd("RCPT TO:<bdat@dest.test>").code == 250
        half = len(msg) // 2
        c.send(f"BDAT {half}\r\n".encode() + msg[:half])
        assert c.reply().code == 250
        c.send(f"BDAT {len(msg) - half} LAST\r\n".encode() + msg[half:])
        r = c.reply()
        assert r.code == 250, r
    [t] = env.received(DEST_IP, "bdat@dest.test")
    env.assert_verifies(t.content, ["r1"])


def test_no_key_unsigned_with_log_line(env):
    msg = mx.msg_bytes("sender@nokey.test", "nokey@dest.test", "no key")
    qid, _ = env.send("sender@nokey.test", ["nokey@dest.test"], msg)
    [t] = env.received(DEST_IP, "nokey@dest.test")
    assert not dkim_verify.signature_fields(t.content)
    assert t.content.endswith(msg)
    [line] = accept_env.log_lines(env.srv, f"queue={qid} event=dkim ")
    assert "result=unsigned reason=no_key domain=nokey.test" in line, line
    # two addresses in From: never signed, never refused
    msg = b"From: a@rsa.test, b@rsa.test\r\nSubject: two\r\n\r\nbody\r\n"
    qid, _ = env.send("a@rsa.test", ["twofrom@dest.test"], msg)
    [t] = env.received(DEST_IP, "twofrom@dest.test")
    assert not dkim_verify.signature_fields(t.content)
    [line] = accept_env.log_lines(env.srv, f"queue={qid} event=dkim ")
    assert "result=unsigned reason=multiple_from domain=-" in line, line


def record_every_data(m):
    """The content of every end of DATA at fake MX m, accepted or not."""
    seen = []
    orig = m.handle_DATA

    async def handle_DATA(server, session, envelope):
        seen.append(bytes(envelope.original_content or envelope.content))
        return await orig(server, session, envelope)
    m.handle_DATA = handle_DATA
    return seen


def test_retry_sends_the_same_bytes(env):
    """The first attempt gets 451 at the end of DATA; the retry sends what
    the first sent, byte for byte: the signature was made once, at accept."""
    seen = record_every_data(env.mxs[RETRY_IP])
    msg = samples.msg_multipart("dual.test")
    env.send("sender@dual.test", ["again@retry.test"], msg, ["BODY=8BITMIME"])
    [t] = env.received(RETRY_IP, "again@retry.test", timeout=WAIT_RETRY)
    assert len(seen) == 2, len(seen)
    assert seen[0] == seen[1] == t.content
    env.assert_verifies(t.content, ["e1", "r1"])


WAIT_RETRY = 40.0


def spool_versions(srv):
    """{queue ID: the file format version in its header}."""
    q = os.path.join(srv.data_dir, "spool", "queue")
    out = {}
    for name in os.listdir(q):
        with open(os.path.join(q, name), "rb") as f:
            out[name] = int.from_bytes(f.read(12)[8:12], "little")
    return out


def test_restart_delivers_signed_mail(env):
    """Signed mail queued (its MX down), the server restarted: it is
    delivered after the restart, still verifiable; it was stored signed
    (format version 2: its fields are in the spool's front)."""
    env.mxs.pop(LATE_IP)
    env.farm.remove(LATE_IP)
    ids = []
    for i, domain in enumerate(sorted(DOMAINS)):
        msg = samples.msg_8bit(domain)
        qid, _ = env.send(f"sender@{domain}", [f"late{i}@late.test"], msg, ["BODY=8BITMIME"])
        ids.append(qid)
    # mail of a domain without a key: no front, the file as version 1 writes it
    nokey, _ = env.send("sender@nokey.test", ["latenokey@late.test"],
                        mx.msg_bytes("sender@nokey.test", "latenokey@late.test", "no key"))
    mx.alive_poll(env.srv, lambda: all(mx.deliveries(env.srv, q) for q in ids + [nokey]),
                  mx.WAIT, what="a first (failed) attempt of each")
    versions = spool_versions(env.srv)
    assert all(versions[q] == 2 for q in ids) and versions[nokey] == 1, versions
    env.srv.stop()
    env.mxs[LATE_IP] = env.farm.add(LATE_IP)
    env.srv.restart()
    for i, domain in enumerate(sorted(DOMAINS)):
        [t] = env.received(LATE_IP, f"late{i}@late.test", timeout=WAIT_RETRY)
        env.assert_verifies(t.content, DOMAINS[domain])
    [t] = env.received(LATE_IP, "latenokey@late.test", timeout=WAIT_RETRY)
    assert not dkim_verify.signature_fields(t.content)


def keys(env):
    rc, out, err = env.srv.cli("dkim", "list", "--json")
    assert rc == 0, err
    return {k["selector"]: k for k in map(json.loads, out.splitlines()) if k["domain"] ==
            "rot.test"}


def sent_by(env, n):
    rcpt = f"rot{n}@dest.test"
    msg = mx.msg_bytes("sender@rot.test", rcpt, f"rotation {n}")
    env.send("sender@rot.test", [rcpt], msg)
    [t] = env.received(DEST_IP, rcpt)
    return t.content


def test_rotation_on_the_server_timer(env):
    """dkim rotate: the new key is pending and does not sign while its
    record is missing, even after several rounds of the server's check;
    once published, the server's timer (check_interval = 1s) activates it
    within seconds, the old key stops signing, and mail of both verifies
    during the grace period."""
    # Where the new record will be, a TXT record that is not a key record
    # (check ignores it: the key's record is missing). Not NXDOMAIN: the
    # server caches negative answers (docs/dkim.md), and a test cannot
    # wait that long; dnsmasq's own records have TTL 0.
    soon = [time.strftime("ph%Y%m", time.gmtime(time.time() + d)) for d in (0, 60)]
    for sel in sorted(set(soon)):
        env.publish(f'{sel}._domainkey.rot.test. IN TXT "not a key record"')
    rc, out, err = env.srv.cli("dkim", "rotate", "rot.test")
    assert rc == 0, err
    line = out.strip()
    new = line.split("._domainkey.")[0]
    assert new in soon, (new, soon)
    assert keys(env)[new]["state"] == "pending"
    # rounds of the server's check timer look the record up, and find none
    asked = f"query[TXT] {new}._domainkey.rot.test"
    mx.alive_poll(env.srv, lambda: env.dns.log().count(asked) >= 3, mx.WAIT,
                  what="three lookups of the pending key's record")
    assert keys(env)[new]["state"] == "pending"
    old_msg = sent_by(env, 1)
    assert accept_env.selectors(old_msg) == ["old"]
    env.publish(line)
    accept_env.wait_log(env.srv, rf"event=dkim_key_activated domain=rot\.test selector={new}\b")
    assert keys(env)[new]["state"] == "active" and keys(env)["old"]["state"] == "retired"
    # the signer reloads within a second of the activation
    deadline = time.monotonic() + 10
    n = 2
    while True:
        new_msg = sent_by(env, n)
        if accept_env.selectors(new_msg) == [new] or time.monotonic() > deadline:
            break
        n += 1
    assert accept_env.selectors(new_msg) == [new]
    env.assert_verifies(new_msg, [new])
    env.assert_verifies(old_msg, ["old"])


def test_sighup_runs_a_round(env):
    """SIGHUP: the keys are reloaded and a round runs at once (logged)."""
    before = len(accept_env.log_lines(env.srv, "event=dkim_keys_loaded"))
    env.srv.proc.send_signal(1)
    mx.alive_poll(env.srv, lambda: len(accept_env.log_lines(env.srv, "event=dkim_keys_loaded"))
                  > before, mx.WAIT, what="a reload after SIGHUP")


def test_long_header_sections(env):
    """A header section longer than what the loop keeps (64 KiB) is left to
    the work job, which signs it (up to 256 KiB); a longer one goes out
    unsigned, reason header_too_large."""
    def with_header(n_bytes, rcpt):
        filler = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"f" * 100)
                          for i in range(n_bytes // 118 + 1))
        return (b"From: sender@dual.test\r\nSubject: long header\r\n" + filler +
                b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <long." +
                rcpt.encode() + b">\r\n\r\nbody\r\n")
    env.send("sender@dual.test", ["long@dest.test"], with_header(100 * 1024, "long"))
    [t] = env.received(DEST_IP, "long@dest.test")
    env.assert_verifies(t.content, ["e1", "r1"])
    qid, _ = env.send("sender@dual.test", ["huge@dest.test"], with_header(300 * 1024, "huge"))
    [t] = env.received(DEST_IP, "huge@dest.test")
    assert not dkim_verify.signature_fields(t.content)
    [line] = accept_env.log_lines(env.srv, f"queue={qid} event=dkim ")
    assert "result=unsigned reason=header_too_large" in line, line


def test_signatures_larger_than_the_front(env):
    """1,000 Cc fields make h= (and so each signature) longer than the
    spool's front: the message moves to a larger front once, and what is
    sent verifies."""
    ccs = b"".join(b"Cc: c%d@example.net\r\n" % i for i in range(1000))
    msg = (b"From: sender@dual.test\r\nTo: x@dest.test\r\n" + ccs +
           b"Subject: many cc\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <manycc@dual.test>\r\n\r\nbody\r\n")
    qid, _ = env.send("sender@dual.test", ["manycc@dest.test"], msg)
    [t] = env.received(DEST_IP, "manycc@dest.test")
    assert accept_env.log_lines(env.srv, f"queue={qid} event=spool_front_grown")
    assert len(b"".join(dkim_verify.signature_fields(t.content))) > 4096
    assert t.content.endswith(msg)
    v = dict((sel, ok) for sel, _, ok, _ in dkim_verify.dkimpy_verify(t.content, env.dns.port))
    assert v == {"e1": True, "r1": True}, v


def test_client_gone_at_the_end_of_data(env):
    """A client that closes right after its end of data: the server lives
    on (the sanitizer build checks for leaks at its stop), and the message
    is either queued (and delivered signed) or not at all."""
    msg = samples.msg_7bit("rsa.test")
    for i in range(5):
        c = helpers.RawSMTP(env.srv.port)
        c.ehlo()
        c.send(f"MAIL FROM:<sender@rsa.test>\r\nRCPT TO:<gone{i}@dest.test>\r\nDATA\r\n")
        for _ in range(3):
            c.reply()
        c.send(msg + b".\r\n")
        c.close()
    # the server still answers, and delivers what it queued, signed
    env.send("sender@rsa.test", ["after@dest.test"], msg)
    env.received(DEST_IP, "after@dest.test")
    mx.wait_queue_empty(env.srv)
    m = env.mxs[DEST_IP]
    with m.lock:
        gone = [t for t in m.messages if t.rcpts[0].startswith(("gone", "after"))]
    assert 1 <= len(gone) <= 6
    for t in gone:
        env.assert_verifies(t.content, ["r1"])



def test_tls_rpt_report_mail_is_signed(tmp_path, cert):
    """A TLS-RPT report that goes by mail (docs/tls.md) is From
    postmaster@HOSTNAME: when the hostname's domain has a key, the report
    arrives signed and both verifiers accept it. rpt.test has an MTA-STS
    policy (testing) and a TLS-RPT record, so its session is counted.
    (test_tls_rpt.py has such reports from a server without keys: they
    still go, unsigned.)"""
    ip, policy_ip, interval = "127.0.0.74", "127.0.0.75", 2
    os.makedirs(tmp_path / "pki")
    pki = PKI(tmp_path / "pki")
    peer = HTTPSPeer(pki.leaf("sts-peer", "DNS:mta-sts.rpt.test"), ip=policy_ip)
    peer.policies["mta-sts.rpt.test"] = (200, "version: STSv1\nmode: testing\n"
                                              "mx: mx.rpt.test\nmax_age: 86400\n")
    mx_tls = server_context(pki.leaf("mx.rpt.test", "DNS:mx.rpt.test"))
    e = accept_env.AcceptEnv(tmp_path / "env", cert,
                             {"rpt.test": (ip, {"tls": True, "tls_context": mx_tls})},
                             [("relay.test", "h1", "rsa2048")])
    try:
        e.srv._relay.update(tls_rpt_interval=f"{interval}s", mta_sts_port=str(peer.port))
        e.srv._tls_keys["ca_file"] = pki.ca
        e.srv.write_conf()
        e.zone.txt("_mta-sts.rpt.test", "v=STSv1; id=1;").host("mta-sts.rpt.test", policy_ip)
        e.txt["_smtp._tls.rpt.test"] = ["v=TLSRPTv1; rua=mailto:tlsrpt@rpt.test"]
        e.dns.zone = e._zone()
        e.dns.restart()
        e.srv.start()
        frm, to = "someone@sender.test", "first@rpt.test"
        e.send(frm, [to], mx.msg_bytes(frm, to, "a session to report"))
        e.received(ip, to)
        [t] = e.received(ip, "tlsrpt@rpt.test", timeout=accept_env.WAIT + 4 * interval)
        assert t.header("From") == "TLS reporting <postmaster@relay.test>"
        assert t.header("TLS-Report-Domain") == "rpt.test"
        assert [dkim_verify.tags(f)["d"] for f in dkim_verify.signature_fields(t.content)] \
            == ["relay.test"]
        e.assert_verifies(t.content, ["h1"])
    finally:
        e.stop()
        peer.stop()
