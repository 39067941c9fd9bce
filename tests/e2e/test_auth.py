"""SPEC §3: STARTTLS, implicit TLS, AUTH, relay authorization, sender binding."""
import base64
import re
import smtplib
import time

import pytest

import helpers
from conftest import Server
from helpers import RawSMTP, ehlo_keywords, queued_id, message, USER, PASSWORD, client_tls_context


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain_token(user, pw, authz=""):
    return b64(f"{authz}\0{user}\0{pw}")


def tls_session(port, implicit=False):
    if implicit:
        s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=helpers.TIMEOUT,
                             context=client_tls_context())
        s.ehlo("client.test")
    else:
        s = smtplib.SMTP("127.0.0.1", port, timeout=helpers.TIMEOUT)
        s.ehlo("client.test")
        s.starttls(context=client_tls_context())
        s.ehlo("client.test")
    return s


def auth(s, mech, user=USER, pw=PASSWORD):
    s.user, s.password = user, pw
    fn = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
    return s.auth(mech, fn)


# ---------- STARTTLS and AUTH ----------

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_starttls_then_auth(srv, mech):
    with tls_session(srv.port_of("sub")) as s:
        assert "auth" in s.esmtp_features
        assert "starttls" not in s.esmtp_features
        code, text = auth(s, mech)
        assert code == 235, text
        code, text = s.mail("me@example.com")
        assert code == 250, text
        assert s.rcpt("you@example.net")[0] == 250
        code, text = s.data(message(f"auth-{mech}", frm="me@example.com"))
        assert code == 250, text
        qid = queued_id(text)
    assert qid in srv.queue()


def test_auth_login_without_initial_response(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("AUTH LOGIN")
        assert r.code == 334, r
        assert base64.b64decode(r.lines[0]).lower().startswith(b"username"), r
        r = c.cmd(b64(USER))
        assert r.code == 334, r
        assert base64.b64decode(r.lines[0]).lower().startswith(b"password"), r
        r = c.cmd(b64(PASSWORD))
        assert r.code == 235 and r.lines[0].startswith("2.7.0"), r
        assert c.cmd("AUTH PLAIN " + plain_token(USER, PASSWORD)).code == 503


def test_auth_plain_empty_initial_response(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334, r
        r = c.cmd(plain_token(USER, PASSWORD))
        assert r.code == 235, r


def test_auth_cancelled_and_garbage(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        assert c.cmd("AUTH LOGIN").code == 334
        r = c.cmd("*")
        assert r.code == 501, r
        r = c.cmd("AUTH PLAIN !!!notbase64!!!")
        assert r.code == 501, r
        r = c.cmd("AUTH CRAM-MD5")
        assert r.code == 504, r
        assert c.cmd("NOOP").code == 250


def test_wrong_password(srv):
    with tls_session(srv.port_of("sub")) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            auth(s, "PLAIN", pw="wrong password")
        assert ei.value.smtp_code == 535
        assert ei.value.smtp_error.decode().startswith("5.7.8"), ei.value
        # a correct attempt still works after one failure
        assert auth(s, "LOGIN")[0] == 235


def test_unknown_user_same_reply(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r1 = c.cmd("AUTH PLAIN " + plain_token("no-such-user", "x"))
        r2 = c.cmd("AUTH PLAIN " + plain_token(USER, "x"))
        assert r1.code == r2.code == 535
        assert r1.lines == r2.lines, "no user enumeration"


def test_three_auth_failures_delay_then_421(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        for i in range(3):
            r = c.cmd("AUTH PLAIN " + plain_token(USER, f"bad{i}"))
            assert r.code == 535, r
        t0 = time.monotonic()
        r = c.reply()
        waited = time.monotonic() - t0
        assert r.code == 421, r
        assert waited >= 1.5, f"421 came after {waited:.2f}s, expected a delay of ~2s"
        assert waited < 10, waited
        assert c.closed(5)


def test_auth_before_tls_on_starttls_listener(srv):
    """A tls = starttls listener never takes AUTH in clear, even from a trusted client
    (loopback is trusted here): 538, and the credentials are not read."""
    with RawSMTP(srv.port_of("sub")) as c:
        assert "AUTH" not in ehlo_keywords(c.ehlo())
        for cmd in ("AUTH PLAIN " + plain_token(USER, PASSWORD), "AUTH LOGIN", "AUTH PLAIN"):
            r = c.cmd(cmd)
            assert (r.code, r.lines[0]) == (
                538, "5.7.11 Encryption required for requested authentication mechanism"), r
        c.starttls()
        assert "AUTH" in ehlo_keywords(c.ehlo())
        assert c.cmd("AUTH PLAIN " + plain_token(USER, PASSWORD)).code == 235


def test_mail_before_starttls_on_required_listener(srv):
    with RawSMTP(srv.port_of("sub")) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com>")
        assert r.code == 530, r


def test_mail_without_auth_after_starttls_on_required_listener(srv):
    with RawSMTP(srv.port_of("sub")) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com>")
        assert r.code == 530 and r.lines[0].startswith("5.7.0"), r


def test_starttls_discards_pipelined_plaintext(srv):
    """RFC 3207 / CVE-2011-0411: commands sent after STARTTLS in the same
    plaintext packet must not be executed inside the TLS session."""
    with RawSMTP(srv.port_of("sub")) as c:
        c.ehlo()
        c.send("STARTTLS\r\nNOOP\r\n")
        r = c.reply()
        assert r.code == 220, r
        import ssl
        try:
            c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="localhost")
        except (ssl.SSLError, OSError):
            return  # the server dropped the connection: acceptable
        c.buf = b""
        try:
            r = c.cmd("EHLO client.test")
        except (ConnectionError, OSError):
            return
        assert r.code == 250, f"injected NOOP was answered inside TLS: {r}"


def test_implicit_tls(srv):
    with tls_session(srv.port_of("smtps"), implicit=True) as s:
        assert "starttls" not in s.esmtp_features
        assert "auth" in s.esmtp_features
        assert auth(s, "PLAIN")[0] == 235
        assert s.mail("me@example.com")[0] == 250
        assert s.rcpt("you@example.net")[0] == 250
        code, text = s.data(message("implicit-tls", frm="me@example.com"))
        assert code == 250, text
        qid = queued_id(text)
    assert qid in srv.queue()


def test_implicit_tls_rejects_plaintext(srv):
    with __import__("socket").create_connection(("127.0.0.1", srv.port_of("smtps")), 10) as so:
        so.sendall(b"EHLO client.test\r\n")
        so.settimeout(10)
        try:
            data = so.recv(1000)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"220") and not data.startswith(b"250"), data
    # and the server keeps serving
    with tls_session(srv.port_of("smtps"), implicit=True) as s:
        assert s.noop()[0] == 250


def test_auth_on_trusted_plain_listener(srv):
    with helpers.smtp(srv.port_of("plain")) as s:
        s.ehlo("client.test")
        assert auth(s, "PLAIN")[0] == 235


# ---------- sender binding ----------

def test_sender_binding(srv):
    with tls_session(srv.port_of("sub")) as s:
        assert auth(s, "PLAIN")[0] == 235
        assert s.mail("a@example.com")[0] == 250
        s.rset()
        assert s.mail("a@EXAMPLE.COM")[0] == 250
        s.rset()
        code, text = s.mail("a@other.com")
        assert code == 553 and text.decode().startswith("5.7.1"), (code, text)
        code, text = s.mail("a@example.com.evil.test")
        assert code == 553, (code, text)
        assert s.mail("b@example.com")[0] == 250


def test_sender_domains_changed_while_running(srv):
    srv.add_user("bob", "bob-password", ("bob.test",))

    def try_mail(frm):
        with tls_session(srv.port_of("sub")) as s:
            assert auth(s, "PLAIN", "bob", "bob-password")[0] == 235
            return s.mail(frm)[0]

    t0 = time.monotonic()
    assert try_mail("x@new.test") == 553
    one_session = time.monotonic() - t0
    rc, out, err = srv.cli("user", "domain", "add", "bob", "new.test")
    assert rc == 0, err
    rc, out, err = srv.cli("user", "list")
    assert "new.test" in dict(l.split("\t", 1) for l in out.splitlines())["bob"], out
    # "a running server sees their effect within a second"
    helpers.wait_for(lambda: try_mail("x@new.test") == 250, timeout=1.0 + 2 * one_session,
                     what="added domain seen by the server")
    rc, out, err = srv.cli("user", "domain", "del", "bob", "new.test")
    assert rc == 0, err
    helpers.wait_for(lambda: try_mail("x@new.test") == 553, timeout=1.0 + 2 * one_session,
                     what="removed domain seen by the server")
    assert try_mail("x@bob.test") == 250


def test_auth_plain_authzid_cannot_impersonate(srv):
    srv.add_user("victim", "victim-password", ("victim.test",))
    with tls_session(srv.port_of("sub")) as s:
        code, text = s.docmd("AUTH", "PLAIN " + plain_token(USER, PASSWORD, authz="victim"))
        if code == 235:
            # if accepted at all, the session is alice's, not victim's
            code, text = s.mail("ceo@victim.test")
            assert code == 553, ("authzid let alice send as victim", code, text)
        else:
            assert 500 <= code < 600, (code, text)


def test_auth_empty_credentials(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        for tok in (b64("\0\0"), b64("\0" + USER + "\0"), b64("no-nuls-at-all")):
            r = c.cmd("AUTH PLAIN " + tok)
            assert r.code in (501, 535), (tok, r)
            if r.code == 535:
                break  # count towards the failure limit; stop before 3
        assert c.cmd("NOOP").code == 250


# ---------- zero-length responses (RFC 4954 section 4) ----------

def is_prompt(r, word):
    return r.code == 334 and base64.b64decode(r.lines[0]).lower().startswith(word)


def test_auth_login_empty_responses(srv):
    """An empty line is a valid zero-length response: an empty LOGIN user
    name or password is wrong credentials (535), not undecodable (501)."""
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        assert is_prompt(c.cmd("AUTH LOGIN"), b"username")
        r = c.cmd("")
        assert is_prompt(r, b"password"), r
        r = c.cmd("")
        assert r.code == 535 and r.lines[0].startswith("5.7.8"), r
        # "=" is AUTH's zero-length initial response: an empty user name
        r = c.cmd("AUTH LOGIN =")
        assert is_prompt(r, b"password"), r
        r = c.cmd(b64(PASSWORD))
        assert r.code == 535, r
        # in a continuation line "=" is not base64 at all
        assert is_prompt(c.cmd("AUTH LOGIN"), b"username")
        r = c.cmd("=")
        assert r.code == 501 and r.lines[0].startswith("5.5.2"), r
        # two failures so far: still in, and real credentials still work
        assert c.cmd("AUTH LOGIN " + b64(USER)).code == 334
        r = c.cmd(b64(PASSWORD))
        assert r.code == 235, r
    log = srv.log()
    assert re.search(r'event=auth result=fail client=127\.0\.0\.1 listener=plain user="" '
                     r"failures=2\n", log), log[-3000:]


def test_auth_plain_empty_responses(srv):
    """A zero-length PLAIN message ("=" on the AUTH line, or an empty line
    after 334) has no user and password in it: 501, and nothing counted."""
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN =")
        assert r.code == 501 and r.lines[0].startswith("5.5.2"), r
        assert c.cmd("AUTH PLAIN").code == 334
        r = c.cmd("")
        assert r.code == 501 and r.lines[0].startswith("5.5.2"), r
        for _ in range(3):  # more than the failure limit: none of them counted
            assert c.cmd("AUTH PLAIN =").code == 501
        assert c.cmd("AUTH PLAIN " + plain_token(USER, PASSWORD)).code == 235


# ---------- the failure log line (a fail2ban filter matches it) ----------

def auth_fail_lines(log, listener, user):
    return re.findall(r"^\S+ level=info session=(\S+) event=auth result=fail "
                      r"client=127\.0\.0\.1 listener=" + listener + " user=" + re.escape(user) +
                      r" failures=(\d+)$", log, re.M)


def test_auth_failure_log_line(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + plain_token("f2b-probe", "f2b-Secret-1")).code == 535
        assert c.cmd("AUTH PLAIN " + plain_token("f2b-probe", "f2b-Secret-2")).code == 535
    with tls_session(srv.port_of("sub")) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            auth(s, "LOGIN", 'f2b probe "two"', "f2b-Secret-3")
    log = srv.log()
    lines = auth_fail_lines(log, "plain", '"f2b-probe"')
    assert [n for _, n in lines] == ["1", "2"], log[-3000:]
    sess = lines[0][0]
    assert lines[1][0] == sess
    assert re.search(r"session=" + sess + r" event=connect listener=plain ip=127\.0\.0\.1 ", log)
    # another listener, and a user name that needs escaping: still quoted once
    lines = auth_fail_lines(log, "sub", r'"f2b probe \"two\""')
    assert [n for _, n in lines] == ["1"], log[-3000:]
    assert "f2b-Secret" not in log, "a password reached the log"


# ---------- relay authorization for an untrusted client ----------

@pytest.fixture(scope="module")
def untrusted(tmp_path_factory, cert):
    s = Server(tmp_path_factory.mktemp("untrusted"), cert,
               listeners={"mx": {"tls": "none", "auth": "optional"},
                          "req": {"tls": "none", "auth": "required"},
                          "sub": {"tls": "starttls", "auth": "optional"}},
               relay={"trusted_networks": "10.9.9.0/24"})
    s.add_user()
    s.start()
    yield s
    s.stop()


def test_untrusted_relay_denied(untrusted):
    before = set(untrusted.queue())
    with RawSMTP(untrusted.port_of("mx")) as c:
        kw = ehlo_keywords(c.ehlo())
        assert "AUTH" not in kw, "no AUTH in clear to an untrusted client"
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        r = c.cmd("RCPT TO:<victim@example.net>")
        assert r.code == 554 and r.lines[0].startswith("5.7.1"), r
        r = c.cmd("RCPT TO:<postmaster@example.net>")
        assert r.code == 554, r
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        r = c.cmd("AUTH PLAIN " + plain_token(USER, PASSWORD))
        assert r.code != 235 and 500 <= r.code < 600, r
    assert set(untrusted.queue()) == before


def test_untrusted_auth_required_listener(untrusted):
    with RawSMTP(untrusted.port_of("req")) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com>")
        assert r.code == 530 and r.lines[0].startswith("5.7.0"), r


def test_untrusted_starttls_without_auth_denied(untrusted):
    with tls_session(untrusted.port_of("sub")) as s:
        assert s.mail("a@example.com")[0] == 250
        code, text = s.rcpt("victim@example.net")
        assert code == 554 and text.decode().startswith("5.7.1"), (code, text)


def test_untrusted_authenticated_relay_allowed(untrusted):
    with tls_session(untrusted.port_of("sub")) as s:
        assert auth(s, "PLAIN")[0] == 235
        assert s.mail("me@example.com")[0] == 250
        assert s.rcpt("friend@example.net")[0] == 250
        code, text = s.data(message("authenticated-relay", frm="me@example.com"))
        assert code == 250, text
        qid = queued_id(text)
    assert qid in untrusted.queue()


# ---------- AUTH in clear text (docs/smtp.md "AUTH and TLS") ----------
# AUTH is offered and taken only over TLS, with one exception the operator
# chooses: a tls = none listener offers it to clients in trusted_networks.

CLEAR_TRUSTED = "127.0.0.7"  # the only trusted client address here


@pytest.fixture(scope="module")
def clear(tmp_path_factory, cert):
    s = Server(tmp_path_factory.mktemp("clear"), cert,
               listeners={"req": {"tls": "none", "auth": "required"},
                          "opt": {"tls": "none", "auth": "optional"},
                          "sub": {"tls": "starttls", "auth": "required"}},
               relay={"trusted_networks": f"{CLEAR_TRUSTED}/32"})
    s.add_user()
    s.start()
    yield s
    s.stop()
    helpers.check_identities(s.log())


@pytest.mark.parametrize("listener", ["req", "opt"])
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_cleartext_auth_refused_538(clear, listener, mech):
    """An untrusted client on a tls = none listener: AUTH is not offered, and refused
    with 538 5.7.11 before any credentials are read."""
    checks = clear.log().count("event=auth ")
    with RawSMTP(clear.port_of(listener)) as c:
        kw = ehlo_keywords(c.ehlo())
        assert "AUTH" not in kw and "STARTTLS" not in kw, kw
        for cmd in (f"AUTH {mech}", f"AUTH {mech} " + (
                plain_token(USER, PASSWORD) if mech == "PLAIN" else b64(USER))):
            r = c.cmd(cmd)
            assert (r.code, r.lines[0]) == (
                538, "5.7.11 Encryption required for requested authentication mechanism"), r
        r = c.cmd("MAIL FROM:<me@example.com>")
        if listener == "req":
            assert r.code == 530 and r.lines[0].startswith("5.7.0"), r
        else:
            assert r.code == 250, r
            r = c.cmd("RCPT TO:<friend@example.net>")
            assert r.code == 554 and r.lines[0].startswith("5.7.1"), r
    assert clear.log().count("event=auth ") == checks, "a refused AUTH checks no credentials"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_cleartext_auth_for_trusted_client(clear, mech):
    """The documented exception: a client in trusted_networks on a tls = none listener."""
    with smtplib.SMTP("127.0.0.1", clear.port_of("req"), timeout=helpers.TIMEOUT,
                      source_address=(CLEAR_TRUSTED, 0)) as s:
        s.ehlo("client.test")
        assert "auth" in s.esmtp_features
        assert auth(s, mech)[0] == 235
        assert s.mail("me@example.com")[0] == 250
        assert s.rcpt("friend@example.net")[0] == 250
        code, text = s.data(message(f"clear-{mech}", frm="me@example.com"))
        assert code == 250, text
        qid = queued_id(text)
    assert qid in clear.queue()


def test_auth_after_starttls_for_untrusted_client(clear):
    with RawSMTP(clear.port_of("sub")) as c:
        assert "AUTH" not in ehlo_keywords(c.ehlo())
        r = c.cmd("AUTH PLAIN " + plain_token(USER, PASSWORD))
        assert r.code == 538, r
        c.starttls()
        assert "AUTH" in ehlo_keywords(c.ehlo())
        r = c.cmd("AUTH PLAIN " + plain_token(USER, PASSWORD))
        assert r.code == 235 and r.lines[0].startswith("2.7.0"), r
