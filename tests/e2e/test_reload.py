"""SIGHUP (docs/cli.md): what can change at run time is applied; every other
key that differs from the running configuration is named in a log line
`event=reload_needs_restart key=SECTION.KEY`; a file with errors changes
nothing."""
import re
import signal

import helpers
from helpers import RawSMTP


def hup(s, until):
    n = s.log().count("event=reload what=domains")
    s.proc.send_signal(signal.SIGHUP)
    helpers.wait_for(lambda: until(s.log()) or s.log().count("event=reload what=domains") > n,
                     timeout=10, what="the reload")


def restart_keys(log):
    return re.findall(r"event=reload_needs_restart key=(\S+)", log)


def connects(s):
    return s.log().count("event=connect ")


def test_restart_only_keys_are_named_and_reloadable_ones_applied(server_factory):
    s = server_factory(listeners={"mx": {}, "two": {}})
    base = connects(s) + 1  # the start-up probes' sessions, and this one
    with RawSMTP(s.port) as c:
        assert c.cmd("QUIT").code == 221
    helpers.wait_for(lambda: connects(s) == base, timeout=5, what="the connect line")
    s._relay["smarthost"] = "127.0.0.1:2"            # restart: [relay]
    s._server["hostname"] = "other.test"             # restart: [server]
    s.listeners["two"]["max_connections"] = "7"      # restart: a listener
    s.listeners["three"] = {"address": "127.0.0.1:3", "tls": "none", "auth": "off"}
    s._server["log_level"] = "warning"               # reloadable
    s._extra = "[domain.*]\nmax_connections = 3"     # reloadable
    s.write_conf()
    hup(s, lambda log: "relay.smarthost" in log)
    helpers.wait_for(lambda: len(restart_keys(s.log())) >= 4, timeout=5, what="all the keys")
    assert sorted(restart_keys(s.log())) == sorted(
        ["relay.smarthost", "server.hostname", "listener.two.max_connections",
         "listener.three"]), s.log()
    # log_level = warning applies at once: a new session logs nothing
    with RawSMTP(s.port) as c:
        assert c.cmd("QUIT").code == 221
    with RawSMTP(s.port_of("two")) as c:  # the listener still runs as it was
        assert c.cmd("QUIT").code == 221
    assert connects(s) == base, s.log()
    # back to info: applied, and the restart-only keys are still named
    s._server["log_level"] = "info"
    s.write_conf()
    before = len(restart_keys(s.log()))
    hup(s, lambda log: False)
    with RawSMTP(s.port) as c:
        assert c.cmd("QUIT").code == 221
    helpers.wait_for(lambda: connects(s) == base + 1, timeout=5, what="connect logged again")
    assert len(restart_keys(s.log())) == before + 4, s.log()


def test_unchanged_file_names_nothing(server_factory):
    s = server_factory()
    hup(s, lambda log: False)
    assert "event=reload what=domains" in s.log()
    assert restart_keys(s.log()) == [], s.log()


def test_file_with_errors_changes_nothing(server_factory):
    s = server_factory()
    s._server["log_level"] = "warning"
    s._relay["smarthost"] = "127.0.0.1:2"
    s._extra = "[nonsense]\nx = 1\n[listener.bad]\naddress = localhost:1"
    s.write_conf()
    s.proc.send_signal(signal.SIGHUP)
    helpers.wait_for(lambda: s.log().count("event=reload_error") == 2, timeout=10,
                     what="reload_error")
    assert restart_keys(s.log()) == []
    # one line per error, each FILE:LINE: message, no escaped newline
    lines = [l for l in s.log().splitlines() if "event=reload_error" in l]
    assert "\\x0a" not in "".join(lines), lines
    assert re.search(rf'error="{re.escape(s.conf)}:\d+: unknown section', lines[0]), lines
    assert re.search(rf"error=\"{re.escape(s.conf)}:\d+: .*'localhost' is not an IP address",
                     lines[1]), lines
    n = connects(s)
    with RawSMTP(s.port) as c:  # log_level stayed info
        assert c.cmd("QUIT").code == 221
    helpers.wait_for(lambda: connects(s) == n + 1, timeout=5, what="the connect line")
