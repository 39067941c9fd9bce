"""GET /v1/stats against a real server: counts per day, hour and recipient
domain after SMTP acceptance and the first delivery attempt (the test
config's smarthost is a closed port: one deferral per recipient, the next
attempt an hour away), rates derived from the counts, the from/to window,
accounts, and every error."""
import time

import pytest

from conftest import Server
from eventsapi import ALICE, get, send, wait_events, with_keys
from httpapi import request

COUNTS = ["accepted", "delivered", "deferred", "bounced", "suppressed", "opened", "clicked",
          "complained"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory, cert):
    s = with_keys(Server(tmp_path_factory.mktemp("stats"), cert, relay={"retry": "1h"}).start())
    q1 = send(s, ["a@one.example", "b@one.example", "c@Two.example"])
    q2 = send(s, ["d@two.example"])
    q3 = send(s, ["e@three.example"], frm="alice@example.com", login=ALICE)
    for q, n in ((q1, 3), (q2, 1)):
        wait_events(s, s.key, f"message={q}", 2 * n)  # accepted, deferred
    wait_events(s, s.alice, f"message={q3}", 2)
    yield s
    s.stop()


def stats(srv, key, query=""):
    return get(srv, key, "/v1/stats" + (f"?{query}" if query else ""))["stats"]


def test_by_domain(srv):
    rows = stats(srv, srv.key, "group=domain")
    assert [r["domain"] for r in rows] == ["one.example", "two.example"]
    assert [r["accepted"] for r in rows] == [2, 2]
    for r in rows:
        assert set(r) == {"domain", "rates", *COUNTS}
        assert r["deferred"] == r["accepted"]
        assert all(r[c] == 0 for c in COUNTS[1:] if c != "deferred")
        assert r["rates"] == {"delivery": 0.0, "bounce": 0.0, "complaint": None, "open": None,
                              "click": None}


def test_by_day_and_hour_all_time(srv):
    today = time.strftime("%Y-%m-%d", time.gmtime())
    hour = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())
    assert stats(srv, srv.key) == stats(srv, srv.key, "group=day")
    day = stats(srv, srv.key, "group=day")
    assert [(r["day"], r["accepted"]) for r in day] == [(today, 4)]
    rows = stats(srv, srv.key, "group=hour")
    # The hour may have turned since the mail went in: sum them.
    assert all(r["hour"] <= hour for r in rows) and sum(r["accepted"] for r in rows) == 4
    assert stats(srv, srv.key, "group=tag") == []  # SMTP mail has no tags


def test_window(srv):
    assert stats(srv, srv.key, "from=2100-01-01") == []
    assert stats(srv, srv.key, "to=2000-01-01") == []
    now = int(time.time())
    # A bound inside an hour takes the whole hour.
    rows = stats(srv, srv.key, f"from={now}&to={now + 1}&group=domain")
    assert sum(r["accepted"] for r in rows) == 4


def test_accounts(srv):
    mine = stats(srv, srv.alice, "group=domain")
    assert [(r["domain"], r["accepted"]) for r in mine] == [("three.example", 1)]
    everyone = stats(srv, srv.admin, "group=domain")
    assert sum(r["accepted"] for r in everyone) == 5
    assert stats(srv, srv.admin, f"group=domain&account={ALICE}") == mine
    r = request(srv, "GET", "/v1/stats?account=default", key=srv.alice)
    assert r.status == 403 and r.error()["code"] == "forbidden"


@pytest.mark.parametrize("query,param", [("group=week", "group"), ("group=", "group"),
                                         ("from=soon", "from"), ("to=2026-13-01", "to"),
                                         ("from=2026-01-02&to=2026-01-01", "to"),
                                         ("account=a%20b", "account")])
def test_bad_parameters(srv, query, param):
    r = request(srv, "GET", f"/v1/stats?{query}", key=srv.key)
    assert r.status == 400, r
    assert r.error()["code"] == "invalid_parameter" and r.error()["parameter"] == param


def test_needs_a_key(srv):
    assert request(srv, "GET", "/v1/stats").status == 401
    assert request(srv, "POST", "/v1/stats", key=srv.key).status == 405
