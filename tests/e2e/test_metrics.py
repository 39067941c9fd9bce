"""GET /metrics parsed with prometheus_client's own parser: format 0.0.4,
every family the docs list with its type, and values that move with
traffic (HTTP requests, connections, the queue, spool commits)."""
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import helpers
from httpapi import request

# Every family of docs/metrics.md, with its type (counter names without _total,
# as the parser reports them).
FAMILIES = {
    "posthorn_messages_accepted": "counter",
    "posthorn_messages_delivered": "counter",
    "posthorn_messages_deferred": "counter",
    "posthorn_messages_bounced": "counter",
    "posthorn_smtp_sessions": "counter",
    "posthorn_tls_handshakes": "counter",
    "posthorn_dns_lookup_duration_seconds": "histogram",
    "posthorn_spool_commit_duration_seconds": "histogram",
    "posthorn_delivery_duration_seconds": "histogram",
    "posthorn_queue_messages": "gauge",
    "posthorn_queue_recipients": "gauge",
    "posthorn_queue_oldest_message_age_seconds": "gauge",
    "posthorn_outbound_connections": "gauge",
    "posthorn_spool_commits": "counter",
    "posthorn_spool_fsyncs": "counter",
    "posthorn_http_requests": "counter",
    "posthorn_http_connections": "gauge",
    "posthorn_events_written": "counter",
    "posthorn_events_dropped": "counter",
    "posthorn_events_queue_bytes": "gauge",
    "posthorn_webhook_requests": "counter",
    "posthorn_webhook_events_dropped": "counter",
    "posthorn_redis_up": "gauge",
    "posthorn_cluster_fallback": "counter",
    "posthorn_node_tag_lost": "gauge",
    "posthorn_node_id_clash": "gauge",
}


def scrape(s):
    r = request(s, "GET", "/metrics")
    assert r.status == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4"
    return {f.name: f for f in text_string_to_metric_families(r.body.decode())}


def value(fams, family, sample, **labels):
    for smp in fams[family].samples:
        if smp.name == sample and all(smp.labels.get(k) == v for k, v in labels.items()):
            return smp.value
    return None


@pytest.fixture
def s(server_factory):
    return server_factory()


def test_families_and_types(s):
    fams = scrape(s)
    assert {n: f.type for n, f in fams.items()} == FAMILIES
    for f in fams.values():
        assert f.documentation, f.name
    h = fams["posthorn_dns_lookup_duration_seconds"]
    buckets = [smp for smp in h.samples if smp.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf"
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    count = value(fams, h.name, h.name + "_count")
    assert buckets[-1].value == count
    assert value(fams, "posthorn_messages_bounced", "posthorn_messages_bounced_total",
                 **{"class": "address"}) == 0


def test_http_requests_counted(s):
    before = scrape(s)
    for _ in range(3):
        request(s, "GET", "/healthz")
    request(s, "GET", "/nope")
    request(s, "GET", "/v1/account")  # no key: 401
    after = scrape(s)
    n = "posthorn_http_requests_total"
    was = value(before, "posthorn_http_requests", n, route="/healthz", code="200") or 0
    assert value(after, "posthorn_http_requests", n, route="/healthz", code="200") == was + 3
    assert value(after, "posthorn_http_requests", n, route="unmatched", code="404") == 1
    assert value(after, "posthorn_http_requests", n, route="/v1/account", code="401") == 1
    # This scrape's own connection is open while it renders.
    assert value(after, "posthorn_http_connections", "posthorn_http_connections") >= 1


def test_queue_metrics_follow_the_spool(s):
    fams = scrape(s)
    assert value(fams, "posthorn_queue_messages", "posthorn_queue_messages") == 0
    assert value(fams, "posthorn_queue_oldest_message_age_seconds",
                 "posthorn_queue_oldest_message_age_seconds") == 0
    commits = value(fams, "posthorn_spool_commits", "posthorn_spool_commits_total")
    # Delivery goes to a closed port: the message stays queued.
    helpers.send_raw_message(s.port, "sender@example.com", ["rcpt@example.net"],
                             helpers.message())
    helpers.wait_for(lambda: value(scrape(s), "posthorn_queue_messages",
                                   "posthorn_queue_messages") == 1, what="queue_messages 1")
    time.sleep(2.1)
    fams = scrape(s)
    assert value(fams, "posthorn_spool_commits", "posthorn_spool_commits_total") == commits + 1
    assert value(fams, "posthorn_spool_fsyncs", "posthorn_spool_fsyncs_total") >= 1
    age = value(fams, "posthorn_queue_oldest_message_age_seconds",
                "posthorn_queue_oldest_message_age_seconds")
    assert 2 <= age <= 10
    states = {smp.labels["state"]: smp.value for smp in fams["posthorn_queue_recipients"].samples}
    assert set(states) == {"ready", "deferred", "active"} and sum(states.values()) >= 1
