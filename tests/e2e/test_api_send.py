"""POST /v1/messages against a real server: the message is built, queued and
delivered to a fake MX (aiosmtpd, tests/e2e/mx.py) found through the test
DNS, and what arrives is parsed with Python's email package (structure,
transfer encodings, encoded headers, attachments byte for byte). Batches
with per-recipient variables, suppressed recipients, the sender-domain
check and every error path of the route."""
import base64
import email
import email.policy
import os
import sqlite3
import time

import pytest

import helpers
from conftest import Server
from eventsapi import wait_events
from httpapi import create_key, request, wait_http
from mx import WAIT, alive_poll, dns, farm, log_excerpt, mx_relay, mx_zone  # noqa: F401

SENDER_IP = "127.0.0.11"
DEST_IP = "127.0.0.41"
MAX_BODY = 256 * 1024


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "dest.test": DEST_IP})


@pytest.fixture(scope="module")
def mx(farm):
    m = farm.add(DEST_IP, smtputf8=True)
    yield m
    farm.remove(DEST_IP)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, cert, dns, farm, mx):
    s = Server(tmp_path_factory.mktemp("send"), cert, relay=mx_relay(dns.address, farm),
               extra=f"max_request_size = {MAX_BODY}")
    s.start()
    wait_http(s)
    s.add_user("alice", domains=("sender.test",))
    s.add_user("bob", domains=("other.test",))
    s.key = create_key(s, "alice")
    s.bob = create_key(s, "bob")
    yield s
    s.stop()


def send(srv, body, key=None, headers=None):
    return request(srv, "POST", "/v1/messages", key=key or srv.key, body=body, headers=headers)


def delivered(srv, mx, rcpt):
    """The message the fake MX received for rcpt, parsed."""
    def find():
        for t in list(mx.messages):
            if rcpt.lower() in [r.lower() for r in t.rcpts]:
                return t
        return None
    try:
        alive_poll(srv, lambda: find() is not None, WAIT, what=f"a message for {rcpt}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nserver log:\n{log_excerpt(srv, n=40)}") from None
    t = find()
    return t, email.message_from_bytes(t.content, policy=email.policy.default)


def assert_lines_ok(raw):
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, line[:80]
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"


def test_text_and_html_with_attachment_and_inline(srv, mx):
    pdf = os.urandom(3000)
    png = bytes(range(256)) * 4
    text = "Grüße aus Köln\n" + "long line " * 30 + "\nend"
    body = {"from": "Zoë Sender <news@sender.test>", "to": ["Jürgen Ü <one@dest.test>"],
            "cc": "two@dest.test", "bcc": ["hidden@dest.test"],
            "reply_to": "Help Desk <help@sender.test>",
            "subject": "Prüfung: ünïcödé subject that is rather long so that it has to be folded",
            "text": text, "html": '<p>Hallo <img src="cid:logo@x"></p>',
            "headers": {"X-Campaign": "spring"},
            "attachments": [
                {"filename": "report ä.pdf", "content_type": "application/pdf",
                 "content": base64.b64encode(pdf).decode()},
                {"filename": "logo.png", "content_type": "image/png",
                 "content": base64.b64encode(png).decode(), "content_id": "logo@x"}],
            "tags": ["welcome"], "metadata": {"user": 42}}
    r = send(srv, body)
    assert r.status == 200, r
    msgs = r.json()["messages"]
    assert [m["to"] for m in msgs] == ["one@dest.test", "two@dest.test", "hidden@dest.test"]
    assert all(m["status"] == "queued" for m in msgs)
    assert len({m["id"] for m in msgs}) == 1  # one message, three recipients
    t, m = delivered(srv, mx, "one@dest.test")
    assert sorted(r.lower() for r in t.rcpts) == ["hidden@dest.test", "one@dest.test",
                                                   "two@dest.test"]
    assert t.mail_from == "news@sender.test"
    assert_lines_ok(t.content)
    raw_head = t.content.split(b"\r\n\r\n")[0]
    assert b"hidden@dest.test" not in raw_head  # Bcc never appears
    assert b"=?UTF-8?B?" in raw_head and max(len(l) for l in raw_head.split(b"\r\n")) <= 78
    assert str(m["Subject"]) == body["subject"]
    assert m["From"].addresses[0].display_name == "Zoë Sender"
    assert m["To"].addresses[0].display_name == "Jürgen Ü"
    assert str(m["Cc"]) == "two@dest.test"
    assert m["Reply-To"].addresses[0].addr_spec == "help@sender.test"
    assert m["X-Campaign"] == "spring"
    assert m["Message-ID"] == f"<{msgs[0]['id']}@{m['Message-ID'].split('@')[1][:-1]}>"
    assert m.get_content_type() == "multipart/mixed"
    alt, att = m.get_payload()
    assert alt.get_content_type() == "multipart/alternative"
    plain, related = alt.get_payload()
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert plain.get_content().replace("\r\n", "\n") == text
    assert related.get_content_type() == "multipart/related"
    html, logo = related.get_payload()
    assert html.get_content_type() == "text/html" and "cid:logo@x" in html.get_content()
    assert logo["Content-ID"] == "<logo@x>" and logo.get_payload(decode=True) == png
    assert att.get_filename() == "report ä.pdf"
    assert att.get_content_type() == "application/pdf"
    assert att.get_payload(decode=True) == pdf
    for line in plain.as_bytes().split(b"\n"):
        assert len(line.rstrip(b"\r")) <= 76


def test_ascii_text_only_is_7bit(srv, mx):
    r = send(srv, {"from": "a@sender.test", "to": "ascii@dest.test", "subject": "plain",
                   "text": "line one\nline two\n"})
    assert r.status == 200, r
    t, m = delivered(srv, mx, "ascii@dest.test")
    assert m.get_content_type() == "text/plain"
    assert m["Content-Transfer-Encoding"] == "7bit"
    assert t.body == b"line one\r\nline two\r\n"
    assert "SMTPUTF8" not in [o.upper() for o in t.mail_options]


def test_utf8_address_needs_smtputf8(srv, mx):
    r = send(srv, {"from": "a@sender.test", "to": "jürgen@dest.test", "subject": "x",
                   "text": "hi"})
    assert r.status == 200, r
    t, m = delivered(srv, mx, "jürgen@dest.test")
    assert "SMTPUTF8" in [o.upper() for o in t.mail_options]


def test_template_batch_per_recipient_variables(srv, mx):
    tpl = {"name": "news", "subject": "Hello {{name}}", "text": "Hi {{name}}, {{greeting}}",
           "html": "<p>Hi {{name}}</p>"}
    assert request(srv, "POST", "/v1/templates", key=srv.key, body=tpl).status in (200, 201)
    rcpts = [{"to": f"b{i}@dest.test", "variables": {"name": f"N{i}"}} for i in range(3)]
    rcpts[2]["variables"]["greeting"] = "own"
    r = send(srv, {"from": "news@sender.test", "template": "news",
                   "variables": {"greeting": "shared", "name": "nobody"}, "recipients": rcpts})
    assert r.status == 200, r
    msgs = r.json()["messages"]
    assert [m["to"] for m in msgs] == ["b0@dest.test", "b1@dest.test", "b2@dest.test"]
    assert len({m["id"] for m in msgs}) == 3
    for i in range(3):
        t, m = delivered(srv, mx, f"b{i}@dest.test")
        assert [r.lower() for r in t.rcpts] == [f"b{i}@dest.test"]
        assert str(m["Subject"]) == f"Hello N{i}"
        assert str(m["To"]) == f"b{i}@dest.test"
        plain = m.get_body(("plain",)).get_content()
        assert plain.strip() == f"Hi N{i}, " + ("own" if i == 2 else "shared")


def test_missing_variables_are_warnings_in_the_answer(srv, mx):
    """SPEC 6: a missing variable renders empty and is reported in the
    answer's warnings; in a batch each warning names its recipient."""
    tpl = {"name": "order", "subject": "Order {{order.id}}", "text": "Dear {{name}}"}
    assert request(srv, "POST", "/v1/templates", key=srv.key, body=tpl).status in (200, 201)
    r = send(srv, {"from": "shop@sender.test", "to": ["w1@dest.test"], "template": "order",
                   "variables": {"name": "Ann"}})
    assert r.status == 200, r.body
    assert r.json()["warnings"] == [{"part": "subject", "kind": "missing", "name": "order.id"}]
    r = send(srv, {"from": "shop@sender.test", "template": "order",
                   "variables": {"order": {"id": 7}},
                   "recipients": [{"to": "w2@dest.test", "variables": {"name": "Bo"}},
                                  {"to": "w3@dest.test"}]})
    assert r.status == 200, r.body
    assert r.json()["warnings"] == [{"part": "text", "kind": "missing", "name": "name",
                                     "to": "w3@dest.test"}]
    t, m = delivered(srv, mx, "w3@dest.test")
    assert m.get_body(("plain",)).get_content().strip() == "Dear"
    r = send(srv, {"from": "shop@sender.test", "to": ["w4@dest.test"], "text": "no template"})
    assert "warnings" not in r.json()


def test_suppressed_recipient_refused(srv, mx):
    r = request(srv, "POST", "/v1/suppressions", key=srv.key,
                body={"address": "gone@dest.test", "reason": "hard bounce"})
    assert r.status in (200, 201), r
    r = send(srv, {"from": "a@sender.test", "to": ["gone@dest.test", "here@dest.test"],
                   "subject": "s", "text": "t"})
    assert r.status == 200, r
    gone, here = r.json()["messages"]
    assert gone == {"to": "gone@dest.test", "status": "refused", "id": None,
                    "reason": "suppressed: hard bounce"}
    assert here["status"] == "queued"
    t, _ = delivered(srv, mx, "here@dest.test")
    assert [x.lower() for x in t.rcpts] == ["here@dest.test"]
    r = send(srv, {"from": "a@sender.test", "to": "gone@dest.test", "subject": "s", "text": "t"})
    assert r.status == 422, r
    assert r.error()["code"] == "nothing_queued"
    assert r.json()["messages"][0]["status"] == "refused"


def test_accepted_events_carry_tags_and_metadata(srv, mx):
    r = send(srv, {"from": "a@sender.test", "to": "ev@dest.test", "subject": "s", "text": "t",
                   "tags": ["t1", "t2"], "metadata": {"k": "v"}})
    assert r.status == 200, r
    qid = r.json()["messages"][0]["id"]
    (e,) = wait_events(srv, srv.key, f"message={qid}&type=accepted", 1)
    assert e["recipient"] == "ev@dest.test" and e["tags"] == ["t1", "t2"]
    m = request(srv, "GET", f"/v1/messages/{qid}", key=srv.key).json()
    assert m["from"] == "a@sender.test" and m["subject"] == "s"


def test_sender_domain_not_owned_is_403(srv):
    r = send(srv, {"from": "a@sender.test", "to": "x@dest.test", "subject": "s", "text": "t"},
             key=srv.bob)
    assert r.status == 403, r
    assert r.error()["field"] == "from"


def test_bad_key_is_401(srv):
    r = send(srv, {"from": "a@sender.test", "to": "x@dest.test", "text": "t"}, key="ph_" + "0" * 64)
    assert r.status == 401, r


def test_too_large_is_413(srv):
    r = send(srv, {"from": "a@sender.test", "to": "x@dest.test", "text": "x" * MAX_BODY})
    assert r.status == 413, r


@pytest.mark.parametrize("body,field", [
    ({"to": "x@dest.test", "text": "t"}, "from"),
    ({"from": "not an address", "to": "x@dest.test", "text": "t"}, "from"),
    ({"from": "a@sender.test", "text": "t"}, "to"),
    ({"from": "a@sender.test", "to": ["ok@dest.test", "bad@"], "text": "t"}, "to[1]"),
    ({"from": "a@sender.test", "to": "x@dest.test"}, "text"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t", "colour": 1}, "colour"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t", "subject": "a\nb"}, "subject"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t", "headers": {"From": "x"}},
     "headers"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t",
      "attachments": [{"content": "!!!"}]}, "attachments[0].content"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t",
      "attachments": [{"content": "", "content_type": "nope"}]}, "attachments[0].content_type"),
    ({"from": "a@sender.test", "template": "nosuch", "to": "x@dest.test"}, "template"),
    ({"from": "a@sender.test", "template": "news", "text": "t", "to": "x@dest.test"}, "text"),
    ({"from": "a@sender.test", "template": "news", "to": "x@dest.test",
      "recipients": [{"to": "y@dest.test"}]}, "to"),
    ({"from": "a@sender.test", "template": "news", "recipients": [{}]}, "recipients[0].to"),
    ({"from": "a@sender.test", "template": "news",
      "recipients": [{"to": "y@dest.test"}] * 1001}, "recipients"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t", "tags": "x"}, "tags"),
    ({"from": "a@sender.test", "to": "x@dest.test", "text": "t", "track": {"opens": 1}},
     "track"),
])
def test_invalid_field_is_400(srv, body, field):
    r = send(srv, body)
    assert r.status == 400, r
    assert r.error()["field"] == field, r


T = {"from": "a@sender.test", "to": "x@dest.test", "text": "t"}


@pytest.mark.parametrize("body,field,message", [
    ({**T, "headers": ["X-A: b"]}, "headers", "expected an object of at most"),
    ({**T, "headers": {"X-A": 1}}, "headers", "X-A: expected a string"),
    ({**T, "attachments": {"content": ""}}, "attachments", "expected an array of at most"),
    ({**T, "metadata": ["x"]}, "metadata", "expected an object"),
    ({**T, "metadata": {"x": "y" * 20000}}, "metadata", "bytes as JSON"),
    ({**T, "track": {"opened": True}}, "track", "unknown member"),
    ({"from": "a@sender.test", "to": "x@dest.test", "template": "../news"}, "template",
     "not a template name"),
    ({"from": "a@sender.test", "to": "x@dest.test", "template": "news", "variables": [1]},
     "variables", "expected an object"),
    ({"from": "a@sender.test", "template": "news", "recipients": []}, "recipients",
     "expected an array of 1 to"),
])
def test_invalid_value_names_field_and_why(srv, body, field, message):
    """Each shape check of the route answers 400 naming the field and what
    was wrong, and queues nothing."""
    queued = srv.log().count("event=queued")
    r = send(srv, body)
    assert r.status == 400, r
    assert r.error()["field"] == field and message in r.error()["message"], r.error()
    assert srv.log().count("event=queued") == queued


def test_malformed_json_is_400(srv):
    r = request(srv, "POST", "/v1/messages", key=srv.key, body="{nope",
                headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.error()["code"] == "malformed_json", r


def test_batch_of_1000_is_answered(srv, mx):
    rcpts = [{"to": f"k{i}@dest.test", "variables": {"name": str(i)}} for i in range(1000)]
    t0 = time.monotonic()
    r = send(srv, {"from": "news@sender.test", "template": "news", "recipients": rcpts})
    took = time.monotonic() - t0
    assert r.status == 200, r
    msgs = r.json()["messages"]
    assert len(msgs) == 1000 and all(m["status"] == "queued" for m in msgs)
    assert len({m["id"] for m in msgs}) == 1000
    print(f"1000-recipient batch answered in {took:.3f}s")


def count_for(mx, rcpt):
    return sum(1 for t in list(mx.messages) if rcpt in [r.lower() for r in t.rcpts])


def test_idempotent_retry_sends_once(srv, mx):
    body = {"from": "a@sender.test", "to": "idem@dest.test", "subject": "once", "text": "t"}
    h = {"Idempotency-Key": "order-1234"}
    first = send(srv, body, headers=h)
    assert first.status == 200, first
    assert "idempotent-replayed" not in first.headers
    again = send(srv, body, headers=h)
    assert again.status == 200 and again.body == first.body, again
    assert again.headers.get("idempotent-replayed") == "true"
    delivered(srv, mx, "idem@dest.test")
    time.sleep(1.5)  # a second copy, if one had been queued, would have arrived by now
    assert count_for(mx, "idem@dest.test") == 1
    qid = first.json()["messages"][0]["id"]
    found = request(srv, "GET", "/v1/messages?recipient=idem@dest.test", key=srv.key).json()
    assert [m["id"] for m in found["messages"]] == [qid]
    # the same key with another body is refused; it sends nothing either
    other = send(srv, dict(body, subject="twice"), headers=h)
    assert other.status == 422 and other.error()["code"] == "idempotency_key_reused", other


def test_idempotency_key_is_per_account(srv, mx):
    h = {"Idempotency-Key": "shared-key"}
    r1 = send(srv, {"from": "a@sender.test", "to": "per1@dest.test", "text": "t"}, headers=h)
    r2 = send(srv, {"from": "b@other.test", "to": "per2@dest.test", "text": "t"}, key=srv.bob,
              headers=h)
    assert r1.status == 200 and r2.status == 200, (r1, r2)
    assert r1.json()["messages"][0]["id"] != r2.json()["messages"][0]["id"]


def test_refused_request_does_not_hold_the_key(srv, mx):
    h = {"Idempotency-Key": "fix-and-retry"}
    bad = send(srv, {"from": "a@sender.test", "to": "fix@dest.test"}, headers=h)
    assert bad.status == 400, bad
    forbidden = send(srv, {"from": "x@nope.test", "to": "fix@dest.test", "text": "t"}, headers=h)
    assert forbidden.status == 403, forbidden
    ok = send(srv, {"from": "a@sender.test", "to": "fix@dest.test", "text": "t"}, headers=h)
    assert ok.status == 200, ok


def test_bad_idempotency_key_is_400(srv):
    for key in ("x" * 256, "has space"):
        r = send(srv, {"from": "a@sender.test", "to": "k@dest.test", "text": "t"},
                 headers={"Idempotency-Key": key})
        assert r.status == 400 and r.error()["field"] == "Idempotency-Key", r


# ---------------------------------------------------------------- tracking

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"


def tracked_urls(srv, mx, rcpt):
    import re
    _, m = delivered(srv, mx, rcpt)
    html = m.get_body(("html",)).get_content()
    base = f"http://{srv.http_address}"
    links = [u for u in re.findall(r'<a href="([^"]+)"', html) if u.startswith(base + "/t/c/")]
    pixels = re.findall(r'<img src="([^"]+)" width="1"', html)
    for u in pixels:
        assert u.startswith(base + "/t/o/"), u
    return html, [u[len(base):].replace("&amp;", "&") for u in links], \
        [u[len(base):] for u in pixels]


def get_path(srv, path, ua=BROWSER):
    return request(srv, "GET", path, headers={"User-Agent": ua})


def test_tracking_pixel_and_click(srv, mx):
    html = ('<html><body><p><a href="https://shop.example/p?a=1&amp;b=2">buy</a> '
            '<a href="mailto:help@sender.test">mail</a></p></body></html>')
    r = send(srv, {"from": "a@sender.test", "to": "track@dest.test", "subject": "t",
                   "html": html, "text": "t", "track": {"opens": True, "clicks": True}})
    assert r.status == 200, r
    qid = r.json()["messages"][0]["id"]
    body, links, pixels = tracked_urls(srv, mx, "track@dest.test")
    assert len(links) == 1 and len(pixels) == 1, body
    assert 'href="mailto:help@sender.test"' in body  # only http(s) links are tracked
    assert body.index("<img") < body.index("</body>")
    px = get_path(srv, pixels[0])
    assert px.status == 200 and px.headers["content-type"] == "image/gif", px
    assert len(px.body) == 43 and px.body.startswith(b"GIF89a")
    assert "no-store" in px.headers["cache-control"]
    for _ in range(2):
        c = get_path(srv, links[0])
        assert c.status == 302, c
        assert c.headers["location"] == "https://shop.example/p?a=1&b=2"
    get_path(srv, pixels[0], ua="Barracuda Link Checker/1.0")
    evs = wait_events(srv, srv.key, f"message={qid}&type=opened,clicked", 2)

    def settled():
        e = {x["type"]: x for x in wait_events(srv, srv.key, f"message={qid}&type=opened,clicked", 2)}
        return e if e["clicked"]["detail"].get("count") == 2 and \
            e["opened"]["detail"].get("count") == 2 else None
    e = alive_poll(srv, settled, WAIT, what="open and click counts")
    assert len(evs) == 2
    assert e["opened"]["recipient"] == "track@dest.test"
    assert e["opened"]["detail"]["machine"] is False  # the first open was a person's
    assert e["clicked"]["detail"]["url"] == "https://shop.example/p?a=1&b=2"


def test_forged_tracking_tokens_are_404(srv, mx):
    r = send(srv, {"from": "a@sender.test", "to": "forge@dest.test", "subject": "t",
                   "html": '<a href="https://shop.example/">x</a>', "track": {"clicks": True}})
    assert r.status == 200, r
    _, links, pixels = tracked_urls(srv, mx, "forge@dest.test")
    assert pixels == [] and len(links) == 1
    payload, mac = links[0][len("/t/c/"):].split(".")
    # the same payload pointing elsewhere, with the old MAC: refused, no redirect
    evil = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        .replace(b"https://shop.example/", b"https://evil.example/")).decode().rstrip("=")
    for path in (f"/t/c/{evil}.{mac}", f"/t/c/{payload}.{mac[:-2]}", "/t/c/nothing",
                 f"/t/o/{payload}.{mac}"):
        g = get_path(srv, path)
        assert g.status == 404 and "location" not in g.headers, (path, g)


def test_tracking_splits_recipients(srv, mx):
    r = send(srv, {"from": "a@sender.test", "to": ["s1@dest.test", "s2@dest.test"],
                   "subject": "t", "html": "<p>hi</p>", "track": {"opens": True}})
    assert r.status == 200, r
    ids = [m["id"] for m in r.json()["messages"]]
    assert len(set(ids)) == 2  # each recipient its own message, its own pixel
    _, _, p1 = tracked_urls(srv, mx, "s1@dest.test")
    _, _, p2 = tracked_urls(srv, mx, "s2@dest.test")
    assert p1 != p2


def test_unsubscribe_is_accepted(srv, mx):
    """`unsubscribe` is a documented field: accepted (its List-Unsubscribe
    comes with the deliverability work), never a 400; not a boolean is."""
    r = send(srv, {"from": "a@sender.test", "to": "unsub@dest.test", "subject": "s",
                   "text": "t", "unsubscribe": True})
    assert r.status == 200, r
    delivered(srv, mx, "unsub@dest.test")
    r = send(srv, {"from": "a@sender.test", "to": "unsub@dest.test", "text": "t",
                   "unsubscribe": "yes"})
    assert r.status == 400 and r.error()["field"] == "unsubscribe", r


def test_quota_is_shared_with_smtp_and_answers_429(srv, mx):
    """SPEC 6: the API counts against the account's quota as SMTP does (per
    recipient, all of a message or none); a request of which only the
    quota refused everything is 429 with Retry-After, and nothing of it is
    queued or delivered."""
    srv.add_user("carol", domains=("carol.test",))
    rc, _, err = srv.cli("user", "set", "carol", "--quota-hour", "3")
    assert rc == 0, err
    key = create_key(srv, "carol")
    time.sleep(1.3)  # the server reads user set within a second
    r = send(srv, {"from": "c@carol.test", "to": ["q1@dest.test", "q2@dest.test"],
                   "subject": "two", "text": "x"}, key=key)
    assert r.status == 200, r.body
    r = send(srv, {"from": "c@carol.test", "to": ["q3@dest.test", "q4@dest.test"],
                   "subject": "two more", "text": "x"}, key=key)
    assert r.status == 429, r.body
    assert r.json()["error"]["code"] == "over_quota"
    assert 0 < int(r.headers["retry-after"]) <= 3600, r.headers
    for m in r.json()["messages"]:
        assert m["status"] == "refused" and m["id"] is None, m
        assert m["reason"].startswith("Quota exceeded: account carol may send 3 messages"), m
    # all of a message or none: the third recipient of three still fits
    r = send(srv, {"from": "c@carol.test", "to": ["q5@dest.test"], "subject": "one", "text": "x"},
             key=key)
    assert r.status == 200, r.body
    delivered(srv, mx, "q5@dest.test")
    with mx.lock:
        got = [rc_ for t in mx.messages for rc_ in t.rcpts]
    assert "q3@dest.test" not in got and "q4@dest.test" not in got, got


def test_paused_account_is_refused_with_the_reason(srv, mx):
    """A paused account (the reputation guard) sends nothing through the
    API either: 422, each recipient refused with the pause's reason."""
    srv.add_user("dora", domains=("dora.test",))
    key = create_key(srv, "dora")
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.data_dir, "posthorn.db"), timeout=10)
    with db:
        db.execute("UPDATE accounts SET paused_at = strftime('%s','now'),"
                   " paused_reason = 'bounce rate 7.2 % over 24h (threshold 5 %)'"
                   " WHERE name = 'dora'")
    db.close()
    srv.start()
    wait_http(srv)
    r = send(srv, {"from": "d@dora.test", "to": ["p1@dest.test"], "subject": "s", "text": "x"},
             key=key)
    assert r.status == 422, r.body
    [m] = r.json()["messages"]
    assert m["status"] == "refused" and "account paused" in m["reason"], m
    assert "bounce rate 7.2 %" in m["reason"], m


def test_dkim_line_of_api_mail_has_one_identity(server_factory):
    """docs/logging.md: the DKIM line of a message sent through the API is the message's
    (queue= alone); its event=queued line ties it to the request (http=)."""
    s = server_factory(start=False)
    rc, out, err = s.cli("dkim", "keygen", "sender.test", "--selector", "s1")
    assert rc == 0, err
    s.add_user("alice", domains=("sender.test",))
    s.start()
    wait_http(s)
    r = send(s, {"from": "a@sender.test", "to": ["b@dest.test"], "subject": "dkim",
                 "text": "signed"}, key=create_key(s, "alice"))
    assert r.status == 200, r.body
    qid = r.json()["messages"][0]["id"]
    line = helpers.wait_for(
        lambda: next((l for l in s.log().splitlines() if f"queue={qid} event=dkim " in l), None),
        what="the DKIM line")
    assert "result=signed domain=sender.test" in line, line
    assert set(helpers.identities(line)) == {"queue"}, line
    [queued] = [l for l in s.log().splitlines() if f"queue={qid} event=queued " in l]
    assert set(helpers.identities(queued)) == {"queue", "http"}, queued
    s.stop()
    helpers.check_identities(s.log())
