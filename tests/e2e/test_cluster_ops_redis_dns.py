"""The Redis host named in `[cluster] redis` is resolved on the event loop
through Posthorn's resolver (c-ares, `[relay] dns_servers`), not by a
blocking call (docs/cluster.md "Redis"). The name below exists only in the
test DNS (dnsmasq), so a node that reaches Redis through it used that
resolver; a name with no address keeps the node on its fallback, logged,
and it carries on."""
import pytest

import helpers
from mx import TestDNS, Zone
from redisfix import redis  # noqa: F401
from test_cluster_redis import metric, send, wait_out_of_hour_end


@pytest.fixture
def dns(tmp_path):
    z = Zone()
    z.host("redis.cluster.test", "127.0.0.1")
    z.host("dual.cluster.test", "::1", "127.0.0.1")  # Redis listens on 127.0.0.1 only
    (tmp_path / "dns").mkdir()
    d = TestDNS(str(tmp_path / "dns"), z)
    d.start()
    yield d
    d.stop()


def node(server_factory, dns, url, hour):
    extra = (f"[quota]\nhour = {hour}\n[cluster]\nredis = {url}\nnodes = 2")
    return server_factory(extra=extra, relay={"dns_servers": dns.address})


def test_a_redis_host_name_from_the_test_dns(server_factory, redis, dns):  # noqa: F811
    wait_out_of_hour_end()
    url = f"redis://redis.cluster.test:{redis.port}"
    a, b = node(server_factory, dns, url, 6), node(server_factory, dns, url, 6)
    for s in (a, b):
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
        assert "event=redis_up host=redis.cluster.test" in s.log()
    # shared through that Redis: 6 in all (alone each node would take 3)
    assert send(a, [f"a{j}@nowhere.test" for j in range(4)], "dns-a") == (4, 0)
    assert send(b, [f"b{j}@nowhere.test" for j in range(4)], "dns-b") == (2, 2)


def test_a_redis_host_name_without_an_address(server_factory, redis, dns):  # noqa: F811
    s = node(server_factory, dns, f"redis://nowhere.cluster.test:{redis.port}", 4)
    helpers.wait_for(lambda: "event=redis_down" in s.log(), 10, what="redis_down")
    assert ('host=nowhere.cluster.test port=%d error="the host name has no address (A or AAAA)"'
            % redis.port) in s.log()
    assert send(s, [f"n{j}@nowhere.test" for j in range(3)], "nx") == (2, 1)  # 4/2 alone
    assert "event=redis_up" not in s.log() and metric(s, "posthorn_redis_up") == 0
    assert s.log().count("event=redis_down") == 1


def test_each_address_of_the_name_in_turn(server_factory, redis, dns):  # noqa: F811
    """IPv6 first, where no Redis listens: the next dial takes the IPv4
    address, and the node is up."""
    s = node(server_factory, dns, f"redis://dual.cluster.test:{redis.port}", 4)
    helpers.wait_for(lambda: "event=redis_up host=dual.cluster.test" in s.log(), 10,
                     what="redis_up through the second address")


def test_a_name_from_the_hosts_file(server_factory, redis, dns):  # noqa: F811
    """localhost is in /etc/hosts, not in any DNS: read from the file, as
    getaddrinfo would."""
    s = node(server_factory, dns, f"redis://localhost:{redis.port}", 4)
    helpers.wait_for(lambda: "event=redis_up host=localhost" in s.log(), 10, what="redis_up")
