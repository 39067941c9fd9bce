#!/usr/bin/python3
"""Load for POST /v1/messages (bench/api.sh starts the server and the sink).

  api_load.py single URL KEY N CLIENTS   N single messages from CLIENTS
                                          keep-alive connections (threads)
  api_load.py batch  URL KEY N BATCHES   BATCHES batches of N recipients
                                          (template "bench"), one at a time

Prints key=value figures (msgs_per_s, p50_ms, p99_ms, max_ms); exits 1 if
any request is not answered 200 with every recipient queued."""
import http.client
import json
import sys
import threading
import time
import urllib.parse

FROM = "bench@bench.test"


def conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def post(c, key, body):
    t0 = time.monotonic()
    c.request("POST", "/v1/messages", body=json.dumps(body),
              headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    ms = (time.monotonic() - t0) * 1000
    doc = json.loads(data)
    ok = r.status == 200 and all(m["status"] == "queued" for m in doc["messages"])
    return ok, ms, len(doc.get("messages", []))


def pct(lat, p):
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0.0


def report(kind, n_msgs, wall, lat, failed):
    print(f"case={kind} messages={n_msgs} requests={len(lat)} failed={failed} "
          f"wall_s={wall:.3f} msgs_per_s={n_msgs / wall:.0f} p50_ms={pct(lat, 0.5):.1f} "
          f"p99_ms={pct(lat, 0.99):.1f} max_ms={max(lat or [0]):.1f}")
    return 1 if failed else 0


def single(url, key, n, clients):
    lat, failed, lock = [], [0], threading.Lock()
    body = {"from": FROM, "to": "to@dest.test", "subject": "bench",
            "text": "x" * 2000}

    def run(count):
        c = conn(url)
        for _ in range(count):
            ok, ms, _ = post(c, key, body)
            with lock:
                lat.append(ms)
                failed[0] += not ok
        c.close()

    per = [n // clients + (i < n % clients) for i in range(clients)]
    threads = [threading.Thread(target=run, args=(k,)) for k in per]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return report("single", n, time.monotonic() - t0, lat, failed[0])


def batch(url, key, n, batches):
    c = conn(url)
    tpl = {"name": "bench", "subject": "Hello {{name}}", "text": "Hi {{name}}\n" + "x" * 2000,
           "html": "<p>Hi {{name}}</p>"}
    c.request("POST", "/v1/templates", body=json.dumps(tpl),
              headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    c.getresponse().read()
    lat, failed = [], 0
    t0 = time.monotonic()
    for b in range(batches):
        rcpts = [{"to": f"r{b}-{i}@dest.test", "variables": {"name": f"N{i}"}} for i in range(n)]
        ok, ms, got = post(c, key, {"from": FROM, "template": "bench", "recipients": rcpts})
        lat.append(ms)
        failed += not ok or got != n
    return report("batch", n * batches, time.monotonic() - t0, lat, failed)


if __name__ == "__main__":
    kind, url, key, n, m = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    sys.exit(single(url, key, n, m) if kind == "single" else batch(url, key, n, m))
