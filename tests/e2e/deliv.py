"""Helpers of the deliverability tests (test_suppress_rcpt, test_quota,
test_bounce_loop, test_reputation): an SMTP transaction whose every reply
is kept, VERP addresses computed here from the key in the data directory
(the documented format, so a mismatch in either shows), and bounce and
complaint reports as other hosts write them."""
import base64
import hashlib
import hmac
import os
import sqlite3
import time

import helpers

B32 = "abcdefghijklmnopqrstuvwxyz234567"
ID_ALPHA = "0123456789ABCDEFGHJKLMNPQRSTVWXY"


def transaction(port, frm, rcpts, data=None, login=None, host="127.0.0.1", pipelined=False):
    """MAIL, RCPTs (one write when pipelined) and, if data is given and a
    RCPT was taken, DATA. Returns (mail reply, [rcpt replies], data reply or None)."""
    with helpers.RawSMTP(port, host=host) as c:
        c.ehlo()
        if login:
            tok = base64.b64encode(f"\0{login[0]}\0{login[1]}".encode()).decode()
            r = c.cmd("AUTH PLAIN " + tok)
            assert r.code == 235, r
        if pipelined:
            c.send(f"MAIL FROM:<{frm}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts))
            mail = c.reply()
            replies = [c.reply() for _ in rcpts]
        else:
            mail = c.cmd(f"MAIL FROM:<{frm}>")
            replies = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts] if mail.code == 250 else []
        dr = None
        if data is not None and any(r.code == 250 for r in replies):
            r = c.cmd("DATA")
            assert r.code == 354, r
            c.send(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
            dr = c.reply()
        c.cmd("QUIT")
        return mail, replies, dr


def verp_key(srv):
    with open(os.path.join(srv.data_dir, "verp.key"), "rb") as f:
        key = f.read()
    assert len(key) == 32
    return key


def verp_hash(key, qid):
    mac = hmac.new(key, qid.upper().encode(), hashlib.sha256).digest()
    bits = int.from_bytes(mac[:8], "big") >> 4
    return "".join(B32[(bits >> (5 * (11 - i))) & 31] for i in range(12))


def verp_address(key, qid, domain):
    return f"bounces+{qid}={verp_hash(key, qid)}@{domain}"


def old_id(days):
    """A well-formed queue ID made `days` ago."""
    ms = int((time.time() - days * 86400) * 1000)
    head = ""
    for _ in range(9):
        head = ID_ALPHA[ms & 31] + head
        ms >>= 5
    return head + "0000001"


def dsn(verp, rcpt, status="5.1.1", diag=None, action="failed"):
    """An RFC 3464 report from a remote host, to a VERP return path."""
    diag = diag or f"smtp; 550 {status} <{rcpt}>: Recipient address rejected: User unknown"
    return (f"From: MAILER-DAEMON@mx.remote.test\r\nTo: <{verp}>\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\r\n"
            f"\r\n--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered."
            f"\r\n\r\n--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.remote.test\r\n\r\nFinal-Recipient: rfc822; {rcpt}\r\n"
            f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diag}\r\n\r\n"
            f"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: <{rcpt}>\r\n"
            f"Subject: hello\r\n\r\n--BB--\r\n").encode()


def arf(verp, rcpt, feedback_type="abuse"):
    """An RFC 5965 complaint report from a feedback loop."""
    return (f"From: fbl@isp.test\r\nTo: <{verp}>\r\nSubject: FW: complaint\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=\"FF\"\r\n"
            f"\r\n--FF\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\r\n"
            f"--FF\r\nContent-Type: message/feedback-report\r\n\r\n"
            f"Feedback-Type: {feedback_type}\r\nUser-Agent: TestFBL/1.0\r\nVersion: 1\r\n"
            f"Original-Rcpt-To: <{rcpt}>\r\n\r\n"
            f"--FF\r\nContent-Type: message/rfc822\r\n\r\nFrom: <shop@sender.test>\r\n"
            f"To: <{rcpt}>\r\nSubject: deals\r\n\r\nbuy now\r\n--FF--\r\n").encode()


def db(srv):
    return sqlite3.connect(os.path.join(srv.data_dir, "posthorn.db"), timeout=10)


def suppressions(srv, account="default"):
    """{address: reason} from `posthorn suppress list`."""
    rc, out, err = srv.cli("suppress", "list", "--account", account)
    assert rc == 0, err
    return {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines() if line}


def event_lines(srv, event):
    return [line for line in srv.log().splitlines() if f" event={event} " in line]
