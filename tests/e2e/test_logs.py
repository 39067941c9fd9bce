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
    helpers.check_identities(log)  # one identity each, no session=NOQUEUE
    for l in lines:
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


# ---- [server] log, log_format, log_level (docs/logging.md) ----------------------------

import json
import os
import signal
import socket
import stat
import subprocess
import textwrap
import threading

import pytest

KV = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def kv_fields(text_line):
    """The key=value fields of a text log line, values unquoted as log_q quotes."""
    out = {}
    for k, v in KV.findall(text_line.split(" ", 1)[1]):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r'\\x([0-9a-fA-F]{2})', lambda m: chr(int(m.group(1), 16)),
                       re.sub(r'\\(["\\])', r"\1", v[1:-1]))
        out[k] = v
    return out


def session_scenario(s):
    """Connect, fail AUTH once, queue a message, quit: a run of info lines."""
    s.add_user("logger", SECRET, ("example.com",))
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + plain("logger", "wrong")).code == 535
        assert c.cmd("MAIL FROM:<x@example.com>").code == 250
        assert c.cmd('RCPT TO:<a@example.net>').code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("json").encode() + b".\r\n")
        qid = queued_id(c.reply().lines[0])
        assert c.cmd("QUIT").code == 221
    helpers.wait_for(lambda: s.log().count("event=disconnect") or '"disconnect"' in s.log(),
                     timeout=10, what="the disconnect line")
    return qid


def events(lines):
    """{event: set of field names} of parsed lines."""
    out = {}
    for d in lines:
        out.setdefault(d.get("event"), set()).update(k for k in d if k not in ("time", "level"))
    return out


def test_json_lines_carry_the_fields_of_text_lines(server_factory):
    text = server_factory()
    session_scenario(text)
    as_text = [kv_fields(l) for l in text.log().splitlines() if " level=" in l]
    js = server_factory(server={"log_format": "json"})
    qid = session_scenario(js)
    raw = [l for l in js.log().splitlines() if l.strip()]
    assert raw and all(l.startswith('{"time":"') for l in raw), raw[:3]
    as_json = [json.loads(l) for l in raw]
    for d in as_json:
        assert set(d) >= {"time", "level", "event"}, d
        assert d["level"] in ("debug", "info", "warning", "error"), d
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["time"]), d
        # the identity (session=, queue=, listener=, ...) is the text line's, below
        assert all(isinstance(v, str) for v in d.values()), d
    t, j = events(as_text), events(as_json)
    for ev in ("connect", "auth", "queued", "disconnect", "started"):
        assert ev in j and t[ev] == j[ev], (ev, t.get(ev), j.get(ev))
    queued = [d for d in as_json if d.get("event") == "queued"]
    assert queued[0]["queue"] == qid and queued[0]["from"] == "<x@example.com>", queued
    assert SECRET not in js.log()


def change_restart_key(s, port="2626"):
    """A warning-level line: SIGHUP with a key changed that needs a restart."""
    s._relay["mx_port"] = port
    s.write_conf()
    s.proc.send_signal(signal.SIGHUP)


def test_log_level_filters_and_sighup_applies_it(server_factory):
    s = server_factory(server={"log_level": "warning"})
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("QUIT").code == 221
    change_restart_key(s)
    helpers.wait_for(lambda: "reload_needs_restart" in s.log(), timeout=10,
                     what="the reload warning")
    lines = [l for l in s.log().splitlines() if l.strip()]
    assert lines and all(" level=warning " in l or " level=error " in l for l in lines), lines
    # debug, applied by SIGHUP: session state changes appear
    s._server["log_level"] = "debug"
    s.write_conf()
    s.proc.send_signal(signal.SIGHUP)
    helpers.wait_for(lambda: "event=reload what=domains" in s.log(), timeout=10,
                     what="the reload line at debug level")
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("QUIT").code == 221
    helpers.wait_for(lambda: " level=debug " in s.log() and "event=state" in s.log(),
                     timeout=10, what="debug lines")


def test_priority_prefix_only_when_stderr_is_the_journal(server_factory, monkeypatch):
    # systemd.exec(5): JOURNAL_STREAM holds "DEV:INODE" of the stream it gave
    # as stderr; the server's stderr here is its log file.
    s = server_factory(start=False)
    open(s.log_path, "ab").close()
    st = os.stat(s.log_path)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    s._relay["mx_port"] = "2626"
    s.write_conf()
    s.start()
    change_restart_key(s, "2627")
    helpers.wait_for(lambda: "reload_needs_restart" in s.log(), timeout=10, what="a warning")
    lines = [l for l in s.log().splitlines() if l.strip()]
    for l in lines:
        m = re.match(r"<(\d)>\S+ level=(\w+) ", l)
        assert m, f"no priority prefix: {l!r}"
        want = {"debug": "7", "info": "6", "warning": "4", "error": "3"}[m.group(2)]
        assert m.group(1) == want, l
    assert any(l.startswith("<4>") for l in lines) and any(l.startswith("<6>") for l in lines)
    s.stop()
    # another stream's numbers: not the journal, no prefix
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
    before = len(s.log())
    s.restart()
    s.stop()
    later = [l for l in s.log()[before:].splitlines() if l.strip()]
    assert later and not any(l.startswith("<") for l in later), later


# syslog(3) always writes to /dev/log. The test gives the server a private
# mount namespace where /dev is an overlay holding a /dev/log that points at
# the test's own datagram socket; the machine's /dev is not touched. Needs
# root (unshare, mount); skipped otherwise.

def syslog_wrapper(tmp_path):
    sock = tmp_path / "log.sock"
    up, work = tmp_path / "up", tmp_path / "work"
    up.mkdir()
    work.mkdir()
    wrapper = tmp_path / "posthorn-syslog"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        exec unshare --mount --propagation private /bin/sh -c '
          mount -t overlay overlay -o lowerdir=/dev,upperdir={up},workdir={work} /dev &&
          ln -sf {sock} /dev/log && exec "$0" "$@"' {posthorn_bin_path()} "$@"
        """))
    wrapper.chmod(0o755)
    return str(wrapper), str(sock)


def posthorn_bin_path():
    from conftest import posthorn_bin
    return posthorn_bin()


class SyslogReceiver:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.lines = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                self.lines.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def syslog(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("syslog test needs root (a private mount namespace for /dev/log)")
    wrapper, sock = syslog_wrapper(tmp_path)
    probe = subprocess.run([wrapper, "--version"], capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip(f"cannot give the server its own /dev/log here: {probe.stderr.strip()}")
    rx = SyslogReceiver(sock)
    yield wrapper, rx
    rx.close()


SYSLOG_RE = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d posthorn\[(\d+)\]: (.*)$")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_syslog_facility_mail_with_priorities(server_factory, syslog, fmt):
    wrapper, rx = syslog
    s = server_factory(start=False, server={"log": "syslog", "log_format": fmt})
    s.bin = wrapper
    s.start()
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("QUIT").code == 221
    change_restart_key(s)
    helpers.wait_for(lambda: any("reload_needs_restart" in l for l in rx.lines), timeout=10,
                     what="the warning in syslog")
    helpers.wait_for(lambda: any("connect" in l for l in rx.lines), timeout=10,
                     what="the connect line in syslog")
    got = {}
    for line in rx.lines:
        m = SYSLOG_RE.match(line)
        assert m, f"not a syslog line: {line!r}"
        assert int(m.group(2)) == s.proc.pid
        fac, prio = divmod(int(m.group(1)), 8)
        assert fac == 2, line  # LOG_MAIL
        body = m.group(3)
        if fmt == "json":
            d = json.loads(body)
            level, event = d["level"], d["event"]
        else:
            assert "level=" not in body and not re.match(r"\d{4}-", body), body
            level, event = None, re.search(r"event=(\S+)", body).group(1)
        got[event] = (prio, level)
    assert got["started"][0] == 6 and got["reload_needs_restart"][0] == 4, got
    if fmt == "json":
        assert got["started"][1] == "info" and got["reload_needs_restart"][1] == "warning"
    s.stop()
    assert "event=" not in s.log() and '"event"' not in s.log(), s.log()
