"""SPEC §5 and §6, one-click unsubscribe (RFC 8058, RFC 2369), through the
real server: SMTP mail of an account with `user set NAME --unsubscribe on`
arrives with List-Unsubscribe (an https link on public_url, no mailto) and
List-Unsubscribe-Post, both signed by DKIM (dkimpy and opendkim-testmsg
verify); a POST to the link (no key, any body) puts the recipient on that
account's suppression list with reason `unsubscribed`; a GET shows a page
with a form and never unsubscribes nor redirects; a tampered, forged or
malformed token gets a 4xx and changes nothing; a message to several
recipients is split into one message per recipient, each with its own
link and signature; accounts without the flag, and a public_url that is
not https, get no header; a change of the flag is seen within seconds."""
import base64
import http.client
import json
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e_support"))
import accept_env  # noqa: E402
import dkim_verify  # noqa: E402
import eventsapi  # noqa: E402
import httpapi  # noqa: E402
import mx  # noqa: E402

DEST_IP = "127.0.0.81"
MX_TABLE = {"dest.test": (DEST_IP, {})}
KEYS = [("news.test", "n1", "rsa2048"), ("news.test", "n2", "ed25519")]
NEWS = ("news", "a password for news")
PLAIN = ("plain", "a password for plain")
LINK_RE = re.compile(r"^<https://relay\.test/u/([A-Za-z0-9_-]+)>$")


def add_user(srv, name, pw, domain):
    rc, out, err = srv.cli("user", "add", name, "--password-stdin", "--domain", domain,
                           input=pw + "\n")
    assert rc == 0, err


@pytest.fixture(scope="module")
def env(tmp_path_factory, cert):
    e = accept_env.AcceptEnv(tmp_path_factory.mktemp("unsub"), cert, MX_TABLE, KEYS)
    add_user(e.srv, *NEWS, "news.test")
    add_user(e.srv, *PLAIN, "news.test")
    rc, out, err = e.srv.cli("user", "set", "news", "--unsubscribe", "on")
    assert rc == 0 and "one-click unsubscribe on" in err, err
    e.srv.start()
    yield e
    e.stop()


def message(subject, to="someone@dest.test"):
    return mx.msg_bytes("letters@news.test", to, subject)


def send_news(env, rcpts, subject, login=NEWS):
    return env.send("letters@news.test", rcpts, message(subject, rcpts[0]), login=login)


def token_of(t):
    link = t.header("List-Unsubscribe")
    m = LINK_RE.match(link or "")
    assert m, f"List-Unsubscribe: {link!r}"
    return m.group(1)


def token_fields(token):
    """(account, address) a token names (its payload is not secret)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    n = raw[1]
    return raw[2:2 + n].decode(), raw[2 + n:-16].decode()


def call(env, method, token, body=None, headers=None):
    host, port = env.srv.http_address.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        c.request(method, "/u/" + token, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def suppressed(env, account):
    rc, out, err = env.srv.cli("suppress", "list", "--account", account)
    assert rc == 0, err
    return {l.split("\t")[0]: l.split("\t")[1] for l in out.splitlines() if l}


def test_header_present_and_signed(env):
    send_news(env, ["first@dest.test"], "signed link")
    [t] = env.received(DEST_IP, "first@dest.test")
    token = token_of(t)
    assert t.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert "mailto:" not in t.header("List-Unsubscribe")
    assert token_fields(token) == ("news", "first@dest.test")
    for field in dkim_verify.signature_fields(t.content):
        h = dkim_verify.tags(field)["h"].lower().split(":")
        assert "list-unsubscribe" in h and "list-unsubscribe-post" in h, h
    env.assert_verifies(t.content, ["n1", "n2"])
    # the signature covers the link: another token breaks it
    other = t.content.replace(token.encode(), token[:-2].encode() + b"AA")
    v = env.verify(other)
    assert not any(ok or ok2 for ok, ok2, _ in v.values()), v


def test_post_unsubscribes(env):
    send_news(env, ["Reader@dest.test"], "to unsubscribe")
    [t] = env.received(DEST_IP, "Reader@dest.test")
    token = token_of(t)
    assert "Reader@dest.test" not in suppressed(env, "news")
    status, headers, body = call(env, "POST", token, "List-Unsubscribe=One-Click",
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    assert "Location" not in headers
    assert "Reader@dest.test is unsubscribed" in body
    assert suppressed(env, "news")["Reader@dest.test"] == "unsubscribed"
    assert "Reader@dest.test" not in suppressed(env, "plain")  # only the token's account
    assert accept_env.log_lines(env.srv, "event=suppressed account=news "
                                         "address=Reader@dest.test reason=unsubscribed")
    # again, and with any body (or none): 200, nothing changes
    for body in ("", "whatever=1"):
        status, _, _ = call(env, "POST", token, body)
        assert status == 200
    assert suppressed(env, "news")["Reader@dest.test"] == "unsubscribed"
    # one `suppressed` event (docs/events.md), for the token's account only,
    # not repeated by the later POSTs
    key = httpapi.create_key(env.srv, "news")
    query = "type=suppressed&recipient=Reader@dest.test"
    [ev] = eventsapi.wait_events(env.srv, key, query, 1)
    assert (ev["account"], ev["recipient"]) == ("news", "Reader@dest.test"), ev
    assert ev["detail"]["reason"] == "unsubscribed", ev
    assert ev["message_id"] is None, ev  # the token names no message
    time.sleep(0.5)  # the writer's batches are 100 ms apart (docs/events.md)
    assert len(eventsapi.events(env.srv, key, query)["events"]) == 1
    plain = httpapi.create_key(env.srv, "plain")
    assert eventsapi.events(env.srv, plain, query)["events"] == []


def test_get_never_unsubscribes(env):
    send_news(env, ["looker@dest.test"], "look only")
    [t] = env.received(DEST_IP, "looker@dest.test")
    token = token_of(t)
    for method in ("GET", "HEAD", "GET"):
        status, headers, body = call(env, method, token)
        assert status == 200 and "Location" not in headers, (status, headers)
        assert "script-src" not in headers.get("Content-Security-Policy", "x")
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["Content-Type"].startswith("text/html")
    assert re.search(r'<form method="post">', body), body
    assert "<script" not in body and "looker@dest.test" in body
    assert "looker@dest.test" not in suppressed(env, "news")


def test_bad_tokens_get_4xx(env):
    send_news(env, ["victim@dest.test"], "tamper")
    [t] = env.received(DEST_IP, "victim@dest.test")
    token = token_of(t)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    n = raw[1]
    assert raw[2 + n:-16] == b"victim@dest.test"
    # another address of the same length in the payload, the MAC kept
    swapped = raw[:2 + n] + b"evilxx@dest.test" + raw[-16:]
    flipped = bytearray(raw)
    flipped[-1] ^= 1
    bad = {
        "tampered MAC": base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("="),
        "other address": base64.urlsafe_b64encode(bytes(swapped)).decode().rstrip("="),
        "truncated": token[:-5],
        "not base64": "not%20a%20token",
        "padding": token + "==",
    }
    for what, tok in bad.items():
        for method in ("POST", "GET"):
            status, headers, body = call(env, method, tok, "List-Unsubscribe=One-Click")
            assert 400 <= status < 500, (what, method, status, body)
            assert "Location" not in headers
    assert "victim@dest.test" not in suppressed(env, "news")
    assert "evilxx@dest.test" not in suppressed(env, "news")


def test_split_per_recipient(env):
    rcpts = ["one@dest.test", "two@dest.test", "three@dest.test"]
    qid, reply = send_news(env, rcpts, "split")
    assert "(3 messages, one per recipient)" in reply, reply
    ids = set()
    for r in rcpts:
        [t] = env.received(DEST_IP, r)
        assert t.rcpts == [r]  # one message per recipient
        assert token_fields(token_of(t)) == ("news", r)
        env.assert_verifies(t.content, ["n1", "n2"])
        ids.add(t.header("Message-ID"))
    assert len(ids) == 1  # the same message, as the client sent it
    queued = accept_env.log_lines(env.srv, "event=queued from=<letters@news.test> rcpts=1")
    assert any(f"queue={qid} " in l for l in queued)
    # each link unsubscribes its own recipient only
    [t] = env.received(DEST_IP, "two@dest.test")
    assert call(env, "POST", token_of(t), "List-Unsubscribe=One-Click")[0] == 200
    s = suppressed(env, "news")
    assert "two@dest.test" in s and "one@dest.test" not in s and "three@dest.test" not in s


def test_account_without_flag(env):
    send_news(env, ["noflag@dest.test"], "no flag", login=PLAIN)
    [t] = env.received(DEST_IP, "noflag@dest.test")
    assert t.header("List-Unsubscribe") is None
    assert t.header("List-Unsubscribe-Post") is None
    env.assert_verifies(t.content, ["n1", "n2"])  # still signed


def test_flag_change_seen_within_seconds(env):
    n2 = accept_env.count_log(env.srv, r"event=unsub_accounts accounts=2")
    n1 = accept_env.count_log(env.srv, r"event=unsub_accounts accounts=1")
    rc, _, err = env.srv.cli("user", "set", "plain", "--unsubscribe", "on")
    assert rc == 0, err
    try:
        accept_env.wait_log(env.srv, r"event=unsub_accounts accounts=2", more_than=n2)
        send_news(env, ["flagged@dest.test"], "flag on", login=PLAIN)
        [t] = env.received(DEST_IP, "flagged@dest.test")
        assert token_fields(token_of(t)) == ("plain", "flagged@dest.test")
    finally:
        rc, _, err = env.srv.cli("user", "set", "plain", "--unsubscribe", "off")
        assert rc == 0, err
    accept_env.wait_log(env.srv, r"event=unsub_accounts accounts=1", more_than=n1)


def test_no_header_without_https(tmp_path, cert):
    """public_url http: RFC 8058 requires https, so no header at all."""
    e = accept_env.AcceptEnv(tmp_path, cert, MX_TABLE, KEYS, public_url="http://relay.test")
    try:
        add_user(e.srv, *NEWS, "news.test")
        rc, _, err = e.srv.cli("user", "set", "news", "--unsubscribe", "on")
        assert rc == 0 and "not https" in err, err
        e.srv.start()
        send_news(e, ["plainhttp@dest.test", "other@dest.test"], "http only")
        [t] = e.received(DEST_IP, "plainhttp@dest.test")
        assert t.rcpts == ["plainhttp@dest.test", "other@dest.test"]  # not split either
        assert t.header("List-Unsubscribe") is None
        e.assert_verifies(t.content, ["n1", "n2"])
    finally:
        e.stop()


def test_openapi_lists_the_link(env):
    host, port = env.srv.http_address.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=20)
    c.request("GET", "/v1/openapi.json")
    doc = json.loads(c.getresponse().read())
    c.close()
    assert doc["paths"]["/u/{token}"]["post"]["security"] == []
    assert doc["paths"]["/u/{token}"]["get"]["security"] == []


def test_account_gone(env):
    """A link of an account deleted since: 404, and nothing is added."""
    n2 = accept_env.count_log(env.srv, r"event=unsub_accounts accounts=2")
    n1 = accept_env.count_log(env.srv, r"event=unsub_accounts accounts=1")
    add_user(env.srv, "brief", "a password for brief", "news.test")
    rc, _, err = env.srv.cli("user", "set", "brief", "--unsubscribe", "on")
    assert rc == 0, err
    accept_env.wait_log(env.srv, r"event=unsub_accounts accounts=2", more_than=n2)
    send_news(env, ["shortlived@dest.test"], "account goes", login=("brief", "a password for brief"))
    [t] = env.received(DEST_IP, "shortlived@dest.test")
    token = token_of(t)
    rc, _, err = env.srv.cli("user", "del", "brief")
    assert rc == 0, err
    status, _, body = call(env, "POST", token, "List-Unsubscribe=One-Click")
    assert status == 404, (status, body)
    assert "no longer valid" in body
    accept_env.wait_log(env.srv, r"event=unsub_accounts accounts=1", more_than=n1)


def test_public_url_too_long_for_a_link(tmp_path, cert):
    """A public_url so long that the field would pass 998 octets (RFC 5322):
    no link can be made; the mail goes without the header, and the log
    says so."""
    url = "https://relay.test/" + "p" * 960
    e = accept_env.AcceptEnv(tmp_path, cert, MX_TABLE, KEYS, public_url=url)
    try:
        add_user(e.srv, *NEWS, "news.test")
        rc, _, err = e.srv.cli("user", "set", "news", "--unsubscribe", "on")
        assert rc == 0, err
        e.srv.start()
        qid, _ = send_news(e, ["longurl@dest.test"], "long url")
        [t] = e.received(DEST_IP, "longurl@dest.test")
        assert t.header("List-Unsubscribe") is None
        assert accept_env.log_lines(e.srv, f"queue={qid} event=list_unsubscribe result=none")
        e.assert_verifies(t.content, ["n1", "n2"])
    finally:
        e.stop()


def test_api_mail_is_signed_and_gets_the_link_per_recipient(env):
    """POST /v1/messages takes the SMTP accept path's additions: every
    active key of the From domain signs, and unsubscribe: true gives each
    recipient a message of its own with a link naming it, inside the
    signatures."""
    key = httpapi.create_key(env.srv, "plain")
    r = httpapi.request(env.srv, "POST", "/v1/messages", key=key,
                        body={"from": "letters@news.test",
                              "to": ["api1@dest.test", "api2@dest.test"],
                              "subject": "through the API", "text": "Hello.",
                              "unsubscribe": True})
    assert r.status == 200, r.body
    ids = {m["to"]: m["id"] for m in r.json()["messages"]}
    assert len(set(ids.values())) == 2, ids  # one message per recipient
    for rcpt in ("api1@dest.test", "api2@dest.test"):
        [t] = env.received(DEST_IP, rcpt)
        assert token_fields(token_of(t)) == ("plain", rcpt)
        for field in dkim_verify.signature_fields(t.content):
            h = dkim_verify.tags(field)["h"].lower().split(":")
            assert "list-unsubscribe" in h, h
        env.assert_verifies(t.content, ["n1", "n2"])
        lines = accept_env.log_lines(env.srv, f"queue={ids[rcpt]} event=dkim ")
        assert len(lines) == 1 and "result=signed domain=news.test" in lines[0], lines


def test_api_mail_without_unsubscribe_is_signed_without_a_link(env):
    key = httpapi.create_key(env.srv, "plain")
    r = httpapi.request(env.srv, "POST", "/v1/messages", key=key,
                        body={"from": "letters@news.test", "to": ["api3@dest.test"],
                              "subject": "no link", "text": "Hello."})
    assert r.status == 200, r.body
    [t] = env.received(DEST_IP, "api3@dest.test")
    assert t.header("List-Unsubscribe") is None
    env.assert_verifies(t.content, ["n1", "n2"])
