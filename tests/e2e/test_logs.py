"""SPEC §3 / DESIGN log/: key=value lines on stderr that always carry the
session or queue ID; connect, auth, reject, queued and disconnect events;
never a password."""
import base64
import re

import helpers
from helpers import RawSMTP, queued_id, message

SECRET = "Sup3r-Secret-Pa55word"


def plain(user, pw):
    return base64.b64encode(f"\0{user}\0{pw}".encode()).decode()


def test_log_lines(server_factory):
    s = server_factory()
    s.add_user("logger", SECRET, ("example.com",))
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + plain("logger", SECRET + "x")).code == 535
        assert c.cmd("AUTH PLAIN " + plain("logger", SECRET)).code == 235
        r = c.cmd("MAIL FROM:<x@not-mine.test>")
        assert r.code == 553, r
        assert c.cmd("MAIL FROM:<x@example.com>").code == 250
        assert c.cmd("RCPT TO:<a@example.net>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        body = message("logged")
        c.send(body.encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
        assert c.cmd("QUIT").code == 221
    # AUTH LOGIN too, so both encodings of the password go over the wire
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("AUTH LOGIN " + base64.b64encode(b"logger").decode()).code == 334
        assert c.cmd(base64.b64encode(SECRET.encode()).decode()).code == 235

    def has_disconnects():
        return len(re.findall(r"disconnect", s.log())) >= 2

    helpers.wait_for(has_disconnects, timeout=5, what="disconnect lines")
    log = s.log()
    lines = [l for l in log.splitlines() if l.strip()]
    assert lines
    for l in lines:
        assert re.search(r"\b(session|queue|listener)=\S+", l), \
            f"line without session=, queue= or listener=: {l!r}"
        assert re.search(r"\b\w+=\S", l), f"not key=value: {l!r}"
    for secret in (SECRET, base64.b64encode(SECRET.encode()).decode(),
                   plain("logger", SECRET), plain("logger", SECRET + "x")):
        assert secret not in log, "password (or its encoding) in the log"

    def find(*words):
        return [l for l in lines if all(w in l for w in words)]

    sess = re.search(r"session=(\S+)", find("connect", "127.0.0.1")[-1]).group(1)
    assert find("connect", "ip=127.0.0.1"), log
    assert find("auth", "logger", "fail"), log
    assert find("auth", "logger", "ok") or find("auth", "logger", "success"), log
    rej = find("reject", "not-mine.test") or find("reject", "553")
    assert rej and re.search(r"(reason|reply)=", rej[0]), log
    q = find(f"queue={qid}")
    assert q, log
    assert any(re.search(r"\bsize=\d+", l) and re.search(r"\brcpts=2\b", l) for l in q), q
    assert find("disconnect"), log
    assert sess
