"""Helpers for the end-to-end tests: a raw SMTP client, smtplib wrappers and
polling. The tests import this module directly (pytest puts tests/e2e on
sys.path)."""
import json
import re
import smtplib
import socket
import ssl
import time

TIMEOUT = 20.0  # generous: the ASan build is 2-3x slower
QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as <?([A-Za-z0-9._-]+)>?")
USER = "alice"
PASSWORD = "correct horse battery staple"
USER_DOMAIN = "example.com"


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines  # text after "NNN-" / "NNN "

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return f"Reply({self.code}, {self.lines!r})"


class RawSMTP:
    """A byte-exact SMTP client over a plain or TLS socket."""

    def __init__(self, port, host="127.0.0.1", source=None, tls=False, timeout=TIMEOUT,
                 read_greeting=True):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.greeting = self.reply() if read_greeting else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed (pending {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            assert len(line) >= 3 and line[:3].isdigit(), f"bad reply line {line!r}"
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(int(line[:3]), lines)
            assert line[3] == "-", f"bad reply line {line!r}"

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def starttls(self):
        r = self.cmd("STARTTLS")
        assert r.code == 220, r
        assert not self.buf
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")
        return r

    def closed(self, timeout=TIMEOUT):
        """True when the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLError:
            return True

    def ehlo(self, name="client.test"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, r
        return r


def ehlo_keywords(reply):
    return [l.split(" ", 1)[0].upper() for l in reply.lines[1:]]


def queued_id(text):
    """The queue ID from a 250 reply text ("2.0.0 Ok: queued as ID")."""
    if isinstance(text, bytes):
        text = text.decode()
    m = QUEUED_RE.match(text)
    assert m, f"not a queued reply: {text!r}"
    return m.group(1)


def message(subject="hello", frm="sender@example.com", to="rcpt@example.net", extra="",
            body="Hello there.\r\n"):
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra}\r\n{body}")


def smtp(port, timeout=TIMEOUT):
    s = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    return s


def send_ok(port, frm, rcpts, data, mail_options=(), login=None):
    """MAIL/RCPT/DATA over smtplib (AUTH first with login=(user, password)),
    each answered 2xx; returns the final reply's text (bytes)."""
    with smtp(port) as s:
        s.ehlo("client.test")
        if login:
            code, text = s.login(*login)
            assert code == 235, (code, text)
        code, text = s.mail(frm, list(mail_options))
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)
        return text


def send_raw_message(port, frm, rcpts, data, **kw):
    """send_ok(); returns the queue ID."""
    return queued_id(send_ok(port, frm, rcpts, data, **kw))


def parse_queue_list(stdout):
    """{id: message} from `queue list --json` (one JSON object per line)."""
    out = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        assert isinstance(m.get("recipients"), list) and m["recipients"], line
        assert isinstance(m.get("size"), int), line
        out[m["id"]] = m
    return out


# ---- log identities (docs/logging.md) ----

IDENTITY = re.compile(r"(?:^|\s)(session|conn|queue|http|listener)=(\S+)")
ID16 = re.compile(r"[0-9A-HJ-NP-TV-Y]{16}")


def identities(line):
    return {k: v for k, v in IDENTITY.findall(line)}


def check_identities(log):
    """Every line of a server's log: no session=NOQUEUE, at most one
    identity (a queued line also names its session, or its HTTP request;
    a session's lines may name its listener), IDs well-formed."""
    lines = [l for l in log.splitlines() if " level=" in l]
    assert lines
    for l in lines:
        assert "NOQUEUE" not in l, l
        ids = identities(l)
        own = set(ids) - {"listener"}  # a session's lines also name its listener
        if "event=queued " in l or "event=queue_failed" in l:
            assert own in ({"queue", "session"}, {"queue", "http"}), l
        else:
            assert len(own) <= 1, l
        for k in ("session", "conn", "queue", "http"):
            if k in ids:
                assert ID16.fullmatch(ids[k]), l
    return lines
