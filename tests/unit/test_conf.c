/*
 * Unit tests for src/conf: the embedded default, a full file, every type's
 * bad value with its FILE:LINE, syntax errors, cross-key checks, network
 * matching, and that the generated example loads. Files are written under a
 * mkdtemp directory that the group teardown removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/util.h"

static char tmpdir[] = "/tmp/posthorn-test-conf-XXXXXX";
static int file_no;

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* Writes text to a new file under tmpdir; returns its malloc'd path. */
static char *write_file(const char *text, size_t len)
{
	char *path = xasprintf("%s/conf-%d.ini", tmpdir, ++file_no);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

struct loaded {
	char *path;
	struct conf *c;
	char *errors;
};

static struct loaded load_text(const char *text)
{
	struct loaded l;

	l.path = write_file(text, strlen(text));
	l.c = conf_load(l.path, &l.errors);
	return l;
}

static void loaded_free(struct loaded *l)
{
	conf_free(l->c);
	free(l->errors);
	free(l->path);
}

static struct conf *load_ok(const char *text)
{
	struct loaded l = load_text(text);

	if (l.errors)
		fail_msg("unexpected errors:\n%s", l.errors);
	assert_non_null(l.c);
	free(l.path);
	return l.c;
}

/* Asserts that errors holds "PATH:LINE: " followed by want, on one line. */
static void assert_error_at(const struct loaded *l, int line, const char *want)
{
	char *prefix = xasprintf("%s:%d: ", l->path, line);
	const char *p = l->errors;

	if (!p)
		fail_msg("no errors; wanted line %d: %s", line, want);
	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		size_t n = strcspn(p, "\n");
		char *one = xstrndup(p, n);
		int hit = strncmp(one, prefix, strlen(prefix)) == 0 && strstr(one, want);
		free(one);
		if (hit) {
			free(prefix);
			return;
		}
	}
	fail_msg("missing '%s%s' in:\n%s", prefix, want, l->errors);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* Loads text that must fail with exactly one error, at line, containing want. */
static void expect_one_error(const char *text, int line, const char *want)
{
	struct loaded l = load_text(text);

	assert_null(l.c);
	assert_error_at(&l, line, want);
	if (count_lines(l.errors) != 1)
		fail_msg("wanted one error, got:\n%s", l.errors);
	loaded_free(&l);
}

static struct sockaddr_storage sa_of(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	} else {
		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	}
	return ss;
}

static int trusted(const struct conf *c, const char *ip)
{
	struct sockaddr_storage ss = sa_of(ip);
	return conf_is_trusted(c, (struct sockaddr *)&ss);
}

static int port_of(const struct conf_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* ---- defaults ---------------------------------------------------------- */

static void test_embedded_default(void **state)
{
	char *errors = (char *)"unset";
	struct conf *c = conf_load(NULL, &errors);
	char host[256] = "";
	const uint64_t retry[] = {60, 300, 900, 1800, 3600, 7200, 14400};

	assert_null(errors);
	assert_non_null(c);
	assert_null(c->file);
	gethostname(host, sizeof(host));
	assert_string_equal(c->hostname, host);
	assert_string_equal(c->data_dir, "./posthorn-data");
	assert_null(c->user);
	assert_int_equal(c->min_free_space, 100 * 1024 * 1024);

	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "default");
	assert_string_equal(c->listeners[0].address.text, "127.0.0.1:2525");
	assert_int_equal(c->listeners[0].address.ss.ss_family, AF_INET);
	assert_int_equal(c->listeners[0].address.len, sizeof(struct sockaddr_in));
	assert_int_equal(port_of(&c->listeners[0].address), 2525);
	assert_int_equal(c->listeners[0].tls, CONF_TLS_NONE);
	assert_int_equal(c->listeners[0].auth, CONF_AUTH_OFF);
	assert_int_equal(c->listeners[0].max_message_size, 25 * 1024 * 1024);
	assert_int_equal(c->listeners[0].max_recipients, 1000);
	assert_int_equal(c->listeners[0].max_connections, 1000);
	assert_int_equal(c->listeners[0].max_connections_per_ip, 20);
	assert_int_equal(c->listeners[0].timeout, 300);
	assert_int_equal(c->listeners[0].data_timeout, 600);

	assert_null(c->tls_cert);
	assert_null(c->tls_key);
	assert_int_equal(c->n_trusted_networks, 2);
	assert_int_equal(c->queue_lifetime, 5 * 86400);
	assert_int_equal(c->n_retry, ARRAY_LEN(retry));
	assert_memory_equal(c->retry, retry, sizeof(retry));
	assert_null(c->smarthost);
	assert_null(c->smarthost_auth);
	assert_int_equal(c->outbound_tls, CONF_OUT_TLS_OPPORTUNISTIC);
	assert_int_equal(c->n_dns_servers, 0);
	assert_int_equal(c->mx_port, 25);

	assert_int_equal(c->n_domains, 1);
	assert_string_equal(c->domains[0].name, "*");
	assert_int_equal(c->domains[0].max_connections, 20);
	assert_int_equal(c->domains[0].max_messages_per_connection, 100);
	assert_int_equal(c->domains[0].max_rate, 0); /* unlimited */
	assert_int_equal(c->delay_warning, 4 * 3600);

	assert_null(c->bounces_domain);
	assert_string_equal(c->http_address.text, "127.0.0.1:8025");
	assert_int_equal(port_of(&c->http_address), 8025);
	assert_string_equal(c->http_public_url, "http://127.0.0.1:8025");
	assert_null(c->cluster_postgres);
	assert_null(c->cluster_redis);
	conf_free(c);
}

/* A file with no listener gets the default one; other table defaults apply. */
static void test_file_defaults(void **state)
{
	struct conf *c = load_ok("[server]\nhostname = mx.example.org\n");

	assert_string_equal(c->file + strlen(c->file) - 4, ".ini");
	assert_string_equal(c->hostname, "mx.example.org");
	assert_string_equal(c->data_dir, "/var/lib/posthorn");
	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "default");
	assert_int_equal(c->listeners[0].auth, CONF_AUTH_OFF);
	conf_free(c);

	/* A listener section takes the listener defaults for omitted keys. */
	c = load_ok("[listener.a]\naddress = 127.0.0.1:2600\n");
	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "a");
	assert_int_equal(c->listeners[0].tls, CONF_TLS_NONE);
	assert_int_equal(c->listeners[0].auth, CONF_AUTH_OPTIONAL);
	assert_int_equal(c->listeners[0].max_connections_per_ip, 20);
	conf_free(c);
}

/* ---- a full file ----------------------------------------------------------- */

static void test_full_file(void **state)
{
	char *cert = write_file("cert", 4), *key = write_file("key", 3);
	char *text =
	    xasprintf("; a full configuration\n"
	              "[server]\n"
	              "hostname = relay.example.com     ; EHLO name\n"
	              "data_dir = /srv/posthorn\n"
	              "user = root\n"
	              "min_free_space = 2g\n"
	              "\n"
	              "[listener.submission]\n"
	              "address = 0.0.0.0:587\n"
	              "tls = starttls\n"
	              "auth = required\n"
	              "max_message_size = 10m\n"
	              "max_recipients = 50\n"
	              "max_connections = 200\n"
	              "max_connections_per_ip = 5\n"
	              "timeout = 30s\n"
	              "data_timeout = 1h\n"
	              "[listener.smtps]\n"
	              "address = [::]:465\n"
	              "tls = implicit\n"
	              "# the rest defaulted\n"
	              "[tls]\n"
	              "cert = %s\n"
	              "key = %s\n"
	              "[relay]\n"
	              "trusted_networks = 10.0.0.0/8, 192.168.1.0/24, fd00::/8, 203.0.113.7\n"
	              "queue_lifetime = 2d\n"
	              "retry = 30s, 2m, 1h\n"
	              "smarthost = smtp.example.net:587\n"
	              "smarthost_auth = me:secret:with:colons\n"
	              "outbound_tls = required\n"
	              "dns_servers = 127.0.0.1:5353, [::1]:53\n"
	              "mx_port = 2525\n"
	              "[domain.*]\n"
	              "max_connections = 10\n"
	              "max_rate = 100/m\n"
	              "[domain.Example.COM]\n"
	              "max_messages_per_connection = 7\n"
	              "[domain.gmail.com]\n"
	              "max_rate = 5/s\n"
	              "[bounces]\n"
	              "domain = bounces.example.com\n"
	              "[http]\n"
	              "address = [::1]:8080\n"
	              "public_url = https://relay.example.com\n"
	              "[cluster]\n"
	              "postgres = postgresql://posthorn@db/posthorn\n"
	              "redis = redis://127.0.0.1:6379\n",
	              cert, key);
	struct conf *c = load_ok(text);
	const struct conf_domain *d;

	assert_string_equal(c->hostname, "relay.example.com");
	assert_string_equal(c->data_dir, "/srv/posthorn");
	assert_string_equal(c->user, "root");
	assert_int_equal(c->min_free_space, 2ULL * 1024 * 1024 * 1024);

	assert_int_equal(c->n_listeners, 2);
	assert_string_equal(c->listeners[0].name, "submission");
	assert_int_equal(port_of(&c->listeners[0].address), 587);
	assert_int_equal(c->listeners[0].tls, CONF_TLS_STARTTLS);
	assert_int_equal(c->listeners[0].auth, CONF_AUTH_REQUIRED);
	assert_int_equal(c->listeners[0].max_message_size, 10 * 1024 * 1024);
	assert_int_equal(c->listeners[0].max_recipients, 50);
	assert_int_equal(c->listeners[0].max_connections, 200);
	assert_int_equal(c->listeners[0].max_connections_per_ip, 5);
	assert_int_equal(c->listeners[0].timeout, 30);
	assert_int_equal(c->listeners[0].data_timeout, 3600);
	assert_string_equal(c->listeners[1].name, "smtps");
	assert_int_equal(c->listeners[1].address.ss.ss_family, AF_INET6);
	assert_int_equal(c->listeners[1].address.len, sizeof(struct sockaddr_in6));
	assert_int_equal(port_of(&c->listeners[1].address), 465);
	assert_int_equal(c->listeners[1].tls, CONF_TLS_IMPLICIT);
	assert_int_equal(c->listeners[1].auth, CONF_AUTH_OPTIONAL);
	assert_int_equal(c->listeners[1].max_message_size, 25 * 1024 * 1024);

	assert_string_equal(c->tls_cert, cert);
	assert_string_equal(c->tls_key, key);
	assert_int_equal(c->n_trusted_networks, 4);
	assert_int_equal(c->trusted_networks[3].prefix, 32);
	assert_int_equal(c->queue_lifetime, 2 * 86400);
	assert_int_equal(c->n_retry, 3);
	assert_int_equal(c->retry[0], 30);
	assert_int_equal(c->retry[2], 3600);
	assert_string_equal(c->smarthost, "smtp.example.net:587");
	assert_string_equal(c->smarthost_auth, "me:secret:with:colons");
	assert_int_equal(c->outbound_tls, CONF_OUT_TLS_REQUIRED);
	assert_int_equal(c->n_dns_servers, 2);
	assert_string_equal(c->dns_servers[0].text, "127.0.0.1:5353");
	assert_int_equal(port_of(&c->dns_servers[0]), 5353);
	assert_int_equal(c->dns_servers[1].ss.ss_family, AF_INET6);
	assert_int_equal(c->mx_port, 2525);

	assert_int_equal(c->n_domains, 3);
	assert_string_equal(c->domains[0].name, "*");
	assert_int_equal(c->domains[0].max_connections, 10);
	assert_int_equal(c->domains[0].max_messages_per_connection, 100);
	d = conf_domain_for(c, "example.com");
	assert_string_equal(d->name, "example.com");
	assert_int_equal(d->max_messages_per_connection, 7);
	assert_int_equal(d->max_connections, 10); /* from [domain.*] */
	assert_int_equal(d->max_rate, 100);
	assert_int_equal(d->max_rate_period, 60);
	d = conf_domain_for(c, "GMAIL.com.");
	assert_string_equal(d->name, "gmail.com");
	assert_int_equal(d->max_rate, 5);
	assert_int_equal(d->max_rate_period, 1);
	assert_int_equal(d->max_connections, 10);
	assert_ptr_equal(conf_domain_for(c, "mail.example.com"), &c->domains[0]);
	assert_ptr_equal(conf_domain_for(c, "example.co"), &c->domains[0]);

	assert_string_equal(c->bounces_domain, "bounces.example.com");
	assert_string_equal(c->http_address.text, "[::1]:8080");
	assert_string_equal(c->http_public_url, "https://relay.example.com");
	assert_string_equal(c->cluster_postgres, "postgresql://posthorn@db/posthorn");
	assert_string_equal(c->cluster_redis, "redis://127.0.0.1:6379");

	assert_int_equal(trusted(c, "10.200.3.4"), 1);
	assert_int_equal(trusted(c, "127.0.0.1"), 0); /* the list replaced the default */
	assert_int_equal(trusted(c, "203.0.113.7"), 1);
	assert_int_equal(trusted(c, "203.0.113.8"), 0);
	conf_free(c);
	free(text);
	free(cert);
	free(key);
}

/* ---- bad values: the key, the expected form and the right line ---------- */

struct bad_case {
	const char *section;
	const char *line;
	const char *want;
};

static const struct bad_case BAD[] = {
    {"server", "min_free_space = 10x", "min_free_space in [server]: expected a size such as 25m"},
    {"server", "min_free_space = -1", "expected a size"},
    {"server", "min_free_space = 99999999999g", "expected a size"},
    {"listener.a", "timeout = 5 minutes",
     "timeout in [listener.a]: expected a duration such as 5m"},
    {"listener.a", "timeout = 0", "timeout in [listener.a]: must be at least 1, got '0'"},
    {"listener.a", "max_recipients = ten",
     "max_recipients in [listener.a]: expected a whole number"},
    {"listener.a", "max_recipients = 1.5", "expected a whole number, got '1.5'"},
    {"relay", "mx_port = 65536", "mx_port in [relay]: must be between 1 and 65535"},
    {"listener.a", "tls = ssl",
     "tls in [listener.a]: expected one of none, starttls, implicit, got 'ssl'"},
    {"listener.a", "auth = yes", "expected one of required, optional, off"},
    {"relay", "outbound_tls = Required", "expected one of opportunistic, required"},
    {"http", "address = localhost:8025", "address in [http]: 'localhost' is not an IP address"},
    {"http", "address = 127.0.0.1", "no port (expected IP:port such as 127.0.0.1:25)"},
    {"http", "address = 127.0.0.1:0", "the port must be a number from 1 to 65535"},
    {"http", "address = ::1:25", "an IPv6 address goes in brackets, as in [::1]:25"},
    {"http", "address = [::1]", "no port after the ']'"},
    {"http", "address =", "address in [http]: empty (expected IP:port"},
    {"relay", "dns_servers = 127.0.0.1:53, 8.8.8.8", "dns_servers in [relay]: '8.8.8.8': no port"},
    {"relay", "dns_servers = 127.0.0.1:53,",
     "dns_servers in [relay]: expected comma-separated numeric addresses"},
    {"relay", "trusted_networks = 10.0.0.0/33",
     "trusted_networks in [relay]: '10.0.0.0/33': the prefix must be a number from 0 to 32"},
    {"relay", "trusted_networks = 10.1.2.3/8", "'10.1.2.3/8' has bits set beyond its /8 prefix"},
    {"relay", "trusted_networks = fd00::1/8", "has bits set beyond its /8 prefix"},
    {"relay", "trusted_networks = example.com", "'example.com' is not an IP address"},
    {"relay", "retry = 1m, soon", "retry in [relay]: 'soon' is not a duration"},
    {"relay", "retry = 1m, 0", "retry in [relay]: must be at least 1"},
    {"relay", "retry =", "retry in [relay]: needs at least one value"},
    {"domain.*", "max_rate = 3000", "max_rate in [domain.*]: expected a rate such as 3000/h"},
    {"domain.*", "max_rate = 3000/w", "expected a rate"},
    {"domain.*", "max_rate = 0/h", "max_rate in [domain.*]: must be at least 1"},
    {"domain.*", "max_rate = 10/hour", "expected a rate"},
    {"server", "hostname = bad host", "hostname in [server]: expected a domain name"},
    {"server", "data_dir =", "data_dir in [server]: must not be empty"},
    {"server", "user = no-such-user-posthorn-test", "user in [server]: no such user"},
    {"relay", "smarthost = smtp.example.net:0",
     "smarthost in [relay]: expected host, host:port, [host] or [host]:port (port: 1 to 65535)"},
    {"relay", "smarthost = [smtp.example.net", "expected host, host:port, [host] or [host]:port"},
    {"relay", "smarthost = [smtp.example.net]x", "expected host, host:port"},
    {"relay", "smarthost = bad_host:25", "(host: an IP address or a domain name)"},
    {"relay", "smarthost = []:25", "expected host, host:port"},
    {"relay", "smarthost = 2001:db8::zz", "(host: an IP address or a domain name)"},
    {"relay", "smarthost_tls = maybe", "smarthost_tls in [relay]"},
    {"http", "public_url = relay.example.com", "public_url in [http]: expected a URL"},
    {"cluster", "postgres = host=db",
     "postgres in [cluster]: expected a URL starting with postgresql://"},
    /* a URL's password is never quoted back */
    {"cluster", "redis = redis://:s3/cr@t@127.0.0.1:6379", "got 'redis://:****@127.0.0.1:6379'"},
    {"cluster", "redis = rediss://u:hunter2@cache", "got 'rediss://u:****@cache'"},
    {"cluster", "redis = redis://hunter2@cache", "got 'redis://****@cache'"},
    {"cluster", "postgres = mysql://posthorn:hunter2@127.0.0.1:1/posthorn",
     "got 'mysql://posthorn:****@127.0.0.1:1/posthorn'"},
    {"cluster", "redis = redis://posthorn:hunter2", "got 'redis://posthorn:****'"},
    {"cluster", "postgres = postgresql://posthorn:hunter2", "got 'postgresql://posthorn:****'"},
    {"cluster", "redis = posthorn:hunter2@cache", "got 'posthorn:****@cache'"},
    {"cluster", "redis = 127.0.0.1:6379", "redis in [cluster]: expected a URL"},
    {"cluster", "redis = rediss://:pw@cache",
     "redis in [cluster]: rediss:// (TLS) is not supported"},
    {"cluster", "redis = redis://posthorn@cache",
     "redis in [cluster]: expected [USER]:PASSWORD@ before the host"},
    {"bounces", "domain = bounces@example.com", "domain in [bounces]: expected a domain name"},
    {"quota", "hour = -1", "hour in [quota]"},
    {"quota", "day = lots", "day in [quota]"},
    {"reputation", "max_bounce_rate = 5", "a percentage such as 5% or 0.1%"},
    {"reputation", "max_bounce_rate = 101%", "must be between 0% and 100%"},
    {"reputation", "max_complaint_rate = 0.12345%", "max_complaint_rate in [reputation]"},
    {"reputation", "max_complaint_rate = .5%", "max_complaint_rate in [reputation]"},
    {"reputation", "max_complaint_rate = 1.%", "max_complaint_rate in [reputation]"},
    {"reputation", "window = 30s", "window in [reputation]: must be at least 60"},
    {"reputation", "min_volume = 0", "min_volume in [reputation]: must be at least 1"},
    {"server", "log = file", "log in [server]: expected one of stderr, syslog"},
    {"server", "log_format = xml", "log_format in [server]: expected one of text, json"},
    {"server", "log_level = warn",
     "log_level in [server]: expected one of debug, info, warning, error"},
};

/* [quota] and [reputation]: defaults, and percentages in parts per million. */
static void test_deliverability_keys(void **state)
{
	struct conf *c = load_ok("[server]\n");

	assert_int_equal(c->quota_hour, 0);
	assert_int_equal(c->quota_day, 0);
	assert_int_equal(c->rep_window, 86400);
	assert_int_equal(c->rep_max_bounce_ppm, 50000);
	assert_int_equal(c->rep_max_complaint_ppm, 1000);
	assert_int_equal(c->rep_min_volume, 100);
	conf_free(c);
	c = load_ok("[quota]\nhour = 100\nday = 1000\n[reputation]\nwindow = 1h\n"
	            "max_bounce_rate = 12.5 %\nmax_complaint_rate = 0.0001%\nmin_volume = 5\n");
	assert_int_equal(c->quota_hour, 100);
	assert_int_equal(c->quota_day, 1000);
	assert_int_equal(c->rep_window, 3600);
	assert_int_equal(c->rep_max_bounce_ppm, 125000);
	assert_int_equal(c->rep_max_complaint_ppm, 1);
	assert_int_equal(c->rep_min_volume, 5);
	conf_free(c);
	c = load_ok("[reputation]\nmax_bounce_rate = 100%\nmax_complaint_rate = 0%\n");
	assert_int_equal(c->rep_max_bounce_ppm, 1000000);
	assert_int_equal(c->rep_max_complaint_ppm, 0);
	conf_free(c);
}

static void test_bad_values(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(BAD); i++) {
		/* The bad line is line 3; a listener also needs its address. */
		char *text = xasprintf("[%s]\n# comment\n%s\n%s", BAD[i].section, BAD[i].line,
		                       strncmp(BAD[i].section, "listener.", 9) == 0
		                           ? "address = 127.0.0.1:2525\n"
		                           : "");
		expect_one_error(text, 3, BAD[i].want);
		free(text);
	}
}

/* Every form of SPEC 2: host, host:port, [host], [host]:port, addresses. */
static void test_parse_hostport(void **state)
{
	static const struct {
		const char *text, *host;
		uint16_t port;
		int is_ip;
	} ok[] = {
	    {"smtp.example.net", "smtp.example.net", 25, 0},
	    {"smtp.example.net:587", "smtp.example.net", 587, 0},
	    {"[smtp.example.net]", "smtp.example.net", 25, 0},
	    {"[localhost]:2527", "localhost", 2527, 0},
	    {"192.0.2.1", "192.0.2.1", 25, 1},
	    {"192.0.2.1:2525", "192.0.2.1", 2525, 1},
	    {"[192.0.2.1]:465", "192.0.2.1", 465, 1},
	    {"2001:db8::1", "2001:db8::1", 25, 1},
	    {"[2001:db8::1]", "2001:db8::1", 25, 1},
	    {"[2001:db8::1]:587", "2001:db8::1", 587, 1},
	    {"[IPv6:2001:db8::1]:587", "2001:db8::1", 587, 1},
	};
	struct conf_hostport hp;

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		memset(&hp, 0, sizeof(hp));
		assert_null(conf_parse_hostport(ok[i].text, 25, &hp));
		assert_string_equal(hp.host, ok[i].host);
		assert_int_equal(hp.port, ok[i].port);
		assert_int_equal(hp.is_ip, ok[i].is_ip);
		free(hp.host);
	}
	memset(&hp, 0, sizeof(hp));
	assert_non_null(conf_parse_hostport("a.example:", 25, &hp));
	assert_non_null(conf_parse_hostport("", 25, &hp));
	assert_non_null(conf_parse_hostport("[a.example]:", 25, &hp));
	assert_null(hp.host); /* untouched on error */
}

static void test_smarthost_parsed(void **state)
{
	struct loaded l = load_text("[relay]\nsmarthost = [relay.example.net]:2527\n"
	                            "smarthost_tls = encrypt\n");

	assert_non_null(l.c);
	assert_string_equal(l.c->smarthost, "[relay.example.net]:2527");
	assert_string_equal(l.c->smarthost_at.host, "relay.example.net");
	assert_int_equal(l.c->smarthost_at.port, 2527);
	assert_int_equal(l.c->smarthost_tls, CONF_SMARTHOST_TLS_ENCRYPT);
	loaded_free(&l);
	l = load_text("[server]\n");
	assert_int_equal(l.c->smarthost_tls, CONF_SMARTHOST_TLS_VERIFY);
	assert_null(l.c->smarthost_at.host);
	loaded_free(&l);
}

static void test_bool(void **state)
{
	int v = -1;

	assert_int_equal(conf_parse_bool("yes", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(conf_parse_bool("OFF", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(conf_parse_bool("True", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(conf_parse_bool("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(conf_parse_bool("2", &v), -1);
	assert_int_equal(conf_parse_bool("", &v), -1);
}

/* ---- structure errors ------------------------------------------------------ */

static void test_unknown_key_and_section(void **state)
{
	struct loaded l = load_text("[server]\n"
	                            "hostnme = a.example\n"
	                            "[srever]\n"
	                            "anything = goes\n" /* not reported again */
	                            "[listener]\n"
	                            "[listener.bad name]\n"
	                            "[domain.bad_name]\n"
	                            "[tls]\n"
	                            "address = 127.0.0.1:25\n");

	assert_null(l.c);
	assert_error_at(&l, 2, "unknown key 'hostnme' in [server]");
	assert_error_at(&l, 3, "unknown section [srever]; known: [server], [listener.NAME]");
	assert_error_at(&l, 5, "unknown section [listener]");
	assert_error_at(&l, 6, "bad name 'bad name' in [listener.NAME]");
	assert_error_at(&l, 7, "bad name 'bad_name' in [domain.NAME]: expected a domain name or *");
	assert_error_at(&l, 9, "unknown key 'address' in [tls]");
	assert_int_equal(count_lines(l.errors), 6);
	loaded_free(&l);
}

static void test_duplicate_key(void **state)
{
	struct loaded l = load_text("[server]\n"
	                            "data_dir = /a\n"
	                            "data_dir = /b\n"
	                            "[relay]\n"
	                            "mx_port = 25\n"
	                            "[server]\n"
	                            "[relay]\n"
	                            "mx_port = 26\n"
	                            "[listener.x]\n"
	                            "address = 127.0.0.1:1\n"
	                            "[listener.y]\n"
	                            "address = 127.0.0.1:2\n"
	                            "[listener.x]\n"
	                            "address = 127.0.0.1:3\n"
	                            "[domain.*]\n"
	                            "max_rate = 1/s\n"
	                            "[domain.example.com]\n"
	                            "max_rate = 1/s\n" /* another instance: fine */
	                            "[domain.EXAMPLE.com]\n"
	                            "max_rate = 2/s\n");

	assert_null(l.c);
	assert_error_at(&l, 3, "duplicate key 'data_dir' in [server] (first set on line 2)");
	assert_error_at(&l, 8, "duplicate key 'mx_port' in [relay] (first set on line 5)");
	assert_error_at(&l, 14, "duplicate key 'address' in [listener.x] (first set on line 10)");
	assert_error_at(&l, 20,
	                "duplicate key 'max_rate' in [domain.EXAMPLE.com] (first set on line 18)");
	assert_int_equal(count_lines(l.errors), 4);
	loaded_free(&l);
}

static void test_syntax_errors(void **state)
{
	struct loaded l = load_text("mx_port = 25\n"
	                            "[relay\n"
	                            "mx_port = 1\n" /* under a bad header: quiet */
	                            "[relay] junk\n"
	                            "[server]\n"
	                            "just some words\n"
	                            "  indented = 1\n"
	                            "= value\n"
	                            "hostname = ok.example\n");

	assert_null(l.c);
	assert_error_at(&l, 1, "'mx_port' before any [section]");
	assert_error_at(&l, 2, "section header without ']'");
	assert_error_at(&l, 4, "unexpected text after ']'");
	assert_error_at(&l, 6, "expected 'key = value', '[section]' or a comment");
	assert_error_at(&l, 7, "unknown key 'indented' in [server]");
	assert_error_at(&l, 8, "unknown key '' in [server]");
	assert_int_equal(count_lines(l.errors), 6);
	loaded_free(&l);
}

static void test_many_errors(void **state)
{
	struct loaded l = load_text("[server]\n"
	                            "min_free_space = lots\n"
	                            "[relay]\n"
	                            "mx_port = 0\n"
	                            "retry = never\n"
	                            "[nope]\n"
	                            "[listener.a]\n"
	                            "tls = starttls\n"
	                            "[domain.*]\n"
	                            "max_rate = fast\n");

	assert_null(l.c);
	assert_error_at(&l, 2, "min_free_space");
	assert_error_at(&l, 4, "mx_port");
	assert_error_at(&l, 5, "retry");
	assert_error_at(&l, 6, "unknown section [nope]");
	assert_error_at(&l, 7, "[listener.a] needs an address");
	assert_error_at(&l, 8, "tls = starttls in [listener.a] needs [tls] cert and key");
	assert_error_at(&l, 10, "max_rate");
	assert_int_equal(count_lines(l.errors), 7);
	loaded_free(&l);
}

static void test_comments_and_line_endings(void **state)
{
	/* BOM, CRLF, inline comments with ; and #, a value holding # and ;. */
	struct conf *c = load_ok("\xEF\xBB\xBF[relay]\r\n"
	                         "; comment\r\n"
	                         "# comment\r\n"
	                         "mx_port = 2525 ; inline\r\n"
	                         "smarthost_auth = u:p#w;x # inline\r\n"
	                         "smarthost = [2001:db8::1]:25\r\n"
	                         "  [ server ]  # spaced header\r\n"
	                         "hostname = a.example\n");

	assert_int_equal(c->mx_port, 2525);
	assert_string_equal(c->smarthost_auth, "u:p#w;x");
	assert_string_equal(c->hostname, "a.example");
	conf_free(c);
}

static void test_long_section_name(void **state)
{
	/* inih's own section buffer holds 49 bytes; ours holds any length. */
	const char *name = "a-rather-long-subdomain-name.with-several-labels.example.com";
	char *text = xasprintf("[domain.%s]\nmax_connections = 3\n", name);
	struct conf *c = load_ok(text);

	assert_true(strlen(name) > 50);
	assert_int_equal(c->n_domains, 2);
	assert_string_equal(c->domains[1].name, name);
	assert_int_equal(conf_domain_for(c, name)->max_connections, 3);
	conf_free(c);
	free(text);
}

static void test_overlong_line(void **state)
{
	struct buf b;
	struct loaded l;
	struct conf *c;

	/* A line of exactly CONF_MAX_LINE characters is fine. */
	buf_init(&b);
	buf_puts(&b, "[relay]\n;");
	for (int i = 1; i < CONF_MAX_LINE; i++)
		buf_puts(&b, "x");
	buf_puts(&b, "\r\nmx_port = 26\n");
	c = load_ok(b.data);
	assert_int_equal(c->mx_port, 26);
	conf_free(c);

	/* One more is an error on its line, and the next lines keep their numbers. */
	buf_reset(&b);
	buf_puts(&b, "[relay]\nsmarthost = a");
	for (int i = 0; i < CONF_MAX_LINE; i++)
		buf_puts(&b, "b");
	buf_puts(&b, ".example:25\nmx_port = 0\n");
	l = load_text(b.data);
	assert_null(l.c);
	assert_error_at(&l, 2, "line longer than 8192 characters");
	assert_error_at(&l, 3, "mx_port in [relay]: must be between 1 and 65535");
	assert_int_equal(count_lines(l.errors), 2);
	loaded_free(&l);
	buf_free(&b);
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[relay]\nmx_port = 2\0 5\nretry = 1m\n";
	struct loaded l;

	l.path = write_file(text, sizeof(text) - 1);
	l.c = conf_load(l.path, &l.errors);
	assert_null(l.c);
	assert_error_at(&l, 2, "line contains a NUL byte");
	assert_int_equal(count_lines(l.errors), 1);
	loaded_free(&l);
}

static void test_missing_file(void **state)
{
	char *errors = NULL;
	char *path = xasprintf("%s/does-not-exist.ini", tmpdir);

	assert_null(conf_load(path, &errors));
	assert_non_null(errors);
	assert_non_null(strstr(errors, "does-not-exist.ini: cannot open: No such file"));
	free(errors);
	free(path);
	assert_null(conf_load(tmpdir, NULL)); /* a directory; errors may be NULL */
}

/* ---- checks across keys ------------------------------------------------------- */

static void test_tls_checks(void **state)
{
	char *cert = write_file("c", 1);
	char *text;

	expect_one_error("[listener.a]\naddress = 127.0.0.1:2525\ntls = implicit\n", 3,
	                 "tls = implicit in [listener.a] needs [tls] cert and key");
	text = xasprintf("[tls]\ncert = %s\nkey = %s/missing.pem\n", cert, tmpdir);
	expect_one_error(text, 3, "key in [tls]: cannot read '");
	free(text);
	text = xasprintf("[tls]\n\ncert = %s\n", cert);
	expect_one_error(text, 3, "[tls] cert is set but key is not");
	free(text);
	expect_one_error("[relay]\nsmarthost_auth = a:b\n", 2,
	                 "smarthost_auth in [relay] is set but smarthost is not");
	expect_one_error("[relay]\nsmarthost = relay.example:587\nsmarthost_tls = none\n"
	                 "smarthost_auth = a:b\n",
	                 4, "smarthost_auth in [relay] needs smarthost_tls = verify (or encrypt)");
	free(cert);
}

static void test_listener_checks(void **state)
{
	struct loaded l = load_text("[listener.a]\n"
	                            "address = 127.0.0.1:2525\n"
	                            "[listener.b]\n"
	                            "auth = off\n"
	                            "[listener.c]\n"
	                            "address = 127.0.0.1:2525\n"
	                            "[listener.d]\n"
	                            "address = [::1]:2525\n"
	                            "[listener.e]\n"
	                            "address = [0:0:0:0:0:0:0:1]:2525\n");

	assert_null(l.c);
	assert_error_at(&l, 3, "[listener.b] needs an address");
	assert_error_at(&l, 6,
	                "address 127.0.0.1:2525 of [listener.c] is already used by [listener.a]");
	assert_error_at(&l, 10, "of [listener.e] is already used by [listener.d]");
	assert_int_equal(count_lines(l.errors), 3);
	loaded_free(&l);
}

/* ---- networks and addresses ---------------------------------------------------- */

static void test_trusted_networks(void **state)
{
	struct conf *c = conf_load(NULL, NULL);
	struct sockaddr_un sun;

	assert_non_null(c);
	assert_int_equal(trusted(c, "127.0.0.1"), 1);
	assert_int_equal(trusted(c, "127.255.255.254"), 1);
	assert_int_equal(trusted(c, "128.0.0.1"), 0);
	assert_int_equal(trusted(c, "10.0.0.1"), 0);
	assert_int_equal(trusted(c, "::1"), 1);
	assert_int_equal(trusted(c, "::2"), 0);
	assert_int_equal(trusted(c, "::ffff:127.0.0.1"), 1); /* v4-mapped */
	assert_int_equal(trusted(c, "::ffff:10.0.0.1"), 0);
	assert_int_equal(trusted(c, "::127.0.0.1"), 0); /* v4-compatible is not mapped */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_int_equal(conf_is_trusted(c, (struct sockaddr *)&sun), 0);
	conf_free(c);

	c = load_ok("[relay]\ntrusted_networks = 172.16.0.0/12, 2001:db8:8000::/33, 0.0.0.0/0\n");
	assert_int_equal(c->trusted_networks[0].family, AF_INET);
	assert_int_equal(c->trusted_networks[0].prefix, 12);
	assert_int_equal(
	    conf_net_contains(&c->trusted_networks[0], (void *)&(struct sockaddr_storage){0}), 0);
	{
		struct sockaddr_storage in = sa_of("172.31.255.255"), out = sa_of("172.32.0.0");
		struct sockaddr_storage m_in = sa_of("::ffff:172.16.0.1");
		struct sockaddr_storage v6_in = sa_of("2001:db8:ffff::1"),
		                        v6_out = sa_of("2001:db8:7fff::1");
		assert_int_equal(conf_net_contains(&c->trusted_networks[0], (struct sockaddr *)&in),
		                 1);
		assert_int_equal(
		    conf_net_contains(&c->trusted_networks[0], (struct sockaddr *)&out), 0);
		assert_int_equal(
		    conf_net_contains(&c->trusted_networks[0], (struct sockaddr *)&m_in), 1);
		assert_int_equal(
		    conf_net_contains(&c->trusted_networks[1], (struct sockaddr *)&v6_in), 1);
		assert_int_equal(
		    conf_net_contains(&c->trusted_networks[1], (struct sockaddr *)&v6_out), 0);
		assert_int_equal(conf_net_contains(&c->trusted_networks[1], (struct sockaddr *)&in),
		                 0);
	}
	/* 0.0.0.0/0 holds every IPv4 client, mapped ones too, and no IPv6 one. */
	assert_int_equal(trusted(c, "8.8.8.8"), 1);
	assert_int_equal(trusted(c, "::ffff:8.8.8.8"), 1);
	assert_int_equal(trusted(c, "2001:4860::8888"), 0);
	conf_free(c);

	c = load_ok("[relay]\ntrusted_networks =\n");
	assert_int_equal(c->n_trusted_networks, 0);
	assert_int_equal(trusted(c, "127.0.0.1"), 0);
	conf_free(c);
}

static void test_parse_addr(void **state)
{
	static const char *const good[] = {"1.2.3.4:25", "0.0.0.0:65535", "[::]:1",
	                                   "[2001:db8::1]:587", "[::ffff:1.2.3.4]:25"};
	static const char *const bad[][2] = {
	    {"", "empty"},
	    {"1.2.3.4", "no port"},
	    {"1.2.3.4:", "the port must be"},
	    {":25", "no IP address before the port"},
	    {"1.2.3:25", "'1.2.3' is not an IP address"},
	    {"1.2.3.4:65536", "the port must be a number from 1 to 65535"},
	    {"1.2.3.4:0", "the port must be"},
	    {"1.2.3.4:-1", "the port must be"},
	    {"[::1]", "no port after the ']'"},
	    {"[::1:25", "no closing ']'"},
	    {"::1:25", "an IPv6 address goes in brackets"},
	    {"[1.2.3.4]:25", "brackets are for IPv6"},
	    {"host:25", "'host' is not an IP address"},
	    {"[host]:25", "'host' is not an IP address"},
	    {"[::1]:25x", "the port must be"},
	    {"1.2.3.4:25 ", "the port must be"}};
	struct conf_addr a;
	struct buf why;

	buf_init(&why);
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		if (conf_parse_addr(good[i], &a, &why) != NULL)
			fail_msg("rejected %s", good[i]);
		assert_string_equal(a.text, good[i]);
		free(a.text);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *err;

		buf_reset(&why);
		if (!(err = conf_parse_addr(bad[i][0], &a, &why)))
			fail_msg("accepted '%s'", bad[i][0]);
		if (!strstr(err, bad[i][1]))
			fail_msg("'%s': said '%s', not '%s'", bad[i][0], err, bad[i][1]);
	}
	buf_free(&why);
}

/* ---- generated documents -------------------------------------------------------- */

static void test_example_loads(void **state)
{
	char *path = xasprintf("%s/posthorn.conf.example", tmpdir);
	FILE *f = fopen(path, "w");
	char *errors = NULL;
	struct conf *c;

	assert_non_null(f);
	conf_write_doc(CONF_DOC_EXAMPLE, f);
	assert_int_equal(fclose(f), 0);
	c = conf_load(path, &errors);
	if (errors)
		fail_msg("the example does not load:\n%s", errors);
	assert_non_null(c);
	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "local");
	assert_int_equal(c->listeners[0].auth, CONF_AUTH_OPTIONAL);
	assert_string_equal(c->data_dir, "/var/lib/posthorn");
	assert_int_equal(c->n_domains, 1);
	assert_int_equal(c->domains[0].max_rate, 0);
	assert_int_equal(c->n_retry, 7);
	conf_free(c);
	free(path);
}

/* ---- the log keys, conf_line, conf_diff -------------------------------------- */

static void test_log_keys(void **state)
{
	struct conf *c = load_ok("[server]\nhostname = a.test\n");

	assert_int_equal(c->log, CONF_LOG_STDERR);
	assert_int_equal(c->log_format, CONF_LOG_TEXT);
	assert_int_equal(c->log_level, CONF_LOG_INFO);
	conf_free(c);
	c = load_ok("[server]\nlog = syslog\nlog_format = json\nlog_level = debug\n");
	assert_int_equal(c->log, CONF_LOG_SYSLOG);
	assert_int_equal(c->log_format, CONF_LOG_JSON);
	assert_int_equal(c->log_level, CONF_LOG_DEBUG);
	conf_free(c);
}

static void test_conf_line(void **state)
{
	struct conf *c = load_ok("[server]\n"                        /* 1 */
	                         "hostname = a.test\n"               /* 2 */
	                         "\n"                                /* 3 */
	                         "[listener.app]\n"                  /* 4 */
	                         "address = 127.0.0.1:2600\n"        /* 5 */
	                         "auth = required\n"                 /* 6 */
	                         "[relay]\n"                         /* 7 */
	                         "trusted_networks = 10.0.0.0/8\n"); /* 8 */
	const char *file;

	assert_int_equal(conf_line(c, "server", NULL, "hostname", &file), 2);
	assert_string_equal(file, c->file);
	assert_int_equal(conf_line(c, "relay", NULL, "trusted_networks", &file), 8);
	assert_int_equal(conf_line(c, "listener", "app", "auth", &file), 6);
	/* defaulted: the section header; unknown: 0 */
	assert_int_equal(conf_line(c, "listener", "app", "tls", &file), 4);
	assert_int_equal(conf_line(c, "server", NULL, "data_dir", &file), 0);
	assert_int_equal(conf_line(c, "listener", "nope", "auth", &file), 0);
	assert_int_equal(conf_line(c, "server", NULL, "no_such_key", &file), 0);
	conf_free(c);
	/* the listener of the embedded default comes from no file */
	c = load_ok("[server]\nhostname = a.test\n");
	conf_line(c, "listener", "default", "auth", &file);
	assert_string_equal(file, "<default>");
	conf_free(c);
}

static void collect(void *arg, const char *what)
{
	struct buf *b = arg;

	buf_printf(b, "%s;", what);
}

static char *diff_of(const char *a, const char *b)
{
	struct conf *ca = load_ok(a), *cb = load_ok(b);
	struct buf out;
	size_t n;

	buf_init(&out);
	buf_puts(&out, "");
	n = conf_diff(ca, cb, collect, &out);
	for (const char *p = out.data; *p; p++)
		n -= *p == ';';
	assert_int_equal(n, 0); /* the count returned is the number reported */
	conf_free(ca);
	conf_free(cb);
	return out.data;
}

static void test_conf_diff(void **state)
{
	const char *base = "[server]\nhostname = a.test\n[listener.x]\naddress = 127.0.0.1:2600\n"
	                   "[relay]\nretry = 1m, 5m\ntrusted_networks = 10.0.0.0/8\n"
	                   "[domain.example.com]\nmax_rate = 10/m\n";
	char *d;

	d = diff_of(base, base);
	assert_string_equal(d, "");
	free(d);
	d = diff_of(base, "[server]\nhostname = b.test\nlog_level = error\n"
	                  "[listener.x]\naddress = 127.0.0.1:2601\n[listener.y]\n"
	                  "address = 127.0.0.1:2602\n[relay]\nretry = 1m, 6m\n"
	                  "trusted_networks = 10.0.0.0/9\nsmarthost = relay.test:25\n"
	                  "[domain.example.com]\nmax_rate = 10/h\n[domain.other.test]\n");
	assert_string_equal(d, "server.hostname;server.log_level;relay.trusted_networks;"
	                       "relay.retry;relay.smarthost;listener.x.address;listener.y;"
	                       "domain.example.com.max_rate;domain.other.test;");
	free(d);
}

static void test_markdown(void **state)
{
	char *md = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&md, &len);

	assert_non_null(f);
	conf_write_doc(CONF_DOC_MARKDOWN, f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(strstr(md, "# Posthorn configuration\n"));
	assert_non_null(strstr(md, "## [listener.NAME]\n"));
	assert_non_null(strstr(md, "| `min_free_space` | `100m` |"));
	assert_non_null(strstr(md, "| `address` | *(required)* |"));
	assert_non_null(strstr(md, "none \\| starttls \\| implicit"));
	assert_non_null(strstr(md, "| `max_rate` | `unlimited` |"));
	free(md);
}

/* The outbound TLS policy keys and [pool.NAME]: defaults, values, a
 * domain's pool (inherited from [domain.*]), and each mistake at its line. */
static void test_tls_policy_and_pools(void **state)
{
	struct conf *c = load_ok("[server]\nhostname = h.test\n");
	const struct conf_pool *p;

	(void)state;
	assert_int_equal(c->mta_sts_port, 443);
	assert_int_equal(c->dnssec, CONF_DNSSEC_OFF);
	assert_int_equal(c->tls_rpt_interval, 86400);
	assert_int_equal(c->n_pools, 0);
	assert_null(c->domains[0].pool);
	conf_free(c);
	c = load_ok("[server]\nhostname = h.test\n[relay]\nmta_sts_port = 8443\n"
	            "dnssec = trust_ad\ntls_rpt_interval = 10s\n"
	            "[pool.mk-1]\nsource_addresses = 192.0.2.10, 2001:db8::10\n"
	            "ehlo_names = a.example.com, b.example.com\n"
	            "[domain.*]\npool = mk-1\n[domain.x.test]\nmax_connections = 2\n");
	assert_int_equal(c->mta_sts_port, 8443);
	assert_int_equal(c->dnssec, CONF_DNSSEC_TRUST_AD);
	assert_int_equal(c->tls_rpt_interval, 10);
	p = conf_pool_find(c, "mk-1");
	assert_non_null(p);
	assert_null(conf_pool_find(c, "mk"));
	assert_int_equal(p->n_source_addresses, 2);
	assert_int_equal(p->source_addresses[1].family, AF_INET6);
	assert_string_equal(p->ehlo_names[1], "b.example.com");
	assert_string_equal(conf_domain_for(c, "x.test")->pool, "mk-1"); /* inherited */
	conf_free(c);
	expect_one_error("[relay]\ndnssec = on\n", 2,
	                 "dnssec in [relay]: expected one of off, "
	                 "trust_ad");
	expect_one_error("[relay]\nmta_sts_port = 0\n", 2, "must be between 1 and 65535");
	expect_one_error("[pool.p]\nsource_addresses = 192.0.2.1, 192.0.2.2\n"
	                 "ehlo_names = a.test\n",
	                 3, "[pool.p] has 2 source_addresses but 1 ehlo_names");
	expect_one_error("[pool.p]\nehlo_names = a.test\n", 1,
	                 "[pool.p] needs source_addresses and ehlo_names");
	expect_one_error("[pool.p]\nsource_addresses = 10.0.0.0/8\nehlo_names = a.test\n", 2,
	                 "'10.0.0.0/8' is not an IP address");
	expect_one_error("[pool.p]\nsource_addresses = 192.0.2.1\nehlo_names = not a name\n", 3,
	                 "'not a name' is not a host name");
	expect_one_error("[domain.a.test]\npool = nope\n", 2,
	                 "pool in [domain.a.test]: no section [pool.nope]");
	expect_one_error("[domain.a.test]\npool = bad name\n", 2,
	                 "expected the NAME of a [pool.NAME] section");
	expect_one_error("[pool.b@d]\n", 1, "bad name 'b@d' in [pool.NAME]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_embedded_default),
	    cmocka_unit_test(test_file_defaults),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_deliverability_keys),
	    cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_unknown_key_and_section),
	    cmocka_unit_test(test_duplicate_key),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_many_errors),
	    cmocka_unit_test(test_comments_and_line_endings),
	    cmocka_unit_test(test_long_section_name),
	    cmocka_unit_test(test_overlong_line),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_tls_checks),
	    cmocka_unit_test(test_listener_checks),
	    cmocka_unit_test(test_trusted_networks),
	    cmocka_unit_test(test_parse_addr),
	    cmocka_unit_test(test_parse_hostport),
	    cmocka_unit_test(test_smarthost_parsed),
	    cmocka_unit_test(test_example_loads),
	    cmocka_unit_test(test_log_keys),
	    cmocka_unit_test(test_conf_line),
	    cmocka_unit_test(test_conf_diff),
	    cmocka_unit_test(test_markdown),
	    cmocka_unit_test(test_tls_policy_and_pools),
	};
	return cmocka_run_group_tests_name("conf", tests, group_setup, group_teardown);
}
