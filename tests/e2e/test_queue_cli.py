"""`posthorn queue list` (mailq-style, filters, --json), `queue show --json`
and `stats --json` (recipients per recipient domain), with the JSON field
names checked against docs/cli.md."""
import json
import os
import re

import pytest

import helpers
import mx as mxlib
from mx import MXFarm, msg_bytes, wait_status

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "cli.md")


def documented_fields(heading):
    """The `field` names of the table under '### heading' in docs/cli.md."""
    with open(DOCS) as f:
        text = f.read()
    part = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", part, re.M))


def submit(port, frm, rcpts, subject):
    to = rcpts[0]
    return helpers.send_raw_message(port, frm, rcpts,
                                    msg_bytes(frm or "x@example.com", to, subject).decode())


@pytest.fixture
def queue(server_factory):
    """A server whose smarthost refuses connections and lets one message a
    day through: m1 is tried once (deferred), m2 and m3 wait (pending)."""
    s = server_factory(relay={"retry": "1h"}, extra="[domain.*]\nmax_rate = 1/d")
    m1 = submit(s.port, "a@example.com", ["x@one.test", "y@two.test"], "m1")
    wait_status(s, m1, "x@one.test", "deferred")
    wait_status(s, m1, "y@two.test", "deferred")
    m2 = submit(s.port, "B@Example.com", ["z@ONE.test"], "m2")
    m3 = submit(s.port, "", ["w@two.test"], "m3")
    return s, m1, m2, m3


def listing(s, *args):
    rc, out, err = s.cli("queue", "list", *args)
    assert rc == 0, (rc, err)
    return out


def blocks(text):
    """{id: (message line, [recipient lines])} and the totals line of a listing."""
    out, cur = {}, None
    lines = text.splitlines()
    assert lines[0].split() == ["QUEUE", "ID", "SIZE", "ARRIVAL", "SENDER", "/", "OPEN",
                                "RECIPIENTS"], lines[0]
    for line in lines[1:]:
        if re.match(r"^[0-9A-Z]{16} ", line):
            cur = line.split()[0]
            out[cur] = (line, [])
        elif line.startswith("    ") and cur:
            out[cur][1].append(line.strip())
    return out, lines[-1]


def test_mailq_style_listing(queue):
    s, m1, m2, m3 = queue
    text = listing(s)
    got, totals = blocks(text)
    assert list(got) == [m1, m2, m3], text  # arrival order
    line1, rcpts1 = got[m1]
    assert re.match(rf"^{m1} +\d+  \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ  <a@example.com>$", line1)
    assert len(rcpts1) == 4, rcpts1  # two recipients, each with its last reply
    assert re.match(r"^deferred +attempts=1 +next=\d{4}-\S+Z +<x@one.test>$", rcpts1[0]), rcpts1
    assert rcpts1[1].startswith("last reply: ") and "refused" in rcpts1[1], rcpts1
    assert re.match(r"^pending +attempts=0 +next=now +<z@ONE.test>$", got[m2][1][0]), got[m2]
    assert got[m3][0].endswith("<>"), got[m3]
    assert re.fullmatch(r"-- 3 messages, \d+ bytes, 4 open recipients \(2 pending, 2 deferred, 0 held\)",
                        totals), totals


@pytest.mark.parametrize("args,want", [
    (["--domain", "one.test"], {"m1": ["x@one.test"], "m2": ["z@ONE.test"]}),
    (["--domain", "TWO.TEST"], {"m1": ["y@two.test"], "m3": ["w@two.test"]}),
    (["--state", "pending"], {"m2": ["z@ONE.test"], "m3": ["w@two.test"]}),
    (["--state=deferred"], {"m1": ["x@one.test", "y@two.test"]}),
    (["--sender", "b@example.com"], {"m2": ["z@ONE.test"]}),
    (["--sender", "<>"], {"m3": ["w@two.test"]}),
    (["--sender", "a@example.com", "--state", "pending"], {}),
    (["--domain", "three.test"], {}),
])
def test_filters(queue, args, want):
    s, *ids = queue
    names = dict(zip(("m1", "m2", "m3"), ids))
    got = helpers.parse_queue_list(listing(s, "--json", *args))
    assert {qid: [r["address"] for r in m["recipients"]] for qid, m in got.items()} == \
        {names[k]: v for k, v in want.items()}
    text = listing(s, *args)
    n = sum(len(v) for v in want.values())
    assert f"-- {len(want)} message" in text.splitlines()[-1], text
    assert f"{n} open recipient" in text.splitlines()[-1], text


def test_list_json_fields_are_the_documented_ones(queue):
    s, m1, m2, m3 = queue
    got = helpers.parse_queue_list(listing(s, "--json"))
    msg = got[m1]
    assert set(msg) == documented_fields("queue list --json"), msg
    for r in msg["recipients"]:
        assert set(r) == documented_fields("recipient (queue list)"), r
        assert r["state"] == "deferred" and r["attempts"] == 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["next_attempt"]), r
        assert "refused" in r["last_reply"], r
    assert msg["sender"] == "a@example.com" and msg["account"] == "default"
    assert got[m3]["sender"] == ""
    r = got[m2]["recipients"][0]
    assert r["next_attempt"] is None and r["last_reply"] is None and r["attempts"] == 0, r


def test_show_json(queue):
    s, m1, m2, m3 = queue
    rc, out, err = s.cli("queue", "show", m1, "--json")
    assert rc == 0, err
    assert out.count("\n") == 1, out
    d = json.loads(out)
    assert set(d) == documented_fields("queue show --json"), d
    assert d["id"] == m1 and d["client_ip"] == "127.0.0.1" and d["helo"] == "client.test"
    assert d["body"] in ("7BIT", "8BITMIME") and d["smtputf8"] is False and d["ret"] is None
    assert "Subject: m1\n" in d["headers"] and "\r" not in d["headers"], d["headers"]
    assert d["headers_truncated"] is False
    assert [r["address"] for r in d["recipients"]] == ["x@one.test", "y@two.test"]
    for r in d["recipients"]:
        assert set(r) == documented_fields("recipient (queue show)"), r
    rc, out, err = s.cli("queue", "show", "--json", m1)  # options anywhere
    assert rc == 0 and json.loads(out)["id"] == m1


def test_usage_errors(queue):
    s, m1, m2, m3 = queue
    for args in (["list", "--state", "delivered"], ["list", "--domain"], ["list", "extra"],
                 ["show"], ["show", "not-an-id"], ["show", m1, m2], ["retry"],
                 ["retry", m1, "--all"], ["delete"]):
        rc, out, err = s.cli("queue", *args)
        assert rc == 2, (args, rc, err)
        assert out == "", (args, out)
        assert err.startswith("posthorn: "), (args, err)


# ---- stats ---------------------------------------------------------------------------

def test_stats_count_recipients_per_recipient_domain(server_factory, cert):
    """Through a smarthost that defers each recipient twice, then takes it:
    one accepted, one deferred and one delivered per recipient, under the
    recipient's domain (not the smarthost's)."""
    farm = MXFarm(cert)
    try:
        sink = farm.add("127.0.0.31", defer_first=2)
        s = server_factory(relay={"smarthost": f"127.0.0.31:{farm.port}", "retry": "1s",
                                  "smarthost_tls": "none"})
        qid = submit(s.port, "a@example.com", ["p@stats-a.test", "q@stats-b.test",
                                               "r@stats-b.test"], "stats")
        for to in ("p@stats-a.test", "q@stats-b.test", "r@stats-b.test"):
            wait_status(s, qid, to, "sent")
        attempts = [d for d in mxlib.deliveries(s, qid) if d["status"] == "deferred"]
        assert len(attempts) == 6, attempts  # two per recipient

        def stats():
            rc, out, err = s.cli("stats", "--json")
            assert rc == 0, err
            d = json.loads(out)
            return d if d["total"]["delivered"] == 3 else None
        d = helpers.wait_for(stats, timeout=10, what="counters written")
        assert set(d) == documented_fields("stats --json"), d
        assert set(d["total"]) == documented_fields("stats counts"), d
        assert d["domains"] == {
            "stats-a.test": {"accepted": 1, "delivered": 1, "deferred": 1, "bounced": 0,
                             "suppressed": 0},
            "stats-b.test": {"accepted": 2, "delivered": 2, "deferred": 2, "bounced": 0,
                             "suppressed": 0}}, d
        rc, out, err = s.cli("stats")
        assert out.splitlines()[0].split("\t") == ["DOMAIN", "accepted", "delivered",
                                                   "deferred", "bounced", "suppressed"]
        assert "stats-b.test\t2\t2\t2\t0\t0" in out.splitlines(), out
    finally:
        farm.stop()


def test_stats_of_an_unknown_account_is_an_error(server_factory):
    """docs/cli.md: an account that does not exist is a runtime error (exit 1), not an
    empty table; an existing one, and the built-in default, answer as usual."""
    s = server_factory(start=False)
    s.add_user()
    for args in (["stats", "--account", "nosuch"], ["stats", "--account", "nosuch", "--json"],
                 ["stats", "--since", "7d", "--account", "nosuch"]):
        rc, out, err = s.cli(*args)
        assert (rc, out, err) == (1, "", "posthorn: no such account 'nosuch'\n"), args
    for account in (helpers.USER, "default"):
        rc, out, err = s.cli("stats", "--account", account)
        assert rc == 0, (account, err)
        assert out.startswith("DOMAIN\taccepted\t"), out
        rc, out, err = s.cli("stats", "--account", account, "--json")
        assert rc == 0 and json.loads(out)["total"]["accepted"] == 0, (account, out, err)
        # the default 0.1% as written, without binary float noise (0.10000000000000001)
        assert '"max_complaint_rate":0.1,' in out, out


def test_stats_of_a_deleted_account_keep_its_counters(server_factory):
    """An account deleted after it sent: its counters are still shown (exit 0),
    with a note on stderr that it is gone; nothing is lost from the history."""
    s = server_factory(start=False)
    s.add_user()
    s.start()
    helpers.send_ok(s.port, f"me@{helpers.USER_DOMAIN}", ["gone@stats-del.test"],
                    helpers.message(frm=f"me@{helpers.USER_DOMAIN}", to="gone@stats-del.test"),
                    login=(helpers.USER, helpers.PASSWORD))

    def accepted():
        rc, out, err = s.cli("stats", "--account", helpers.USER, "--json")
        return rc == 0 and json.loads(out)["total"]["accepted"] == 1
    helpers.wait_for(accepted, timeout=10, what="the account's counters written")
    rc, _, err = s.cli("user", "del", helpers.USER)
    assert rc == 0, err
    rc, out, err = s.cli("stats", "--account", helpers.USER)
    assert rc == 0, err
    assert "stats-del.test\t1\t" in out, out
    assert err == (f"posthorn: account '{helpers.USER}' does not exist any more; these are its "
                   "counters from before it was deleted\n"), err


# ---- the control socket (src/ctl/ctl_cmd.c) -------------------------------------------

def control(s, line):
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10)
        c.connect(os.path.join(s.data_dir, "control.sock"))
        c.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = c.recv(256)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def test_control_requests_from_the_table(queue):
    s, m1, m2, m3 = queue
    assert control(s, "retry " + m1) == "ok 2"  # its two deferred recipients
    assert re.fullmatch(r"ok \d+", control(s, "retry all"))
    assert control(s, "forget " + m2) == "ok 1"
    assert control(s, "frobnicate") == "error unknown request"
    assert control(s, "retry") == "error bad argument for retry"
    assert control(s, "forget all") == "error bad argument for forget"
    assert control(s, "retry ../../x") == "error bad argument for retry"
    for req in ("retry " + m1, "frobnicate"):
        assert re.search(rf'event=control request="?{re.escape(req)}"? reply=', s.log()), req


def test_show_cuts_a_header_block_over_1_mib(server_factory):
    s = server_factory()
    filler = "".join(f"X-Filler-{i}: {'x' * 990}\r\n" for i in range(1200))  # ~1.2 MB
    qid = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"],
                                   f"Subject: big\r\n{filler}\r\nbody\r\n")
    rc, out, err = s.cli("queue", "show", qid, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["headers_truncated"] is True
    assert len(d["headers"].encode()) == 1024 * 1024 and "Subject: big" in d["headers"]
    rc, out, err = s.cli("queue", "show", qid)
    assert rc == 0, err
    assert out.endswith("\n[the header block goes on: cut at 1048576 bytes]\n"), out[-200:]
    rc, out, err = s.cli("queue", "show", qid)
    assert "X-Filler-1199" not in out
