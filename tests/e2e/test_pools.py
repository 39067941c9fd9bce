"""Source address pools: [pool.NAME] source_addresses and ehlo_names,
bound to a destination domain ([domain.X] pool) or to an account (posthorn
user set NAME --pool NAME). The fake MX checks the address each connection
comes from and the EHLO name it says (Linux routes all of 127.0.0.0/8 to
lo, so 127.0.0.2 and up can be bound without any setup)."""
import smtplib
import time

import pytest

import helpers
from mx import (WAIT, Zone, alive_poll, dns, farm, msg_bytes, mxs, start, submit,  # noqa: F401
                wait_msgs, wait_status)

SENDER_IP = "127.0.0.11"
FROM = "alice@sender.test"
DOMAINS = {
    "pool.test": ("mx.pool.test", "127.0.0.81"),
    "dead.pool.test": ("mx.dead.pool.test", "127.0.0.82"),
    "acct.test": ("mx.acct.test", "127.0.0.83"),
}
POOLS = """
[pool.p]
source_addresses = 127.0.0.2, 127.0.0.3
ehlo_names = a.pool.test, b.pool.test

[pool.dead]
source_addresses = 192.0.2.1, 127.0.0.4
ehlo_names = dead.pool.test, c.pool.test

[pool.q]
source_addresses = 127.0.0.5
ehlo_names = q.pool.test

[domain.pool.test]
pool = p
max_messages_per_connection = 1

[domain.dead.pool.test]
pool = dead
max_messages_per_connection = 1
"""


def build_zone():
    z = Zone().mx("sender.test", "mx.sender.test").host("mx.sender.test", SENDER_IP)
    for domain, (host, ip) in DOMAINS.items():
        z.mx(domain, host).host(host, ip)
    return z


def sources(mx):
    with mx.lock:
        return [(t.peer, t.helo) for t in mx.messages]


def test_domain_pool_binds_each_address_in_turn(start, mxs):
    host, ip = DOMAINS["pool.test"]
    mx = mxs(ip)
    srv = start(extra=POOLS)
    for i in range(4):
        to = f"r{i}@pool.test"
        submit(srv, FROM, [to], msg_bytes(FROM, to, f"pool {i}"))
    wait_msgs(mx, 4, srv)
    seen = sources(mx)
    assert set(seen) == {("127.0.0.2", "a.pool.test"), ("127.0.0.3", "b.pool.test")}, seen


def test_a_dead_address_is_skipped_with_a_log_line(start, mxs):
    host, ip = DOMAINS["dead.pool.test"]
    mx = mxs(ip)
    srv = start(extra=POOLS)
    for i in range(2):
        to = f"r{i}@dead.pool.test"
        submit(srv, FROM, [to], msg_bytes(FROM, to, f"dead {i}"))
    wait_msgs(mx, 2, srv)
    assert set(sources(mx)) == {("127.0.0.4", "c.pool.test")}
    assert "event=source_address_skipped pool=dead src=192.0.2.1" in srv.log()


def send_as(srv, user, password, to, subject):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=helpers.TIMEOUT) as s:
        s.ehlo("client.test")
        s.login(user, password)
        s.sendmail(f"{user}@acct.test", [to], msg_bytes(f"{user}@acct.test", to, subject))


def test_account_pool_is_used_for_its_mail_only(start, mxs):
    host, ip = DOMAINS["acct.test"]
    mx = mxs(ip)
    srv = start(extra=POOLS)
    srv.add_user("carol", "carol-password", domains=("acct.test",))
    rc, out, err = srv.cli("user", "set", "carol", "--pool", "q")
    assert rc == 0, err
    time.sleep(1.5)  # a running server sees the binding within a second
    send_as(srv, "carol", "carol-password", "x@acct.test", "from carol")
    wait_msgs(mx, 1, srv)
    submit(srv, FROM, ["y@acct.test"], msg_bytes(FROM, "y@acct.test", "from default"))
    wait_msgs(mx, 2, srv)
    by_subject = {t.header("Subject"): (t.peer, t.helo) for t in mx.messages}
    assert by_subject["from carol"] == ("127.0.0.5", "q.pool.test"), by_subject
    assert by_subject["from default"] == ("127.0.0.1", "relay.test"), by_subject


def test_user_set_checks_the_pool_exists(start):
    srv = start(extra=POOLS)
    srv.add_user("dan", "dan-password", domains=("acct.test",))
    rc, out, err = srv.cli("user", "set", "dan", "--pool", "nope")
    assert rc == 1 and "no section [pool.nope]" in err, (rc, err)
    rc, out, err = srv.cli("user", "set", "nobody", "--pool", "q")
    assert rc == 1 and "no account 'nobody'" in err, (rc, err)
    rc, out, err = srv.cli("user", "set", "dan")
    assert rc == 2, (rc, err)


def test_config_errors_name_the_line(server_factory, tmp_path):
    srv = server_factory(start=False, extra="[pool.bad]\nsource_addresses = 10.0.0.0/8\n"
                                             "ehlo_names = x.test\n[domain.z.test]\npool = none\n")
    rc, out, err = srv.cli("check-config")
    assert rc == 2, err
    assert "'10.0.0.0/8' is not an IP address" in err, err
    assert "pool in [domain.z.test]: no section [pool.none]" in err, err
