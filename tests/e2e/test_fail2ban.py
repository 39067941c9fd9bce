"""contrib/fail2ban: the filter matches Posthorn's AUTH-failure line in every
form it is written (text, JSON; stderr, syslog, journal) and takes the
client's address from the client= field only; the jail example passes
fail2ban's own configuration test. Checked with Debian's fail2ban
(fail2ban-regex, fail2ban-client)."""
import base64
import datetime
import os
import re
import shutil
import subprocess

import pytest

import helpers
from helpers import RawSMTP

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FILTER = os.path.join(ROOT, "contrib", "fail2ban", "filter.d", "posthorn.conf")
JAIL = os.path.join(ROOT, "contrib", "fail2ban", "jail.d", "posthorn.conf")

pytestmark = pytest.mark.skipif(not shutil.which("fail2ban-regex"),
                                reason="Debian's fail2ban is not installed (scripts/deps.sh)")


def regex(log_path):
    """{address: count} that fail2ban-regex finds in the file with the filter."""
    p = subprocess.run(["fail2ban-regex", "-v", log_path, FILTER], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    found = {}
    for m in re.finditer(r"^\|\s+(\S+)\s+\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", p.stdout,
                         re.M):
        found[m.group(1)] = found.get(m.group(1), 0) + 1
    matched = int(re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", p.stdout,
                            re.M).group(1))
    assert matched == sum(found.values()), p.stdout
    return found


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def fixture_lines():
    """The AUTH-failure line in the exact form Posthorn logs it (docs/logging.md),
    as each destination writes it, and lines that must not match."""
    t = now_utc()
    iso = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    sysdate = t.astimezone().strftime("%b %e %H:%M:%S")
    fail = ('session=1L94W0F3400051K5 event=auth result=fail client={ip} listener=submission '
            'user="{user}" failures={n}')
    js = ('{{"time":"{iso}","level":"info","session":"1L94W0F3400051K5","event":"auth",'
          '"result":"fail","client":"{ip}","listener":"submission","user":"{user}",'
          '"failures":"{n}"}}')
    return [
        # stderr / a file, text and JSON
        f"{iso} level=info " + fail.format(ip="192.0.2.1", user="bob smith", n=1),
        f"{iso} level=info " + fail.format(ip="2001:db8::1", user="alice", n=2),
        js.format(iso=iso, ip="192.0.2.2", user="bob", n=1),
        # stderr under systemd: the priority prefix (as fail2ban sees a file of it)
        f"<6>{iso} level=info " + fail.format(ip="192.0.2.3", user="x", n=1),
        # syslog files: no time or level of our own in text
        f"{sysdate} mail posthorn[4242]: " + fail.format(ip="192.0.2.4", user="x", n=1),
        f"{sysdate} mail posthorn[4242]: " + js.format(iso=iso, ip="192.0.2.5", user="y", n=3),
        # the journal, as fail2ban's systemd backend formats an entry
        f"{sysdate} mail posthorn[4242]: {iso} level=info " +
        fail.format(ip="192.0.2.6", user="x", n=4),
        # a user name that imitates the fields is not an address source
        f"{iso} level=info " + fail.format(ip="192.0.2.7", user="x client=10.6.6.6 listener=a",
                                           n=1),
        # not failures
        f"{iso} level=info session=1L94W0F3400051K5 event=auth result=ok user=alice",
        f"{iso} level=info session=1L94W0F3400051K5 event=connect listener=sub "
        f"ip=10.7.7.7 trusted=0",
        f"{iso} level=info session=1L94W0F3400051K5 event=reject client=10.8.8.8 "
        f"reply=\"event=auth result=fail client=10.9.9.9\"",
    ]


def test_filter_matches_every_form_of_the_line(tmp_path):
    log = tmp_path / "posthorn.log"
    log.write_text("\n".join(fixture_lines()) + "\n")
    found = regex(str(log))
    assert found == {"192.0.2.1": 1, "2001:db8::1": 1, "192.0.2.2": 1, "192.0.2.3": 1,
                     "192.0.2.4": 1, "192.0.2.5": 1, "192.0.2.6": 1, "192.0.2.7": 1}, found


def test_jail_example_passes_fail2bans_configuration_test(tmp_path):
    cfg = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", cfg)
    for f in os.listdir(cfg / "jail.d"):  # the distribution's own jails want their logs
        os.unlink(cfg / "jail.d" / f)
    shutil.copy(FILTER, cfg / "filter.d" / "posthorn.conf")
    shutil.copy(JAIL, cfg / "jail.d" / "posthorn.conf")
    p = subprocess.run(["fail2ban-client", "-c", str(cfg), "-t"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "configuration test is successful" in p.stdout + p.stderr, \
        p.stdout + p.stderr
    p = subprocess.run(["fail2ban-client", "-c", str(cfg), "-d"], capture_output=True,
                       text=True, timeout=120)
    assert "['add', 'posthorn', 'systemd']" in p.stdout, p.stdout


def fail_auth(s, times):
    for i in range(times):
        with RawSMTP(s.port) as c:
            c.ehlo()
            creds = base64.b64encode(f"\0nobody{i}\0wrong".encode()).decode()
            assert c.cmd("AUTH PLAIN " + creds).code == 535


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_filter_on_a_live_servers_log(server_factory, tmp_path, fmt):
    """The line as the running server writes it (with client= and
    listener=, which the filter needs) matches the filter."""
    s = server_factory(server={"log_format": fmt})
    fail_auth(s, 3)
    want = "event=auth result=fail" if fmt == "text" else '"event":"auth","result":"fail"'
    helpers.wait_for(lambda: s.log().count(want) == 3, timeout=10, what="3 AUTH failures")
    lines = [l for l in s.log().splitlines() if want in l]
    assert all(("client=" in l) if fmt == "text" else ('"client":' in l) for l in lines), lines
    log = tmp_path / "live.log"
    log.write_text(s.log())
    assert regex(str(log)) == {"127.0.0.1": 3}
