/*
 * conf: the configuration. One table (src/conf/conf.c) lists every key with
 * its section, type, default, check and documentation; the parser, the
 * checks, docs/config.md and posthorn.conf.example all come from it.
 * Modules receive the parsed struct conf; there are no configuration globals.
 *
 * A struct conf is immutable once loaded; SIGHUP loads a new one.
 * Optional string keys left empty are NULL; numbers are in bytes or seconds.
 * Derived defaults are filled in by conf_load: hostname (gethostname()),
 * http_public_url ("http://" + http address), the "default" listener when
 * the file has none, and [domain.NAME] keys omitted (from [domain.*]).
 */
#ifndef POSTHORN_CONF_H
#define POSTHORN_CONF_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

enum conf_tls_mode { CONF_TLS_NONE, CONF_TLS_STARTTLS, CONF_TLS_IMPLICIT };
enum conf_auth_mode { CONF_AUTH_REQUIRED, CONF_AUTH_OPTIONAL, CONF_AUTH_OFF };
enum conf_outbound_tls { CONF_OUT_TLS_OPPORTUNISTIC, CONF_OUT_TLS_REQUIRED };
enum conf_received { CONF_RECEIVED_FULL, CONF_RECEIVED_HIDE_CLIENT };
enum conf_smarthost_tls {
	CONF_SMARTHOST_TLS_VERIFY,
	CONF_SMARTHOST_TLS_ENCRYPT,
	CONF_SMARTHOST_TLS_NONE
};
/* off: answers are never taken as validated; trust_ad: queries ask for the
 * AD bit and answers with it count as DNSSEC-validated (DANE). */
enum conf_dnssec { CONF_DNSSEC_OFF, CONF_DNSSEC_TRUST_AD };

/* A next hop written as host, host:port, [host] or [host]:port (brackets
 * as in relayhost syntax; "[IPv6:...]" and a bare IPv6 address too). */
struct conf_hostport {
	char *host;    /* without brackets or "IPv6:"; NULL when not set */
	uint16_t port; /* the default when none was written */
	int is_ip;     /* host is an IPv4 or IPv6 address: used as is */
};
/* In the order of enum log_dest, log_format and log_level (log/log.h). */
enum conf_log { CONF_LOG_STDERR, CONF_LOG_SYSLOG };
enum conf_log_format { CONF_LOG_TEXT, CONF_LOG_JSON };
enum conf_log_level { CONF_LOG_DEBUG, CONF_LOG_INFO, CONF_LOG_WARNING, CONF_LOG_ERROR };

/* A parsed "host:port" / "[v6]:port" / "v4:port". */
struct conf_addr {
	char *text; /* as written */
	struct sockaddr_storage ss;
	socklen_t len;
};

/* One CIDR block of trusted_networks or blocked_destinations. */
struct conf_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

struct conf_listener {
	char *name; /* the NAME of [listener.NAME] */
	struct conf_addr address;
	enum conf_tls_mode tls;
	enum conf_auth_mode auth;
	uint64_t max_message_size; /* bytes */
	uint64_t max_recipients;
	uint64_t max_connections;         /* untrusted clients */
	uint64_t max_trusted_connections; /* clients in trusted_networks, apart */
	uint64_t max_connections_per_ip;  /* per address (IPv6: per /64), untrusted */
	uint64_t max_errors;              /* rejected commands before 421 and close */
	uint64_t timeout;                 /* seconds idle between commands */
	uint64_t data_timeout;            /* seconds for the whole DATA/BDAT phase */
	enum conf_received received_header;
};

struct conf_domain {
	char *name; /* destination domain, or "*" for the default */
	uint64_t max_connections;
	uint64_t max_messages_per_connection;
	uint64_t max_rate;        /* messages per rate_period */
	uint64_t max_rate_period; /* seconds: 1, 60, 3600 or 86400 */
	char *pool;               /* [pool.NAME] its mail leaves from, or NULL */
};

/* [pool.NAME]: source addresses for outbound connections, used in turn;
 * ehlo_names[i] is the EHLO name that goes with source_addresses[i]. */
struct conf_pool {
	char *name;
	struct conf_net *source_addresses; /* host addresses (prefix 32 or 128) */
	size_t n_source_addresses;
	char **ehlo_names;
	size_t n_ehlo_names; /* == n_source_addresses (checked at load) */
};

struct conf {
	char *file; /* path it was loaded from, or NULL for the embedded default */

	/* [server] */
	char *hostname;
	char *data_dir;
	char *user;
	uint64_t min_free_space; /* bytes; below this MAIL gets 452 4.3.1 */
	uint64_t drain_timeout;  /* seconds SIGTERM waits for transactions */
	enum conf_log log;
	enum conf_log_format log_format;
	enum conf_log_level log_level;

	/* [listener.NAME] */
	struct conf_listener *listeners;
	size_t n_listeners;

	/* [tls] */
	char *tls_cert;
	char *tls_key;
	char *tls_ca_file; /* extra trust anchors for outbound verification */

	/* [relay] */
	struct conf_net *trusted_networks;
	size_t n_trusted_networks;
	uint64_t queue_lifetime; /* seconds */
	uint64_t delay_warning;  /* seconds; 0 = no delay notices */
	uint64_t *retry;         /* seconds, at least one step */
	size_t n_retry;
	char *smarthost;                   /* as written, or NULL */
	struct conf_hostport smarthost_at; /* smarthost, parsed (port 25 by default) */
	char *smarthost_auth;
	enum conf_smarthost_tls smarthost_tls;
	enum conf_outbound_tls outbound_tls;
	struct conf_net *blocked_destinations; /* MX hosts and literals may not use these */
	size_t n_blocked_destinations;
	uint64_t max_hops; /* Received fields a message may carry, ours included */
	struct conf_addr *dns_servers;
	size_t n_dns_servers;
	uint64_t mx_port;
	uint64_t mta_sts_port;             /* port of the mta-sts.DOMAIN policy host (tests) */
	uint64_t mta_sts_refresh_interval; /* seconds between background refreshes */
	enum conf_dnssec dnssec;
	uint64_t tls_rpt_interval; /* seconds between TLS-RPT reports */

	/* [domain.NAME]; domains[0] is always "*" (explicit or defaulted) */
	struct conf_domain *domains;
	size_t n_domains;

	/* [pool.NAME] */
	struct conf_pool *pools;
	size_t n_pools;

	/* [quota]: messages (recipients) per window, 0 unlimited */
	uint64_t quota_hour;
	uint64_t quota_day;

	/* [reputation] */
	uint64_t rep_window;            /* seconds */
	uint64_t rep_max_bounce_ppm;    /* parts per million: 5% is 50000 */
	uint64_t rep_max_complaint_ppm; /* 0.1% is 1000 */
	uint64_t rep_min_volume;

	/* [dkim] */
	uint64_t dkim_rotation_grace; /* seconds */
	uint64_t dkim_check_interval; /* seconds */

	/* [bounces] */
	char *bounces_domain;

	/* [http] */
	int http_enabled; /* the file has an [http] section (the embedded default does) */
	struct conf_addr http_address;
	char *http_public_url;
	uint64_t http_max_request_size; /* bytes */
	uint64_t http_timeout;          /* seconds */
	uint64_t http_max_connections;

	/* [events] */
	uint64_t events_retention;       /* seconds; 0: for ever */
	uint64_t events_stats_retention; /* seconds; 0: for ever */
	uint64_t webhook_timeout;        /* seconds */
	uint64_t webhook_backoff;        /* seconds */
	uint64_t webhook_retry_for;      /* seconds */
	struct conf_net *webhook_blocked;
	size_t n_webhook_blocked;

	/* [cluster] */
	char *cluster_postgres;
	char *cluster_redis;
	uint64_t cluster_nodes; /* >= 1 */
	char *cluster_secret_key_file;
	uint64_t cluster_postgres_timeout; /* seconds a PostgreSQL answer may take */

	struct conf_lines *lines; /* private: where keys were set (conf_line()) */
};

/*
 * Load FILE, or the embedded default when file is NULL. On error returns
 * NULL and appends one line per problem to *errors ("FILE:LINE: message"),
 * a malloc'd string the caller frees. Every problem is reported, not just
 * the first.
 */
struct conf *conf_load(const char *file, char **errors);
void conf_free(struct conf *c);

/* The [domain.*] settings that apply to destination domain d. */
const struct conf_domain *conf_domain_for(const struct conf *c, const char *d);

/* The [pool.NAME] section named name, or NULL. */
const struct conf_pool *conf_pool_find(const struct conf *c, const char *name);

/* 1 if the address is inside trusted_networks. */
int conf_is_trusted(const struct conf *c, const struct sockaddr *sa);

/* 1 if sa is inside net. */
int conf_net_contains(const struct conf_net *net, const struct sockaddr *sa);

/* Parse "host:port", "[v6]:port"; numeric hosts only. Returns NULL, or
 * what is wrong with text (a constant, or why's text). */
struct buf;
const char *conf_parse_addr(const char *text, struct conf_addr *out, struct buf *why);

/* Parse a next hop (see struct conf_hostport); out->host is malloc'd.
 * Returns NULL, or why text is not one (and out is untouched). */
const char *conf_parse_hostport(const char *text, uint16_t default_port, struct conf_hostport *out);

/* yes/no, true/false, on/off, 1/0 (any case) -> 1 or 0. 0 ok, -1 bad. */
int conf_parse_bool(const char *s, int *out);

/*
 * Where a key was set, for messages about it: the file label and line of
 * key in [section] (listener or domain NAME for instanced sections, else
 * NULL). A key left to its default gives the line of its section header
 * (0 when there is none); *file is the file the section came from.
 */
int conf_line(const struct conf *c, const char *section, const char *name, const char *key,
              const char **file);

/*
 * Calls cb for each key whose value differs between a and b, named
 * "section.key", "listener.NAME.key" or "domain.NAME.key"; a listener or
 * domain section only one of them has is reported as "listener.NAME" or
 * "domain.NAME". Returns how many were reported.
 */
size_t conf_diff(const struct conf *a, const struct conf *b,
                 void (*cb)(void *arg, const char *what), void *arg);

/* Longest line accepted in a config file; a longer one is an error. */
#define CONF_MAX_LINE 8192

/* Documentation output, from the table (used by tools/gen-confdoc). */
enum conf_doc_format { CONF_DOC_MARKDOWN, CONF_DOC_EXAMPLE };
void conf_write_doc(enum conf_doc_format fmt, FILE *out);

/* The table itself, for other renderings (the man page): key i, or 0 when
 * i is past the last. def is NULL for a required key; example may be NULL. */
struct conf_doc_key {
	const char *section, *section_doc;
	int instanced; /* written [section.NAME] */
	const char *name, *def, *example, *doc;
};
int conf_doc_key(size_t i, struct conf_doc_key *out);

#endif
