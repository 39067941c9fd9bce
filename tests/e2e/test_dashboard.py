"""The dashboard (SPEC 7, docs/dashboard.md) in a real browser.

One `posthorn serve` for the module, with a test DNS and fake MX peers
(tests/e2e/mx.py): two accounts send mail over SMTP (delivered, bounced,
deferred for ever), then tests/browser/dashboard.mjs drives Debian's
headless Chromium through playwright-core over every page, once, and each
of its cases becomes a test here. Screenshots go to
BUILD/e2e-dashboard/screenshots (printed at the end).

The HTTP side that needs no browser (headers, the CSP, the embedded files,
GET /v1/dkim) is checked directly with http.client.
"""
import json
import os
import shutil
import smtplib
import subprocess
import threading
import time

import pytest

import helpers
import httpapi
from conftest import Server, free_port
from mx import Zone, dns, farm, poll  # noqa: F401 (fixtures)

SENDER_IP = "127.0.0.41"  # MX of shop.test and other.test: receives the DSNs
OK_IP, BAD_IP, SLOW_IP = "127.0.0.42", "127.0.0.43", "127.0.0.44"
PASSWORD = "dashboard secret 1"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROWSER = os.path.join(ROOT, "tests", "browser")
DELIVERY_WAIT = 10  # for the delivered and bounced events of mail the fake MXs have seen
NODE_TIMEOUT = 240  # the whole browser run; it takes about a minute
CSP_NEEDS = ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
             "object-src 'none'", "base-uri 'none'")


def build_zone():
    z = Zone()
    for d in ("shop.test", "other.test"):
        z.mx(d, f"mx.{d}", 10).host(f"mx.{d}", SENDER_IP)
    for d, ip in (("ok.test", OK_IP), ("bad.test", BAD_IP), ("slow.test", SLOW_IP)):
        z.mx(d, f"mx.{d}", 10).host(f"mx.{d}", ip)
    return z


def out_dir():
    """BUILD/e2e-dashboard, BUILD being where the binary under test is."""
    b = os.environ.get("POSTHORN_BIN") or os.path.join(ROOT, "build", "posthorn")
    d = os.path.join(os.path.dirname(os.path.abspath(b)), "e2e-dashboard")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def send(srv, user, frm, rcpts, subject):
    """One message over SMTP, authenticated as user (its account); the queue ID."""
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=helpers.TIMEOUT) as s:
        s.ehlo("client.test")
        s.login(user, PASSWORD)
        code, text = s.mail(frm)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (code, text)
        code, text = s.data(helpers.message(subject, frm, rcpts[0]).encode())
        assert code == 250, (code, text)
        return helpers.queued_id(text)


def delivery_events(srv, key):
    """Waits for the delivered and bounced events of the mail the fake MXs
    have seen (the scheduler records them: docs/events.md)."""
    def seen():
        r = httpapi.request(srv, "GET", "/v1/events?type=delivered,bounced", key=key)
        return r.status == 200 and len(r.json()["events"]) >= 2
    poll(seen, timeout=DELIVERY_WAIT, what="delivered and bounced events")
    return True


def dkim_selector(srv, domain):
    rc, out, err = srv.cli("dkim", "keygen", domain)
    assert rc == 0, err
    return out.split("._domainkey.")[0]


def stats(srv, key):
    r = httpapi.request(srv, "GET", "/v1/stats?group=hour", key=key)
    assert r.status == 200, r
    rows = r.json()["stats"]
    return {k: sum(row.get(k, 0) for row in rows) for k in ("accepted", "delivered", "bounced")}


def send_mail(srv, keys, mxs):
    """The mail the cases look for, delivered, bounced and deferred."""
    httpapi.wait_http(srv)
    # A webhook whose endpoint refuses connections: the events of the mail
    # below fail to reach it, and the Webhooks page lists the failures.
    hook_url = f"http://127.0.0.1:{free_port()}/hook"
    r = httpapi.request(srv, "POST", "/v1/webhooks", key=keys["shop"], body={"url": hook_url})
    hook_id = r.json()["id"] if r.status == 201 else None
    mail = {
        "shop_id": send(srv, "shop", "news@shop.test", ["a@ok.test", "b@bad.test"], "shop hello"),
        "other_id": send(srv, "other", "info@other.test", ["d@ok.test"], "other hello"),
        "deferred_id": send(srv, "shop", "news@shop.test", ["e@slow.test"], "shop slow"),
    }
    mxs[OK_IP].wait_rcpts(["a@ok.test", "d@ok.test"])
    poll(lambda: mxs[BAD_IP].rcpt_tries["b@bad.test"] >= 1, what="the bounce at bad.test")
    poll(lambda: mxs[SLOW_IP].rcpt_tries["e@slow.test"] >= 1, what="the deferral at slow.test")
    # Events are written in batches: wait until the statistics have the
    # three recipients shop sent to, and (for DELIVERY_WAIT) the results.
    poll(lambda: stats(srv, keys["shop"])["accepted"] >= 3, what="the shop account's statistics")
    mail.update({"delivery_events": delivery_events(srv, keys["shop"]), "shop_rcpt": "a@ok.test",
                 "shop_rcpts": ["a@ok.test", "b@bad.test"], "domains": ["ok.test", "bad.test"],
                 "deferred_domain": "slow.test", "suppressed": "gone@ok.test",
                 "dkim_domain": "shop.test", "dkim_other_domain": "other.test",
                 "webhook_id": hook_id, "webhook_url": hook_url})
    return mail


@pytest.fixture(scope="module")
def world(tmp_path_factory, cert, dns, farm):  # noqa: F811
    """The server, its keys and the mail the cases look for."""
    mxs = {ip: farm.add(ip) for ip in (OK_IP,)}
    mxs[BAD_IP] = farm.add(BAD_IP, reject_rcpt=True)
    mxs[SLOW_IP] = farm.add(SLOW_IP, defer_always=True)
    srv = Server(tmp_path_factory.mktemp("dashboard"), cert,
                 relay={"smarthost": None, "dns_servers": dns.address, "mx_port": str(farm.port),
                        "retry": "1h", "queue_lifetime": "1d",
                        # the fake MX hosts are on 127.0.0.x (see mx.start)
                        "blocked_destinations": "192.0.2.0/24"})
    for user, domain in (("shop", "shop.test"), ("other", "other.test")):
        srv.add_user(user, PASSWORD, (domain,))
    sel = dkim_selector(srv, "shop.test")
    dkim_selector(srv, "other.test")
    keys = {"shop": httpapi.create_key(srv, "shop"), "other": httpapi.create_key(srv, "other"),
            "admin": httpapi.create_key(srv, "default", "--admin"), "bad": "ph_" + "0" * 64}
    try:
        srv.start()
        mail = send_mail(srv, keys, mxs)
        mail.update({"dkim_selector": sel})
        yield {"srv": srv, "keys": keys, "mail": mail, "mxs": mxs}
    finally:
        srv.stop()
        for ip in mxs:
            farm.remove(ip)


def answer(world, question):
    """What the browser run asks for while a page is open."""
    mxs, srv = world["mxs"], world["srv"]
    if question == "mail":
        n = len(mxs[OK_IP].messages)
        send(srv, "shop", "news@shop.test", ["f@ok.test"], "shop refresh")
        mxs[OK_IP].wait_messages(n + 1)
        return "ok"
    if question.startswith("retried "):
        poll(lambda: mxs[SLOW_IP].rcpt_tries["e@slow.test"] >= 2, timeout=20,
             what="a new attempt at slow.test after the retry")
        return "ok"
    return f"no: unknown question {question}"


@pytest.fixture(scope="module")
def browser(world):
    """Runs tests/browser/dashboard.mjs once; its results.json."""
    out = out_dir()
    cfg = os.path.join(out, "config.json")
    with open(cfg, "w") as f:
        json.dump({"base": f"http://{world['srv'].http_address}", "out": out,
                   "keys": world["keys"], "mail": world["mail"]}, f)
    p = subprocess.Popen(["node", os.path.join(BROWSER, "dashboard.mjs"), cfg], cwd=BROWSER,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, bufsize=1)
    err = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    killer = threading.Timer(NODE_TIMEOUT, p.kill)
    killer.start()
    t0 = time.monotonic()
    try:
        for line in p.stdout:
            if line.startswith("@@ask "):
                try:
                    a = answer(world, line[6:].strip())
                except AssertionError as e:
                    a = f"no: {e}"
                p.stdin.write(a.replace("\n", " ") + "\n")
                p.stdin.flush()
        rc = p.wait()
    finally:
        killer.cancel()
    log = "".join(err)
    path = os.path.join(out, "results.json")
    assert rc == 0 and os.path.exists(path), f"the browser run failed ({rc}):\n{log[-6000:]}"
    with open(path) as f:
        res = json.load(f)
    res["log"] = log
    res["seconds"] = time.monotonic() - t0
    return res


CASES = ["login_invalid", "login_logout", "overview", "overview_delivered", "message_page",
         "message_attempts", "isolation", "admin",
         "suppression_remove", "queue_retry", "nodes", "template_preview", "dkim", "webhooks", "pages",
         "same_origin", "no_script_errors"]


@pytest.mark.parametrize("case", CASES)
def test_browser(browser, case):
    r = browser["results"].get(case)
    assert r is not None, f"the browser run has no result for {case}:\n{browser['log'][-3000:]}"
    assert r["ok"], r.get("error")


def test_screenshots(browser, capsys):
    """Every page at 360 and 1280 px, written and listed; the run's time."""
    shots = browser["screenshots"]
    names = {os.path.basename(s) for s in shots}
    for page in ("overview", "messages", "message", "queue", "suppressions", "templates",
                 "template", "webhooks", "dkim"):
        for w in ("1280", "360-dark"):
            assert f"{page}-{w}.png" in names, f"no screenshot {page}-{w}.png"
    for s in shots:
        assert os.path.getsize(s) > 2000, s
    with capsys.disabled():
        print(f"\ndashboard: {len(shots)} screenshots in {os.path.dirname(shots[0])} "
              f"(browser run {browser['seconds']:.0f} s)")
        for s in shots:
            print(f"  {s}")


# ---- without a browser -----------------------------------------------------------------


def test_page_headers(world):
    srv = world["srv"]
    r = httpapi.request(srv, "GET", "/")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    for need in CSP_NEEDS:
        assert need in csp, csp
    assert "unsafe" not in csp and "http:" not in csp and "https:" not in csp, csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    body = r.body.decode()
    assert '<script type="module" src="/assets/app.js"></script>' in body
    assert "<style" not in body and " style=" not in body and "<script>" not in body
    assert "//" not in body.replace("http://www.w3.org", ""), "the page names another origin"


def test_assets_embedded(world):
    """The files served are web/dist's, byte for byte, with their types."""
    srv = world["srv"]
    types = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
             "icon.svg": "image/svg+xml", "licenses.txt": "text/plain; charset=utf-8"}
    for name, ctype in types.items():
        r = httpapi.request(srv, "GET", f"/assets/{name}")
        assert r.status == 200, (name, r)
        assert r.headers["content-type"] == ctype
        with open(os.path.join(ROOT, "web", "dist", name), "rb") as f:
            assert r.body == f.read(), f"/assets/{name} is not web/dist/{name}"
        assert "default-src 'self'" in r.headers["content-security-policy"]
    for path in ("/assets/nope.js", "/assets/index.html", "/assets/..%2Fapp.js", "/index.html"):
        r = httpapi.request(srv, "GET", path)
        assert r.status == 404, (path, r)
        assert r.error()["code"] == "not_found"
    r = httpapi.request(srv, "HEAD", "/assets/app.js")
    assert r.status == 200 and r.body == b""
    r = httpapi.request(srv, "POST", "/", body="x")
    assert r.status == 405 and "GET" in r.headers["allow"]


def test_dkim_route(world):
    srv, keys, mail = world["srv"], world["keys"], world["mail"]
    r = httpapi.request(srv, "GET", "/v1/dkim", key=keys["shop"])
    assert r.status == 200, r
    doms = r.json()["domains"]
    assert [d["domain"] for d in doms] == ["shop.test"]  # not other.test: another account's
    (k,) = doms[0]["keys"]
    assert k["selector"] == mail["dkim_selector"]
    assert (k["algorithm"], k["state"]) == ("rsa2048", "active")
    assert k["name"] == f"{k['selector']}._domainkey.shop.test"
    assert k["record"].startswith("v=DKIM1; k=rsa; p=")
    assert k["zone"].startswith(f"{k['name']}. IN TXT \"v=DKIM1; k=rsa; p=")
    assert k["created_at"].endswith("Z") and k["retired_at"] is None
    # the same record as `posthorn dkim list --json`
    rc, out, err = srv.cli("dkim", "list", "--json")
    assert rc == 0, err
    listed = {(j["domain"], j["selector"]): j["record"] for j in map(json.loads, out.split("\n")[:-1])}
    assert listed[("shop.test", k["selector"])] == k["record"]
    r = httpapi.request(srv, "GET", "/v1/dkim", key=keys["admin"])
    assert [d["domain"] for d in r.json()["domains"]] == ["other.test", "shop.test"]
    r = httpapi.request(srv, "GET", "/v1/dkim?domain=OTHER.test", key=keys["admin"])
    assert [d["domain"] for d in r.json()["domains"]] == ["other.test"]
    r = httpapi.request(srv, "GET", "/v1/dkim?domain=other.test", key=keys["shop"])
    assert r.json()["domains"] == []
    r = httpapi.request(srv, "GET", "/v1/dkim?domain=not_a_domain", key=keys["shop"])
    assert r.status == 400 and r.error()["parameter"] == "domain"
    r = httpapi.request(srv, "GET", "/v1/dkim", key=keys["bad"])
    assert r.status == 401
