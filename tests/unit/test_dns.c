/*
 * Unit tests for dns/ against a real DNS server: two dnsmasq processes on
 * loopback ports chosen at start (one serving local records for a .test
 * zone, one authoritative for soa.test so that negative answers carry an
 * SOA). Servers are always given explicitly: nothing here reads
 * /etc/resolv.conf or leaves the machine. Cache expiry is driven by a fake
 * clock handed to dns_new; c-ares timeouts run on the real one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dns/dns.h"
#include "util/util.h"

#define DNSMASQ   "/usr/sbin/dnsmasq"
#define LOCAL_TTL 30 /* dnsmasq --local-ttl: every positive local answer */
#define AUTH_TTL  40 /* dnsmasq --auth-ttl: the SOA's TTL and minimum */

/* The servers, started once for the whole group. */
static struct {
	pid_t local_pid, auth_pid;
	int local_port, auth_port;
	char local[32], auth[32];
} srv;

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void)
{
	return fake_now;
}

/* What the callbacks saw. */
struct result {
	int calls;
	struct dns_route *route; /* the last one, copied */
	struct dns_txt txt;      /* the last one, copied */
	char first_host[256];    /* of the last route */
};

struct fixture {
	struct event_base *base;
	struct dns *dns;
	struct result res[64];
};

/* ---- servers ---------------------------------------------------------- */

/* A port free for both TCP and UDP on 127.0.0.1 (dnsmasq wants both). */
static int free_port(void)
{
	int tries;

	for (tries = 0; tries < 50; tries++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t len = sizeof sa;
		int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0), ok;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = bind(t, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		     getsockname(t, (struct sockaddr *)&sa, &len) == 0 &&
		     bind(u, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(t);
		close(u);
		if (ok)
			return ntohs(sa.sin_port);
	}
	return -1;
}

static pid_t spawn(char **argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan if the test dies */
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* dnsmasq is ready once its TCP socket accepts. */
static int wait_listening(pid_t pid, int port)
{
	int i;

	for (i = 0; i < 250; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int s = socket(AF_INET, SOCK_STREAM, 0), ok;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = connect(s, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(s);
		if (ok)
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(20000);
	}
	return -1;
}

/* Local records for the .test zone. Every option is one argv entry. */
static const char *local_records[] = {
    "--mx-host=order.test,b.order.test,20",
    "--mx-host=order.test,a.order.test,10",
    "--mx-host=order.test,c.order.test,30",
    "--host-record=a.order.test,127.0.0.11",
    "--host-record=b.order.test,127.0.0.12",
    "--host-record=c.order.test,127.0.0.13",
    "--mx-host=equal.test,x.equal.test,10",
    "--mx-host=equal.test,y.equal.test,10",
    "--host-record=x.equal.test,127.0.0.21",
    "--host-record=y.equal.test,127.0.0.22",
    "--host-record=implicit.test,127.0.0.3,::1",
    "--host-record=v6only.test,2001:db8::6",
    "--mx-host=dual.test,mx.dual.test,10",
    "--host-record=mx.dual.test,127.0.0.4,2001:db8::4",
    "--mx-host=nullmx.test,.,0",
    "--mx-host=nohost.test,missing.nohost.test,10",
    "--mx-host=partial.test,missing.partial.test,10",
    "--mx-host=partial.test,ok.partial.test,20",
    "--host-record=ok.partial.test,127.0.0.6",
    "--txt-record=_mta-sts.order.test,v=STSv1; id=20240101",
    "--txt-record=multi.test,v=spf1,-all",
    "--txt-record=two.test,first",
    "--txt-record=two.test,second",
    "--cname=alias.test,mx.dual.test",
    "--mx-host=viacname.test,alias.test,10",
};

static char **argv_common(int port, size_t extra)
{
	char **argv = xcalloc(16 + extra, sizeof *argv);
	size_t n = 0;

	argv[n++] = xstrdup(DNSMASQ);
	argv[n++] = xstrdup("--no-daemon");
	argv[n++] = xstrdup("--conf-file=/dev/null");
	argv[n++] = xstrdup("--pid-file");
	argv[n++] = xstrdup("--no-resolv");
	argv[n++] = xstrdup("--no-hosts");
	argv[n++] = xasprintf("--port=%d", port);
	argv[n++] = xstrdup("--listen-address=127.0.0.1");
	argv[n++] = xstrdup("--bind-interfaces");
	return argv;
}

static void argv_free(char **argv)
{
	size_t i;

	for (i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

static size_t argv_len(char **argv)
{
	size_t n = 0;

	while (argv[n])
		n++;
	return n;
}

static pid_t start_local(int port)
{
	char **argv = argv_common(port, ARRAY_LEN(local_records) + 2);
	size_t n = argv_len(argv), i;
	pid_t pid;

	argv[n++] = xstrdup("--local=/test/"); /* unknown names: NXDOMAIN, no SOA */
	argv[n++] = xasprintf("--local-ttl=%d", LOCAL_TTL);
	for (i = 0; i < ARRAY_LEN(local_records); i++)
		argv[n++] = xstrdup(local_records[i]);
	pid = spawn(argv);
	argv_free(argv);
	return pid;
}

static pid_t start_auth(int port)
{
	char **argv = argv_common(port, 5);
	size_t n = argv_len(argv);
	pid_t pid;

	argv[n++] = xstrdup("--auth-server=ns.soa.test,127.0.0.1");
	argv[n++] = xstrdup("--auth-zone=soa.test");
	argv[n++] = xstrdup("--auth-soa=1,hostmaster.soa.test,1200,120,1209600");
	argv[n++] = xasprintf("--auth-ttl=%d", AUTH_TTL);
	argv[n++] = xstrdup("--host-record=www.soa.test,127.0.0.4");
	pid = spawn(argv);
	argv_free(argv);
	return pid;
}

static void stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

static int group_setup(void **state)
{
	srv.local_port = free_port();
	srv.local_pid = start_local(srv.local_port);
	if (srv.local_pid < 0 || wait_listening(srv.local_pid, srv.local_port) < 0) {
		fprintf(stderr, "cannot start %s on port %d\n", DNSMASQ, srv.local_port);
		return -1;
	}
	srv.auth_port = free_port();
	srv.auth_pid = start_auth(srv.auth_port);
	if (srv.auth_pid < 0 || wait_listening(srv.auth_pid, srv.auth_port) < 0) {
		fprintf(stderr, "cannot start %s (auth) on port %d\n", DNSMASQ, srv.auth_port);
		return -1;
	}
	snprintf(srv.local, sizeof srv.local, "127.0.0.1:%d", srv.local_port);
	snprintf(srv.auth, sizeof srv.auth, "127.0.0.1:%d", srv.auth_port);
	return 0;
}

static int group_teardown(void **state)
{
	stop(srv.local_pid);
	stop(srv.auth_pid);
	return 0;
}

/* ---- per test --------------------------------------------------------- */

static struct dns *new_dns(struct fixture *f, const char *servers, unsigned timeout_ms,
                           unsigned max_neg_ttl, size_t cache_size)
{
	struct dns_opts o = {.servers = servers,
	                     .timeout_ms = timeout_ms,
	                     .tries = 2,
	                     .max_neg_ttl = max_neg_ttl,
	                     .cache_size = cache_size,
	                     .now_ms = fake_clock};
	char *err = NULL;
	struct dns *d = dns_new(f->base, &o, &err);

	if (!d)
		fail_msg("dns_new: %s", err);
	return d;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);

	f->base = event_base_new();
	f->dns = new_dns(f, srv.local, 1000, 0, 0);
	*state = f;
	return 0;
}

static void result_clear(struct result *r)
{
	size_t i;

	dns_route_free(r->route);
	for (i = 0; i < r->txt.n; i++)
		free(r->txt.records[i]);
	free(r->txt.records);
	memset(r, 0, sizeof *r);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	dns_free(f->dns);
	event_base_free(f->base);
	for (i = 0; i < ARRAY_LEN(f->res); i++)
		result_clear(&f->res[i]);
	free(f);
	return 0;
}

static void on_route(void *arg, const struct dns_route *r)
{
	struct result *res = arg;

	res->calls++;
	dns_route_free(res->route);
	res->route = dns_route_dup(r);
	snprintf(res->first_host, sizeof res->first_host, "%s", r->n_hosts ? r->hosts[0].name : "");
}

static void on_txt(void *arg, const struct dns_txt *t)
{
	struct result *res = arg;
	size_t i;

	res->calls++;
	res->txt.status = t->status;
	res->txt.n = t->n;
	res->txt.records = xcalloc(t->n + 1, sizeof *res->txt.records);
	for (i = 0; i < t->n; i++)
		res->txt.records[i] = xstrdup(t->records[i]);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run the loop until *counter reaches want, for at most max_ms. */
static void run_until(struct fixture *f, const int *counter, int want, int max_ms)
{
	int expired = 0;
	struct event *guard = evtimer_new(f->base, on_guard, &expired);
	struct timeval tv = {max_ms / 1000, (max_ms % 1000) * 1000};

	evtimer_add(guard, &tv);
	while (*counter < want && !expired)
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(guard);
	assert_true(*counter >= want);
}

/* Resolve one domain and wait for the answer in f->res[0]. */
static const struct dns_route *route1(struct fixture *f, const char *domain)
{
	struct result *res = &f->res[0];
	int before = res->calls;

	assert_true(dns_route(f->dns, domain, on_route, res) != 0);
	run_until(f, &res->calls, before + 1, 5000);
	return res->route;
}

static uint64_t queries(struct fixture *f)
{
	struct dns_stats st;

	dns_get_stats(f->dns, &st);
	return st.queries_sent;
}

static const char *addr_str(const struct dns_addr *a)
{
	static char s[DNS_ADDR_STRLEN];

	return dns_addr_str(a, s);
}

/* ---- tests ------------------------------------------------------------ */

static void test_mx_ordered(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "Order.Test.");

	assert_int_equal(r->status, DNS_OK);
	assert_false(r->null_mx);
	assert_false(r->implicit_mx);
	assert_int_equal(r->n_hosts, 3);
	assert_string_equal(r->hosts[0].name, "a.order.test");
	assert_int_equal(r->hosts[0].pref, 10);
	assert_string_equal(r->hosts[1].name, "b.order.test");
	assert_int_equal(r->hosts[1].pref, 20);
	assert_string_equal(r->hosts[2].name, "c.order.test");
	assert_int_equal(r->hosts[2].pref, 30);
	assert_int_equal(r->hosts[0].n_addrs, 1);
	assert_int_equal(r->hosts[0].addrs[0].family, AF_INET);
	assert_string_equal(addr_str(&r->hosts[0].addrs[0]), "127.0.0.11");
	assert_string_equal(addr_str(&r->hosts[2].addrs[0]), "127.0.0.13");
	assert_int_equal(queries(f), 1 + 3 * 2); /* MX, then A and AAAA per host */
}

/* Equal preferences come back in both orders across lookups. */
static void test_equal_preferences_shuffled(void **state)
{
	struct fixture *f = *state;
	int x_first = 0, y_first = 0, i;

	for (i = 0; i < 40; i++) {
		const struct dns_route *r = route1(f, "equal.test");

		assert_int_equal(r->status, DNS_OK);
		assert_int_equal(r->n_hosts, 2);
		assert_int_equal(r->hosts[0].pref, 10);
		assert_int_equal(r->hosts[1].pref, 10);
		if (strcmp(r->hosts[0].name, "x.equal.test") == 0)
			x_first++;
		else
			y_first++;
	}
	/* Odds of a false failure: 2^-39. */
	assert_true(x_first > 0);
	assert_true(y_first > 0);
	assert_int_equal(queries(f), 5); /* the rest came from the cache, still shuffled */
}

static void test_implicit_mx_a_and_aaaa(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "implicit.test");

	assert_int_equal(r->status, DNS_OK);
	assert_true(r->implicit_mx);
	assert_int_equal(r->n_hosts, 1);
	assert_string_equal(r->hosts[0].name, "implicit.test");
	assert_int_equal(r->hosts[0].pref, 0);
	assert_int_equal(r->hosts[0].n_addrs, 2);
	assert_int_equal(r->hosts[0].addrs[0].family, AF_INET6);
	assert_string_equal(addr_str(&r->hosts[0].addrs[0]), "::1");
	assert_int_equal(r->hosts[0].addrs[1].family, AF_INET);
	assert_string_equal(addr_str(&r->hosts[0].addrs[1]), "127.0.0.3");
}

/* CNAMEs: the answer records are those of the chain's end (dns_wire). An
 * MX query for an alias gets the CNAME alone: implicit MX, whose A and
 * AAAA answers come through the CNAME too; and an MX host that is an
 * alias gets its addresses through it. */
static void test_cname_chain(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "alias.test");

	assert_int_equal(r->status, DNS_OK);
	assert_true(r->implicit_mx);
	assert_string_equal(r->hosts[0].name, "alias.test");
	assert_int_equal(r->hosts[0].n_addrs, 2);
	assert_string_equal(addr_str(&r->hosts[0].addrs[0]), "2001:db8::4");
	assert_string_equal(addr_str(&r->hosts[0].addrs[1]), "127.0.0.4");

	r = route1(f, "viacname.test");
	assert_int_equal(r->status, DNS_OK);
	assert_false(r->implicit_mx);
	assert_string_equal(r->hosts[0].name, "alias.test");
	assert_int_equal(r->hosts[0].n_addrs, 2);
	assert_string_equal(addr_str(&r->hosts[0].addrs[1]), "127.0.0.4");
}

static void test_mx_host_with_both_families(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "dual.test");

	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n_hosts, 1);
	assert_int_equal(r->hosts[0].n_addrs, 2);
	assert_string_equal(addr_str(&r->hosts[0].addrs[0]), "2001:db8::4");
	assert_string_equal(addr_str(&r->hosts[0].addrs[1]), "127.0.0.4");

	r = route1(f, "v6only.test");
	assert_int_equal(r->status, DNS_OK);
	assert_true(r->implicit_mx);
	assert_int_equal(r->hosts[0].n_addrs, 1);
	assert_string_equal(addr_str(&r->hosts[0].addrs[0]), "2001:db8::6");
}

static void test_null_mx(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "nullmx.test");

	assert_int_equal(r->status, DNS_NODATA);
	assert_true(r->null_mx);
	assert_int_equal(r->n_hosts, 0);
	assert_non_null(r->error);
	assert_int_equal(queries(f), 1); /* no address lookups for a null MX */
}

static void test_nxdomain(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "nowhere.test");

	assert_int_equal(r->status, DNS_NXDOMAIN);
	assert_int_equal(r->n_hosts, 0);
	assert_false(r->null_mx);
	assert_int_equal(queries(f), 1);
}

static void test_mx_host_without_address(void **state)
{
	struct fixture *f = *state;
	const struct dns_route *r = route1(f, "nohost.test");

	assert_int_equal(r->status, DNS_NODATA); /* permanent */
	assert_int_equal(r->n_hosts, 1);
	assert_int_equal(r->hosts[0].addr_status, DNS_NXDOMAIN);

	r = route1(f, "partial.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n_hosts, 2);
	assert_string_equal(r->hosts[0].name, "missing.partial.test");
	assert_int_equal(r->hosts[0].n_addrs, 0);
	assert_int_equal(r->hosts[0].addr_status, DNS_NXDOMAIN);
	assert_int_equal(r->hosts[1].addr_status, DNS_OK);
	assert_string_equal(addr_str(&r->hosts[1].addrs[0]), "127.0.0.6");
}

/* Nothing listens on the port: ICMP refuses, c-ares gives up quickly. */
static void test_server_down_tempfail(void **state)
{
	struct fixture *f = *state;
	char servers[32];
	const struct dns_route *r;
	struct dns_stats st;

	dns_free(f->dns);
	snprintf(servers, sizeof servers, "127.0.0.1:%d", free_port());
	f->dns = new_dns(f, servers, 300, 0, 0);
	r = route1(f, "order.test");
	assert_int_equal(r->status, DNS_TEMPFAIL);
	assert_non_null(r->error);
	assert_int_equal(r->n_hosts, 0);
	/* Temporary failures are not cached: the next route asks again. */
	r = route1(f, "order.test");
	assert_int_equal(r->status, DNS_TEMPFAIL);
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.queries_sent, 2);
	assert_int_equal(st.tempfails, 2);
	assert_int_equal(st.cache_entries, 0);
}

/* A server that never answers: TEMPFAIL once the tries are spent. */
static void test_server_silent_times_out(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int sink = socket(AF_INET, SOCK_DGRAM, 0);
	char servers[32];
	const struct dns_route *r;
	uint64_t t0, took;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sink, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(sink, (struct sockaddr *)&sa, &len), 0);
	snprintf(servers, sizeof servers, "127.0.0.1:%d", ntohs(sa.sin_port));
	dns_free(f->dns);
	f->dns = new_dns(f, servers, 200, 0, 0);
	t0 = clock_mono_ms();
	r = route1(f, "order.test");
	took = clock_mono_ms() - t0;
	close(sink);
	assert_int_equal(r->status, DNS_TEMPFAIL);
	/* Two tries: 200 ms, then 400 ms (c-ares doubles per round). */
	assert_true(took >= 500);
	assert_true(took < 2000);
}

static void test_cache_positive_ttl(void **state)
{
	struct fixture *f = *state;
	struct dns_stats st;

	route1(f, "order.test");
	assert_int_equal(queries(f), 7);
	route1(f, "order.test");
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.queries_sent, 7); /* all from the cache */
	assert_int_equal(st.cache_hits, 7);
	fake_now += (LOCAL_TTL - 1) * 1000;
	assert_int_equal(route1(f, "order.test")->status, DNS_OK);
	assert_int_equal(queries(f), 7);
	fake_now += 2 * 1000; /* past the TTL of MX and A records */
	assert_int_equal(route1(f, "order.test")->status, DNS_OK);
	/* MX and 3 A asked again; the 3 AAAA NODATA answers (no SOA: 60 s) stay. */
	assert_int_equal(queries(f), 7 + 4);
}

/* dnsmasq's local NXDOMAIN has no SOA: kept NEG_TTL_NO_SOA (60 s). */
static void test_cache_negative_without_soa(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(route1(f, "nowhere.test")->status, DNS_NXDOMAIN);
	assert_int_equal(route1(f, "nowhere.test")->status, DNS_NXDOMAIN);
	assert_int_equal(queries(f), 1);
	fake_now += 59 * 1000;
	assert_int_equal(route1(f, "nowhere.test")->status, DNS_NXDOMAIN);
	assert_int_equal(queries(f), 1);
	fake_now += 2 * 1000;
	assert_int_equal(route1(f, "nowhere.test")->status, DNS_NXDOMAIN);
	assert_int_equal(queries(f), 2);
}

/* With an SOA in the authority section: min(SOA TTL, MINIMUM), capped. */
static void test_cache_negative_soa(void **state)
{
	struct fixture *f = *state;

	dns_free(f->dns);
	f->dns = new_dns(f, srv.auth, 1000, 0, 0);
	assert_int_equal(route1(f, "nx.soa.test")->status, DNS_NXDOMAIN);
	fake_now += (AUTH_TTL - 1) * 1000;
	assert_int_equal(route1(f, "nx.soa.test")->status, DNS_NXDOMAIN);
	assert_int_equal(queries(f), 1);
	fake_now += 2 * 1000;
	assert_int_equal(route1(f, "nx.soa.test")->status, DNS_NXDOMAIN);
	assert_int_equal(queries(f), 2);

	/* max_neg_ttl caps it. */
	dns_free(f->dns);
	f->dns = new_dns(f, srv.auth, 1000, 10, 0);
	assert_int_equal(route1(f, "nx.soa.test")->status, DNS_NXDOMAIN);
	fake_now += 9 * 1000;
	route1(f, "nx.soa.test");
	assert_int_equal(queries(f), 1);
	fake_now += 2 * 1000;
	route1(f, "nx.soa.test");
	assert_int_equal(queries(f), 2);
}

/* NODATA is cached like NXDOMAIN: the implicit MX asks for MX only once. */
static void test_cache_nodata(void **state)
{
	struct fixture *f = *state;

	route1(f, "implicit.test");
	assert_int_equal(queries(f), 3); /* MX (NODATA), A, AAAA */
	assert_true(route1(f, "implicit.test")->implicit_mx);
	assert_int_equal(queries(f), 3);
}

static void test_cache_bounded(void **state)
{
	struct fixture *f = *state;
	struct dns_stats st;

	dns_free(f->dns);
	f->dns = new_dns(f, srv.local, 1000, 0, 3);
	route1(f, "order.test");
	route1(f, "dual.test");
	route1(f, "equal.test");
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.cache_entries, 3);
	assert_int_equal(route1(f, "equal.test")->status, DNS_OK);
}

/* Many requests for one name while its queries are in flight: one query each. */
static void test_coalescing(void **state)
{
	struct fixture *f = *state;
	int done = 0, i;
	struct dns_stats st;

	for (i = 0; i < 50; i++)
		assert_true(dns_route(f->dns, "order.test", on_route, &f->res[i]) != 0);
	for (i = 0; i < 50; i++) {
		run_until(f, &f->res[i].calls, 1, 5000);
		done += f->res[i].calls;
		assert_int_equal(f->res[i].route->status, DNS_OK);
		assert_int_equal(f->res[i].route->n_hosts, 3);
		assert_int_equal(f->res[i].route->hosts[2].n_addrs, 1);
	}
	assert_int_equal(done, 50);
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.queries_sent, 7);
	assert_int_equal(st.coalesced, 49 * 7);
	assert_int_equal(st.pending, 0);
}

/* Even an answer straight from the cache waits for the loop. */
static void test_callback_never_inline(void **state)
{
	struct fixture *f = *state;
	struct result *res = &f->res[1];
	uint64_t a, b;

	route1(f, "order.test");
	a = dns_route(f->dns, "order.test", on_route, res);
	b = dns_route(f->dns, "bad name.test", on_route, res); /* invalid: no query */
	assert_true(a != 0 && b != 0 && a != b);
	assert_int_equal(res->calls, 0);
	run_until(f, &res->calls, 2, 5000);
	assert_int_equal(res->route->status, DNS_NXDOMAIN);
	assert_int_equal(queries(f), 7);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct result *cancelled = &f->res[1], *other = &f->res[2];
	uint64_t id;

	/* In flight: the shared lookups go on for the other request. */
	id = dns_route(f->dns, "order.test", on_route, cancelled);
	assert_true(dns_route(f->dns, "order.test", on_route, other) != 0);
	assert_int_equal(dns_cancel(f->dns, id), 0);
	assert_int_equal(dns_cancel(f->dns, id), -1);
	run_until(f, &other->calls, 1, 5000);
	assert_int_equal(cancelled->calls, 0);

	/* Cancelled before the loop: answered from the cache already. */
	id = dns_route(f->dns, "order.test", on_route, cancelled);
	assert_int_equal(dns_cancel(f->dns, id), 0);
	route1(f, "order.test");
	assert_int_equal(cancelled->calls, 0);
	assert_int_equal(dns_cancel(f->dns, 12345), -1);
	assert_int_equal(dns_cancel(f->dns, 0), -1);
}

/* dns_free answers what is pending with DNS_CANCELLED. */
static void test_free_cancels_pending(void **state)
{
	struct fixture *f = *state;
	struct result *res = &f->res[1];
	struct dns_stats st;

	assert_true(dns_route(f->dns, "order.test", on_route, res) != 0);
	assert_true(dns_query_txt(f->dns, "two.test", on_txt, res) != 0);
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.pending, 2);
	dns_free(f->dns);
	f->dns = NULL;
	assert_int_equal(res->calls, 2);
	assert_int_equal(res->route->status, DNS_CANCELLED);
	assert_int_equal(res->txt.status, DNS_CANCELLED);
}

static const struct dns_txt *txt1(struct fixture *f, const char *name)
{
	struct result *res = &f->res[3];

	result_clear(res);
	assert_true(dns_query_txt(f->dns, name, on_txt, res) != 0);
	run_until(f, &res->calls, 1, 5000);
	return &res->txt;
}

static void test_txt(void **state)
{
	struct fixture *f = *state;
	const struct dns_txt *t = txt1(f, "_mta-sts.order.test");

	assert_int_equal(t->status, DNS_OK);
	assert_int_equal(t->n, 1);
	assert_string_equal(t->records[0], "v=STSv1; id=20240101");

	t = txt1(f, "multi.test"); /* one record of two strings: joined */
	assert_int_equal(t->status, DNS_OK);
	assert_int_equal(t->n, 1);
	assert_string_equal(t->records[0], "v=spf1-all");

	t = txt1(f, "two.test");
	assert_int_equal(t->n, 2);
	assert_true((strcmp(t->records[0], "first") == 0 && strcmp(t->records[1], "second") == 0) ||
	            (strcmp(t->records[0], "second") == 0 && strcmp(t->records[1], "first") == 0));

	t = txt1(f, "nothing.test");
	assert_int_equal(t->status, DNS_NXDOMAIN);
	assert_int_equal(t->n, 0);
	t = txt1(f, "a.order.test");
	assert_int_equal(t->status, DNS_NODATA);

	t = txt1(f, "_mta-sts.order.test"); /* cached */
	assert_int_equal(t->status, DNS_OK);
	assert_int_equal(queries(f), 5);
}

static void test_bad_server_list(void **state)
{
	struct fixture *f = *state;
	struct dns_opts o = {.servers = "not-an-address:zz"};
	char *err = NULL;

	assert_null(dns_new(f->base, &o, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "not-an-address"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mx_ordered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_equal_preferences_shuffled, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_implicit_mx_a_and_aaaa, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mx_host_with_both_families, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cname_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_mx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mx_host_without_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_down_tempfail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_silent_times_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_positive_ttl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_negative_without_soa, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_negative_soa, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_nodata, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callback_never_inline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_cancels_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_txt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_server_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
