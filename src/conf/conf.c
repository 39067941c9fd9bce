/*
 * conf: loads the INI configuration into a struct conf, from one table.
 *
 * KEYS[] below is the only list of configuration keys: section, name, type,
 * default (as text, parsed by the same code as file values), range or check,
 * and a one-line doc. Loading, defaults, validation, conf_free() and both
 * generated documents (docs/config.md, posthorn.conf.example) walk it, so a
 * key added there is parsed, checked, freed and documented at once.
 *
 * inih splits lines into key and value. Our own line reader feeds it, which
 * gives us what the Debian build of inih lacks: the line number of each
 * key, an error for overlong lines instead of silent truncation, section
 * names longer than inih's 50-byte buffer, and an error for every bad line
 * (inih reports only the first). Every problem is collected; none stops the
 * load early, so one check-config run shows them all.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <ini.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster_url.h"
#include "util/util.h"

/* The embedded default (SPEC §1): loopback only, data in the cwd. */
#define DEFAULT_LISTENER                                                                           \
	"[listener.default]\n"                                                                     \
	"address = 127.0.0.1:2525\n"                                                               \
	"tls = none\n"                                                                             \
	"auth = off\n"
static const char DEFAULT_CONF[] = "[server]\n"
                                   "data_dir = ./posthorn-data\n"
                                   "\n" DEFAULT_LISTENER "\n"
                                   "[http]\n";
static const char DEFAULT_LABEL[] = "<default>";

/* ---- the table ---------------------------------------------------------- */

enum sec_id {
	SEC_NONE = -2, /* before the first [section] */
	SEC_BAD = -1,  /* after a bad header: its keys are skipped quietly */
	SEC_SERVER,
	SEC_LISTENER,
	SEC_TLS,
	SEC_RELAY,
	SEC_DOMAIN,
	SEC_POOL,
	SEC_QUOTA,
	SEC_REPUTATION,
	SEC_DKIM,
	SEC_BOUNCES,
	SEC_HTTP,
	SEC_EVENTS,
	SEC_CLUSTER,
	N_SECS
};

struct section {
	const char *name;
	int instanced;       /* 1: written [name.INSTANCE] */
	const char *example; /* instance shown in posthorn.conf.example */
	const char *doc;
};

static const struct section SECTIONS[N_SECS] = {
    [SEC_SERVER] = {"server", 0, NULL, "The server itself."},
    [SEC_LISTENER] = {"listener", 1, "local",
                      "One section per SMTP listening address, named [listener.NAME] "
                      "(NAME: letters, digits, '-', '_'). With no listener section, "
                      "Posthorn listens on 127.0.0.1:2525 with tls = none and auth = off."},
    [SEC_TLS] = {"tls", 0, NULL,
                 "The certificate for listeners with tls = starttls or implicit; "
                 "read again on SIGHUP."},
    [SEC_RELAY] = {"relay", 0, NULL, "Who may relay, and how mail leaves."},
    [SEC_DOMAIN] = {"domain", 1, "*",
                    "Throttles per destination domain: [domain.NAME] for one domain "
                    "(exact name), [domain.*] for every other. Keys that a "
                    "[domain.NAME] section omits come from [domain.*]."},
    [SEC_POOL] = {"pool", 1, "marketing",
                  "Source addresses for outbound connections, named [pool.NAME] (NAME: "
                  "letters, digits, '-', '_'): a destination domain uses one with "
                  "[domain.X] pool = NAME, an account with posthorn user set ACCOUNT "
                  "--pool NAME (the account's pool wins). Connections take the addresses "
                  "in turn, each with its EHLO name; an address that cannot be bound is "
                  "skipped with a log line."},
    [SEC_QUOTA] = {"quota", 0, NULL,
                   "Default per-account quotas, counted per recipient in fixed UTC windows "
                   "(docs/deliverability.md); posthorn user add|set --quota-hour/--quota-day "
                   "overrides them per account."},
    [SEC_REPUTATION] = {"reputation", 0, NULL,
                        "The reputation guard: an account whose hard-bounce or complaint rate "
                        "over the window passes its threshold is paused until posthorn user "
                        "resume (docs/deliverability.md)."},
    [SEC_DKIM] = {"dkim", 0, NULL,
                  "DKIM signing keys (docs/dkim.md); the keys themselves are made with "
                  "posthorn dkim keygen."},
    [SEC_BOUNCES] = {"bounces", 0, NULL, "Asynchronous bounces and complaint reports."},
    [SEC_HTTP] = {"http", 0, NULL,
                  "The HTTP API, dashboard, tracking links and /metrics. A config file "
                  "without an [http] section runs no HTTP listener; the embedded default "
                  "has one on 127.0.0.1:8025."},
    [SEC_EVENTS] = {"events", 0, NULL,
                    "What happened to every message (GET /v1/events, /v1/messages, "
                    "/v1/stats) and the webhooks that are sent it; see docs/events.md."},
    [SEC_CLUSTER] = {"cluster", 0, NULL,
                     "Optional: several nodes sharing state. Both empty: one node on "
                     "SQLite and local state."},
};

enum key_type {
	T_STRING,
	T_SIZE,
	T_DURATION,
	T_COUNT,
	T_BOOL,
	T_ENUM,
	T_ADDR,
	T_ADDR_LIST,
	T_NET_LIST,
	T_DURATION_LIST,
	T_RATE,
	T_IP_LIST,
	T_NAME_LIST,
	T_PERCENT,
};

#define F_REQUIRED 1u /* no default: each section instance must set it */
#define F_NONEMPTY 2u /* an empty value is an error */

struct conf_key {
	enum sec_id sec;
	const char *name;
	enum key_type type;
	size_t off;               /* field in struct conf, conf_listener or conf_domain */
	size_t off2;              /* count of a list; period of a rate */
	const char *def;          /* default as text; NULL with F_REQUIRED */
	const char *example;      /* a sample value for the docs, or NULL */
	uint64_t min, max;        /* numeric range; max 0: no upper bound */
	const char *const *names; /* T_ENUM: value i is names[i] */
	const char *(*check)(const char *v); /* T_STRING: NULL or the problem */
	unsigned flags;
	const char *doc;
};

static const char *check_hostname(const char *v);
static const char *check_smarthost(const char *v);
static const char *check_userpass(const char *v);
static const char *check_user(const char *v);
static const char *check_http_url(const char *v);
static const char *check_postgres(const char *v);
static const char *check_redis(const char *v);
static const char *check_pool_name(const char *v);

static const char *const TLS_NAMES[] = {"none", "starttls", "implicit", NULL};
static const char *const AUTH_NAMES[] = {"required", "optional", "off", NULL};
static const char *const OUT_TLS_NAMES[] = {"opportunistic", "required", NULL};
static const char *const SMARTHOST_TLS_NAMES[] = {"verify", "encrypt", "none", NULL};
static const char *const RECEIVED_NAMES[] = {"full", "hide_client", NULL};
static const char *const DNSSEC_NAMES[] = {"off", "trust_ad", NULL};
static const char *const LOG_NAMES[] = {"stderr", "syslog", NULL};
static const char *const LOG_FORMAT_NAMES[] = {"text", "json", NULL};
static const char *const LOG_LEVEL_NAMES[] = {"debug", "info", "warning", "error", NULL};

/* The enum fields are stored through int *. */
_Static_assert(sizeof(enum conf_tls_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_auth_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_outbound_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_smarthost_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_received) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_dnssec) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_log) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_log_level) == sizeof(int), "enum size");

#define C(f) offsetof(struct conf, f)
#define L(f) offsetof(struct conf_listener, f)
#define D(f) offsetof(struct conf_domain, f)
#define P(f) offsetof(struct conf_pool, f)

static const struct conf_key KEYS[] = {
    {.sec = SEC_SERVER,
     .name = "hostname",
     .type = T_STRING,
     .off = C(hostname),
     .def = "",
     .example = "relay.example.com",
     .check = check_hostname,
     .doc = "EHLO name, Received header and Message-ID domain (empty: this machine's hostname)"},
    {.sec = SEC_SERVER,
     .name = "data_dir",
     .type = T_STRING,
     .off = C(data_dir),
     .def = "/var/lib/posthorn",
     .flags = F_NONEMPTY,
     .doc = "spool and database directory (the embedded default uses ./posthorn-data)"},
    {.sec = SEC_SERVER,
     .name = "user",
     .type = T_STRING,
     .off = C(user),
     .def = "",
     .example = "posthorn",
     .check = check_user,
     .doc = "when started as root, drop to this user after binding ports"},
    {.sec = SEC_SERVER,
     .name = "min_free_space",
     .type = T_SIZE,
     .off = C(min_free_space),
     .def = "100m",
     .doc = "with less free space on the data_dir file system, MAIL gets 452 4.3.1"},
    {.sec = SEC_SERVER,
     .name = "drain_timeout",
     .type = T_DURATION,
     .off = C(drain_timeout),
     .def = "30s",
     .min = 1,
     .doc = "on SIGTERM, how long transactions in progress may take to finish before the "
            "server exits anyway"},
    {.sec = SEC_SERVER,
     .name = "log",
     .type = T_ENUM,
     .off = C(log),
     .def = "stderr",
     .example = "syslog",
     .names = LOG_NAMES,
     .doc = "stderr | syslog: where log lines go; on stderr under systemd they reach the "
            "journal with their priority; syslog uses facility mail"},
    {.sec = SEC_SERVER,
     .name = "log_format",
     .type = T_ENUM,
     .off = C(log_format),
     .def = "text",
     .example = "json",
     .names = LOG_FORMAT_NAMES,
     .doc = "text | json: key=value lines, or one JSON object per line with the same "
            "fields plus time and level (docs/logging.md)"},
    {.sec = SEC_SERVER,
     .name = "log_level",
     .type = T_ENUM,
     .off = C(log_level),
     .def = "info",
     .example = "warning",
     .names = LOG_LEVEL_NAMES,
     .doc = "debug | info | warning | error: lines below this level are not written; "
            "SIGHUP applies a change"},

    {.sec = SEC_LISTENER,
     .name = "address",
     .type = T_ADDR,
     .off = L(address),
     .example = "127.0.0.1:2525",
     .flags = F_REQUIRED,
     .doc = "listening address, numeric: a.b.c.d:port or [v6]:port"},
    {.sec = SEC_LISTENER,
     .name = "tls",
     .type = T_ENUM,
     .off = L(tls),
     .def = "none",
     .example = "starttls",
     .names = TLS_NAMES,
     .doc = "none | starttls | implicit; starttls and implicit need [tls] cert and key"},
    {.sec = SEC_LISTENER,
     .name = "auth",
     .type = T_ENUM,
     .off = L(auth),
     .def = "optional",
     .example = "required",
     .names = AUTH_NAMES,
     .doc = "required: every client must AUTH; optional: AUTH or a trusted network may "
            "relay; off: AUTH is not offered, trusted networks only. AUTH is offered over "
            "TLS, and in clear only on tls = none to clients in trusted_networks (others: "
            "538 5.7.11)"},
    {.sec = SEC_LISTENER,
     .name = "max_message_size",
     .type = T_SIZE,
     .off = L(max_message_size),
     .def = "25m",
     .min = 1,
     .doc = "largest message accepted (advertised as SIZE); above it 552 5.3.4"},
    {.sec = SEC_LISTENER,
     .name = "max_recipients",
     .type = T_COUNT,
     .off = L(max_recipients),
     .def = "1000",
     .min = 1,
     .doc = "recipients per message; above it 452 4.5.3"},
    {.sec = SEC_LISTENER,
     .name = "max_connections",
     .type = T_COUNT,
     .off = L(max_connections),
     .def = "1000",
     .min = 1,
     .doc = "concurrent connections on this listener from clients outside "
            "trusted_networks; at 80 % of it the listener is under stress (see docs/smtp.md)"},
    {.sec = SEC_LISTENER,
     .name = "max_trusted_connections",
     .type = T_COUNT,
     .off = L(max_trusted_connections),
     .def = "200",
     .min = 1,
     .doc = "concurrent connections from trusted_networks, counted apart from "
            "max_connections, so a flood from elsewhere never locks the relay's own "
            "applications out"},
    {.sec = SEC_LISTENER,
     .name = "max_connections_per_ip",
     .type = T_COUNT,
     .off = L(max_connections_per_ip),
     .def = "20",
     .min = 1,
     .doc = "concurrent connections from one client address (an IPv6 client: from its "
            "/64); clients in trusted_networks are bounded by max_trusted_connections "
            "instead"},
    {.sec = SEC_LISTENER,
     .name = "timeout",
     .type = T_DURATION,
     .off = L(timeout),
     .def = "5m",
     .min = 1,
     .doc = "idle time allowed between commands"},
    {.sec = SEC_LISTENER,
     .name = "data_timeout",
     .type = T_DURATION,
     .off = L(data_timeout),
     .def = "10m",
     .min = 1,
     .doc = "time allowed for the whole DATA or BDAT phase of a message (also the longest "
            "wait for bytes within it)"},
    {.sec = SEC_LISTENER,
     .name = "max_errors",
     .type = T_COUNT,
     .off = L(max_errors),
     .def = "20",
     .min = 1,
     .doc = "rejected commands a session may make (since its last accepted message); "
            "then 421 4.7.0 and the connection is closed"},
    {.sec = SEC_LISTENER,
     .name = "received_header",
     .type = T_ENUM,
     .off = L(received_header),
     .def = "full",
     .example = "hide_client",
     .names = RECEIVED_NAMES,
     .doc = "full: the Received header names the client's HELO and IP address; "
            "hide_client: it leaves both out (privacy of the submitting application)"},

    {.sec = SEC_TLS,
     .name = "cert",
     .type = T_STRING,
     .off = C(tls_cert),
     .def = "",
     .example = "/etc/posthorn/fullchain.pem",
     .doc = "PEM certificate chain, leaf first"},
    {.sec = SEC_TLS,
     .name = "key",
     .type = T_STRING,
     .off = C(tls_key),
     .def = "",
     .example = "/etc/posthorn/privkey.pem",
     .doc = "PEM private key of cert"},
    {.sec = SEC_TLS,
     .name = "ca_file",
     .type = T_STRING,
     .off = C(tls_ca_file),
     .def = "",
     .example = "/etc/posthorn/private-ca.pem",
     .doc = "PEM trust anchors added to the system's for verifying outbound TLS peers "
            "(a private CA's smarthost; tests)"},

    {.sec = SEC_RELAY,
     .name = "trusted_networks",
     .type = T_NET_LIST,
     .off = C(trusted_networks),
     .off2 = C(n_trusted_networks),
     .def = "127.0.0.0/8, ::1/128",
     .doc = "networks that may relay without AUTH (empty: none)"},
    {.sec = SEC_RELAY,
     .name = "queue_lifetime",
     .type = T_DURATION,
     .off = C(queue_lifetime),
     .def = "5d",
     .min = 1,
     .doc = "how long a deferred recipient is retried before it bounces"},
    {.sec = SEC_RELAY,
     .name = "delay_warning",
     .type = T_DURATION,
     .off = C(delay_warning),
     .def = "4h",
     .min = 0,
     .doc = "a recipient that asked NOTIFY=DELAY and is still queued this long after "
            "acceptance gets one delay notice (0: never)"},
    {.sec = SEC_RELAY,
     .name = "retry",
     .type = T_DURATION_LIST,
     .off = C(retry),
     .off2 = C(n_retry),
     .def = "1m, 5m, 15m, 30m, 1h, 2h, 4h",
     .min = 1,
     .flags = F_NONEMPTY,
     .doc = "delays between delivery attempts; the last one repeats until queue_lifetime"},
    {.sec = SEC_RELAY,
     .name = "smarthost",
     .type = T_STRING,
     .off = C(smarthost),
     .def = "",
     .example = "smtp.example.net:587",
     .check = check_smarthost,
     .doc = "send everything through this host instead of MX hosts (empty: MX): host, "
            "host:port, [host] or [host]:port, port 25 when none is given; an IP address "
            "(bracketed or not) is used as is, a name is looked up as A/AAAA (never MX); "
            "unresolvable or unreachable defers, never bounces"},
    {.sec = SEC_RELAY,
     .name = "smarthost_auth",
     .type = T_STRING,
     .off = C(smarthost_auth),
     .def = "",
     .example = "user:password",
     .check = check_userpass,
     .doc = "user:password for the smarthost, sent only over TLS (see smarthost_tls)"},
    {.sec = SEC_RELAY,
     .name = "smarthost_tls",
     .type = T_ENUM,
     .off = C(smarthost_tls),
     .def = "verify",
     .example = "verify",
     .names = SMARTHOST_TLS_NAMES,
     .doc = "verify: TLS required, the certificate must chain to a trusted CA (system store "
            "and [tls] ca_file) and match the smarthost's name or IP address, credentials go "
            "only over such a session; encrypt: TLS required but not verified (credentials "
            "go over it: the operator's explicit choice); none: STARTTLS when offered, not "
            "verified, and no credentials (smarthost_auth is then a config error)"},
    {.sec = SEC_RELAY,
     .name = "outbound_tls",
     .type = T_ENUM,
     .off = C(outbound_tls),
     .def = "opportunistic",
     .example = "required",
     .names = OUT_TLS_NAMES,
     .doc = "opportunistic: STARTTLS when offered; required: never deliver without TLS"},
    {.sec = SEC_RELAY,
     .name = "blocked_destinations",
     .type = T_NET_LIST,
     .off = C(blocked_destinations),
     .off2 = C(n_blocked_destinations),
     .def = "127.0.0.0/8, ::1/128, ::/128, 0.0.0.0/8, 169.254.0.0/16, fe80::/10, 224.0.0.0/4, "
            "ff00::/8",
     .doc = "networks that MX hosts and address literals may not resolve to (IPv4-mapped IPv6 "
            "addresses are checked as IPv4); a recipient whose every address is inside bounces "
            "5.4.4; the smarthost is exempt; an MX host or literal that is this relay itself "
            "(a listener's address and port) bounces 5.4.6 whatever this says (empty: none)"},
    {.sec = SEC_RELAY,
     .name = "max_hops",
     .type = T_COUNT,
     .off = C(max_hops),
     .def = "50",
     .min = 1,
     .doc = "most Received header fields a message may carry, the one Posthorn adds "
            "included; a message with more is refused at the end of DATA/BDAT with "
            "554 5.4.6 (a mail loop), and the sending relay bounces it"},
    {.sec = SEC_RELAY,
     .name = "dns_servers",
     .type = T_ADDR_LIST,
     .off = C(dns_servers),
     .off2 = C(n_dns_servers),
     .def = "",
     .example = "127.0.0.1:5353",
     .doc = "DNS servers to ask instead of /etc/resolv.conf (tests, split DNS)"},
    {.sec = SEC_RELAY,
     .name = "mx_port",
     .type = T_COUNT,
     .off = C(mx_port),
     .def = "25",
     .min = 1,
     .max = 65535,
     .doc = "TCP port used to reach MX hosts (tests)"},
    {.sec = SEC_RELAY,
     .name = "mta_sts_port",
     .type = T_COUNT,
     .off = C(mta_sts_port),
     .def = "443",
     .min = 1,
     .max = 65535,
     .doc = "TCP port of the mta-sts.DOMAIN host that serves a domain's MTA-STS policy over "
            "HTTPS (tests, like mx_port)"},
    {.sec = SEC_RELAY,
     .name = "mta_sts_refresh_interval",
     .type = T_DURATION,
     .off = C(mta_sts_refresh_interval),
     .def = "1h",
     .min = 1,
     .max = 86400,
     .doc = "how often cached MTA-STS policies past half of their max_age are refreshed in the "
            "background, mail or no mail (RFC 8461 10.2; tests use seconds)"},
    {.sec = SEC_RELAY,
     .name = "dnssec",
     .type = T_ENUM,
     .off = C(dnssec),
     .def = "off",
     .example = "trust_ad",
     .names = DNSSEC_NAMES,
     .doc = "off: DNS answers are never taken as DNSSEC-validated, so no DANE; trust_ad: "
            "queries set the AD bit and answers with AD from dns_servers (or resolv.conf) "
            "count as validated, so TLSA records at _25._tcp.MXHOST are enforced (DANE); "
            "only for a validating resolver reached over a path nobody can tamper with, "
            "such as unbound on this host (docs/tls.md)"},
    {.sec = SEC_RELAY,
     .name = "tls_rpt_interval",
     .type = T_DURATION,
     .off = C(tls_rpt_interval),
     .def = "24h",
     .min = 1,
     .doc = "length of a TLS-RPT reporting period: at its end, each domain that publishes "
            "_smtp._tls TXT gets its report (RFC 8460 says a day; tests use seconds)"},

    {.sec = SEC_DOMAIN,
     .name = "max_connections",
     .type = T_COUNT,
     .off = D(max_connections),
     .def = "20",
     .min = 1,
     .doc = "concurrent connections to the domain"},
    {.sec = SEC_DOMAIN,
     .name = "max_messages_per_connection",
     .type = T_COUNT,
     .off = D(max_messages_per_connection),
     .def = "100",
     .min = 1,
     .doc = "messages sent over one connection before it is closed"},
    {.sec = SEC_DOMAIN,
     .name = "max_rate",
     .type = T_RATE,
     .off = D(max_rate),
     .off2 = D(max_rate_period),
     .def = "unlimited",
     .min = 1,
     .doc = "messages per second, minute, hour or day: N/s, N/m, N/h or N/d, or unlimited"},
    {.sec = SEC_DOMAIN,
     .name = "pool",
     .type = T_STRING,
     .off = D(pool),
     .def = "",
     .example = "marketing",
     .check = check_pool_name,
     .doc = "the [pool.NAME] whose source addresses this domain's mail leaves from (empty: "
            "the system's choice); an account bound to a pool uses its own"},

    {.sec = SEC_POOL,
     .name = "source_addresses",
     .type = T_IP_LIST,
     .off = P(source_addresses),
     .off2 = P(n_source_addresses),
     .example = "192.0.2.10, 192.0.2.11",
     .flags = F_REQUIRED | F_NONEMPTY,
     .doc = "local IPv4 or IPv6 addresses that outbound connections bind to, in turn"},
    {.sec = SEC_POOL,
     .name = "ehlo_names",
     .type = T_NAME_LIST,
     .off = P(ehlo_names),
     .off2 = P(n_ehlo_names),
     .example = "mta1.example.com, mta2.example.com",
     .flags = F_REQUIRED | F_NONEMPTY,
     .doc = "the EHLO name of each source address, in the same order (one per address)"},

    {.sec = SEC_QUOTA,
     .name = "hour",
     .type = T_COUNT,
     .off = C(quota_hour),
     .def = "0",
     .doc = "messages (counted per recipient) an account may send per clock hour (UTC); "
            "0: unlimited. Over it, MAIL or RCPT get 450 4.7.1 with the reset time"},
    {.sec = SEC_QUOTA,
     .name = "day",
     .type = T_COUNT,
     .off = C(quota_day),
     .def = "0",
     .doc = "messages (counted per recipient) an account may send per UTC day; 0: unlimited"},

    {.sec = SEC_REPUTATION,
     .name = "window",
     .type = T_DURATION,
     .off = C(rep_window),
     .def = "24h",
     .min = 60,
     .doc = "the sliding window the rates are measured over"},
    {.sec = SEC_REPUTATION,
     .name = "max_bounce_rate",
     .type = T_PERCENT,
     .off = C(rep_max_bounce_ppm),
     .def = "5%",
     .doc = "hard bounces (addresses that do not exist) among the recipients whose delivery "
            "ended in the window; above it the account is paused"},
    {.sec = SEC_REPUTATION,
     .name = "max_complaint_rate",
     .type = T_PERCENT,
     .off = C(rep_max_complaint_ppm),
     .def = "0.1%",
     .doc = "complaints (feedback reports) among the recipients whose delivery ended in the "
            "window; above it the account is paused"},
    {.sec = SEC_REPUTATION,
     .name = "min_volume",
     .type = T_COUNT,
     .off = C(rep_min_volume),
     .def = "100",
     .min = 1,
     .doc = "recipients whose delivery ended in the window before a rate is judged at all"},

    {.sec = SEC_DKIM,
     .name = "rotation_grace",
     .type = T_DURATION,
     .off = C(dkim_rotation_grace),
     .def = "7d",
     .min = 1,
     .doc = "after a rotation, how long the old selector's record must stay published "
            "(messages it signed may still be queued or verified late)"},
    {.sec = SEC_DKIM,
     .name = "check_interval",
     .type = T_DURATION,
     .off = C(dkim_check_interval),
     .def = "1m",
     .min = 1,
     .doc = "how often a running server looks up the DNS records of pending keys, to "
            "activate those that are published (SIGHUP does it at once)"},

    {.sec = SEC_BOUNCES,
     .name = "domain",
     .type = T_STRING,
     .off = C(bounces_domain),
     .def = "",
     .example = "bounces.example.com",
     .check = check_hostname,
     .doc = "domain of VERP return paths bounces+ID=HASH@domain; listeners accept mail "
            "for it only at such addresses (empty: no VERP)"},

    {.sec = SEC_HTTP,
     .name = "address",
     .type = T_ADDR,
     .off = C(http_address),
     .def = "127.0.0.1:8025",
     .doc = "listening address of the API, dashboard and /metrics"},
    {.sec = SEC_HTTP,
     .name = "public_url",
     .type = T_STRING,
     .off = C(http_public_url),
     .def = "",
     .example = "https://relay.example.com",
     .check = check_http_url,
     .doc = "base of the links in mail: one-click unsubscribe (only when https) and "
            "tracking (empty: http:// and the address above)"},
    {.sec = SEC_HTTP,
     .name = "max_request_size",
     .type = T_SIZE,
     .off = C(http_max_request_size),
     .def = "50m",
     .min = 1,
     .doc = "largest request body accepted; a larger one gets 413 before it is read"},
    {.sec = SEC_HTTP,
     .name = "timeout",
     .type = T_DURATION,
     .off = C(http_timeout),
     .def = "30s",
     .min = 1,
     .doc = "a client gets this long to send a request head, to go on sending a body "
            "(and 10 times this for the whole request), to read a reply, and to send the "
            "next request on a kept-alive connection"},
    {.sec = SEC_HTTP,
     .name = "max_connections",
     .type = T_COUNT,
     .off = C(http_max_connections),
     .def = "256",
     .min = 1,
     .doc = "concurrent HTTP connections; at this many, new ones wait in the kernel's "
            "backlog"},

    {.sec = SEC_EVENTS,
     .name = "retention",
     .type = T_DURATION,
     .off = C(events_retention),
     .def = "30d",
     .doc = "how long events and messages are kept (0: for ever); older ones are deleted "
            "in the background"},
    {.sec = SEC_EVENTS,
     .name = "stats_retention",
     .type = T_DURATION,
     .off = C(events_stats_retention),
     .def = "400d",
     .doc = "how long the hourly counters behind /v1/stats are kept (0: for ever)"},
    {.sec = SEC_EVENTS,
     .name = "webhook_timeout",
     .type = T_DURATION,
     .off = C(webhook_timeout),
     .def = "10s",
     .min = 1,
     .max = 300,
     .doc = "longest a webhook POST may take, connecting included; longer is a failure"},
    {.sec = SEC_EVENTS,
     .name = "webhook_backoff",
     .type = T_DURATION,
     .off = C(webhook_backoff),
     .def = "10s",
     .min = 1,
     .doc = "wait before the first retry of a failed webhook POST; it doubles per failure, "
            "up to 1h"},
    {.sec = SEC_EVENTS,
     .name = "webhook_retry_for",
     .type = T_DURATION,
     .off = C(webhook_retry_for),
     .def = "24h",
     .min = 1,
     .doc = "how long a failing batch is retried; then it is dropped and logged, and the "
            "webhook goes on with the next events"},
    {.sec = SEC_EVENTS,
     .name = "webhook_blocked_destinations",
     .type = T_NET_LIST,
     .off = C(webhook_blocked),
     .off2 = C(n_webhook_blocked),
     .def = "",
     .example = "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
                "169.254.0.0/16, fc00::/7, fe80::/10",
     .doc = "addresses the webhooks of account keys may not reach (checked on every "
            "connection, after DNS); webhooks made with an admin key may (empty: none "
            "blocked)"},

    {.sec = SEC_CLUSTER,
     .name = "postgres",
     .type = T_STRING,
     .off = C(cluster_postgres),
     .def = "",
     .example = "postgresql://posthorn@db.example.com/posthorn",
     .check = check_postgres,
     .doc = "PostgreSQL URL for shared accounts, suppressions, events and statistics"},
    {.sec = SEC_CLUSTER,
     .name = "redis",
     .type = T_STRING,
     .off = C(cluster_redis),
     .def = "",
     .example = "redis://127.0.0.1:6379",
     .check = check_redis,
     .doc = "Redis for cluster-wide quotas, max_rate and max_connections: "
            "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (port 6379 and database 0 by "
            "default; USER and PASSWORD percent-encoded, sent with AUTH and never logged; "
            "no rediss://, TLS; docs/cluster.md). Empty: every limit is this node's"},
    {.sec = SEC_CLUSTER,
     .name = "nodes",
     .type = T_COUNT,
     .off = C(cluster_nodes),
     .def = "1",
     .min = 1,
     .max = 1000,
     .doc = "how many nodes share the limits: while Redis cannot be reached, each node "
            "enforces 1/N of every cluster-wide limit on its own"},
    {.sec = SEC_CLUSTER,
     .name = "postgres_timeout",
     .type = T_DURATION,
     .off = C(cluster_postgres_timeout),
     .def = "20s",
     .min = 1,
     .max = 3600,
     .doc = "the longest any call waits for PostgreSQL's answer: past it the connection is "
            "dropped and the call fails (new mail that needs the database gets 451 4.3.0) "
            "and the next call connects again. It covers a server that is up but silent, "
            "which the server-side statement_timeout (15 s) does not; a stopping node waits "
            "at most 12 s"},
    {.sec = SEC_CLUSTER,
     .name = "secret_key_file",
     .type = T_STRING,
     .off = C(cluster_secret_key_file),
     .def = "",
     .example = "/etc/posthorn/secret.key",
     .doc = "file of 64 hex digits (openssl rand -hex 32) that encrypts the DKIM private "
            "keys stored in PostgreSQL, so that every node signs; the same on every node"},
};

#define N_KEYS              ARRAY_LEN(KEYS)
#define FIELD(base, off, T) ((T *)(void *)((char *)(base) + (off)))

/* ---- load state ---------------------------------------------------------- */

/* Where each key of one section instance was set, for duplicates and checks. */
struct inst {
	const char *file; /* label of the file that opened it */
	int line;         /* of its first header */
	int seen[N_KEYS]; /* line each key was set on; 0: defaulted */
};

/* One problem; they are printed sorted by file and line once all are found. */
struct error {
	const char *file; /* a label that outlives the load */
	int line;
	char *msg;
};

struct load {
	struct conf *c;
	struct error *errs;
	size_t n_errs;
	const char *top;  /* label of the loaded file: path or "<default>" */
	const char *file; /* label of the text being read now */
	FILE *in;
	char *line; /* getline buffer */
	size_t cap;
	int lineno;
	int handled;      /* line of the last handler call */
	int pending_pair; /* the last line read must reach the handler */
	enum sec_id sec;
	size_t idx;  /* current listener or domain */
	char *label; /* current section as written, for messages */
	int global_seen[N_KEYS];
	struct inst *lst; /* parallel to c->listeners */
	struct inst *dom; /* parallel to c->domains */
	struct inst *pl;  /* parallel to c->pools */
};

static void errorf(struct load *ld, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void errorf(struct load *ld, const char *file, int line, const char *fmt, ...)
{
	struct error *e;
	struct buf msg;
	va_list ap;

	buf_init(&msg);
	va_start(ap, fmt);
	buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	ld->errs = xrealloc(ld->errs, (ld->n_errs + 1) * sizeof(*ld->errs));
	e = &ld->errs[ld->n_errs++];
	e->file = file;
	e->line = line;
	e->msg = msg.data;
}

/* The same file first, then by line; ties keep the order they were found. */
static int error_before(const struct error *a, const struct error *b)
{
	int c = strcmp(a->file, b->file);
	return c < 0 || (c == 0 && a->line < b->line);
}

/* Sorts (insertion: a handful of entries, and stable) and frees the list. */
static char *errors_render(struct load *ld)
{
	struct buf out;

	for (size_t i = 1; i < ld->n_errs; i++) {
		struct error e = ld->errs[i];
		size_t j = i;
		for (; j > 0 && error_before(&e, &ld->errs[j - 1]); j--)
			ld->errs[j] = ld->errs[j - 1];
		ld->errs[j] = e;
	}
	buf_init(&out);
	for (size_t i = 0; i < ld->n_errs; i++) {
		if (ld->errs[i].line > 0)
			buf_printf(&out, "%s:%d: ", ld->errs[i].file, ld->errs[i].line);
		else
			buf_printf(&out, "%s: ", ld->errs[i].file);
		buf_printf(&out, "%s\n", ld->errs[i].msg);
		free(ld->errs[i].msg);
	}
	free(ld->errs);
	return out.data;
}

/* ---- addresses and networks ---------------------------------------------- */

static int parse_port(const char *s, in_port_t *out)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v < 1 || v > 65535)
		return -1;
	*out = htons((in_port_t)v);
	return 0;
}

#define ADDR_PORT_RANGE "the port must be a number from 1 to 65535"

/* Splits "host:port" or "[v6]:port": the host into host[], *port after
 * the colon. NULL, or what is wrong with the form. */
static const char *addr_split(const char *text, char *host, size_t size, const char **port)
{
	const char *h = text, *colon;
	size_t hlen;

	if (!*text)
		return "empty (expected IP:port such as 127.0.0.1:25 or [::1]:25)";
	if (*text == '[') {
		h = text + 1;
		if (!(colon = strchr(h, ']')))
			return "no closing ']' after the IPv6 address";
		if (colon[1] != ':')
			return "no port after the ']' (expected [IPv6]:port such as [::1]:25)";
		hlen = (size_t)(colon - h);
		colon++;
	} else if (!(colon = strchr(text, ':'))) {
		return "no port (expected IP:port such as 127.0.0.1:25)";
	} else if (strchr(colon + 1, ':')) {
		return "an IPv6 address goes in brackets, as in [::1]:25";
	} else {
		hlen = (size_t)(colon - text);
	}
	if (hlen == 0)
		return "no IP address before the port";
	if (hlen >= size)
		return "the address is too long";
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return NULL;
}

const char *conf_parse_addr(const char *text, struct conf_addr *out, struct buf *why)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *port, *err = addr_split(text, host, sizeof(host), &port);
	unsigned char any[16];

	memset(&ss, 0, sizeof(ss));
	if (err)
		return err;
	if (*text == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		out->len = sizeof(*sin6);
	} else if (*text != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		out->len = sizeof(*sin);
	} else if (*text == '[' && inet_pton(AF_INET, host, any) == 1) {
		return "brackets are for IPv6 addresses: write an IPv4 address without them, as in "
		       "127.0.0.1:25";
	} else {
		buf_printf(why, "'%.64s' is not an IP address (names are not looked up here)",
		           host);
		return why->data;
	}
	if (parse_port(port, ss.ss_family == AF_INET ? &sin->sin_port : &sin6->sin6_port) < 0)
		return ADDR_PORT_RANGE;
	out->ss = ss;
	out->text = xstrdup(text);
	return NULL;
}

#define HOSTPORT_FORMS "expected host, host:port, [host] or [host]:port"

/* The host part of a next hop: an IP address or a domain name. */
static const char *hostport_host(const char *h, size_t n, struct conf_hostport *out)
{
	unsigned char a[16];
	char host[256];

	if (n >= 5 && !strncasecmp(h, "IPv6:", 5)) {
		h += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(host))
		return HOSTPORT_FORMS;
	memcpy(host, h, n);
	host[n] = '\0';
	out->is_ip = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
	if (!out->is_ip && check_hostname(host))
		return HOSTPORT_FORMS " (host: an IP address or a domain name)";
	out->host = xstrdup(host);
	return NULL;
}

const char *conf_parse_hostport(const char *text, uint16_t default_port, struct conf_hostport *out)
{
	struct conf_hostport hp = {NULL, default_port, 0};
	const char *h = text, *end, *port = NULL, *why;
	in_port_t p;

	if (*text == '[') {
		h = text + 1;
		end = strchr(h, ']');
		if (!end || (end[1] && end[1] != ':'))
			return HOSTPORT_FORMS;
		port = end[1] ? end + 2 : NULL;
	} else if ((end = strchr(text, ':')) && strchr(end + 1, ':')) {
		end = text + strlen(text); /* two colons: a bare IPv6 address, no port */
	} else if (end) {
		port = end + 1;
	} else {
		end = text + strlen(text);
	}
	if (port && parse_port(port, &p) < 0)
		return HOSTPORT_FORMS " (port: 1 to 65535)";
	if (port)
		hp.port = ntohs(p);
	if ((why = hostport_host(h, (size_t)(end - h), &hp)))
		return why;
	*out = hp;
	return NULL;
}

/* "10.0.0.0/8", "::1/128" or a bare address (one host). */
static int parse_net(const char *text, struct conf_net *out, struct buf *why)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	uint64_t prefix;
	int bits, i;

	memset(out, 0, sizeof(*out));
	if (alen < sizeof(addr)) {
		memcpy(addr, text, alen);
		addr[alen] = '\0';
		out->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	}
	if (alen == 0 || alen >= sizeof(addr) || inet_pton(out->family, addr, out->addr) != 1) {
		buf_printf(why, "'%.*s' is not an IP address", (int)(alen > 64 ? 64 : alen), text);
		return -1;
	}
	bits = out->family == AF_INET ? 32 : 128;
	if (!slash) {
		prefix = (uint64_t)bits;
	} else if (parse_u64(slash + 1, &prefix) < 0 || prefix > (uint64_t)bits) {
		buf_printf(why, "'%.100s': the prefix must be a number from 0 to %d", text, bits);
		return -1;
	}
	out->prefix = (int)prefix;
	/* 10.1.2.3/8 is more likely a typo than a wish for 10.0.0.0/8. */
	for (i = out->prefix; i < bits; i++) {
		if (out->addr[i / 8] & (0x80 >> (i % 8))) {
			buf_printf(why, "'%s' has bits set beyond its /%d prefix", text,
			           out->prefix);
			return -1;
		}
	}
	return 0;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
	int whole = prefix / 8, rest = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

int conf_net_contains(const struct conf_net *net, const struct sockaddr *sa)
{
	const unsigned char *a;
	int family = sa->sa_family;

	if (family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		a = in6->s6_addr;
		/* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d. */
		if (net->family == AF_INET && IN6_IS_ADDR_V4MAPPED(in6)) {
			a += 12;
			family = AF_INET;
		}
	} else {
		return 0;
	}
	return family == net->family && prefix_equal(a, net->addr, net->prefix);
}

int conf_is_trusted(const struct conf *c, const struct sockaddr *sa)
{
	for (size_t i = 0; i < c->n_trusted_networks; i++)
		if (conf_net_contains(&c->trusted_networks[i], sa))
			return 1;
	return 0;
}

/* ---- value parsers: one per type ------------------------------------------ */

/*
 * Each parses v and, only when it is good, replaces the field (freeing what
 * was there), so a bad value leaves the default in place. On error they
 * return -1 and may say why; otherwise the caller names the expected form.
 */
typedef int (*parse_fn)(const struct conf_key *k, const char *v, void *base, struct buf *why);
typedef void (*free_fn)(const struct conf_key *k, void *base);

static int in_range(const struct conf_key *k, uint64_t v, struct buf *why)
{
	if (v >= k->min && (k->max == 0 || v <= k->max))
		return 0;
	if (k->max)
		buf_printf(why, "must be between %" PRIu64 " and %" PRIu64, k->min, k->max);
	else
		buf_printf(why, "must be at least %" PRIu64, k->min);
	return -1;
}

static void free_string(const struct conf_key *k, void *base)
{
	char **p = FIELD(base, k->off, char *);
	free(*p);
	*p = NULL;
}

static int parse_string(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	const char *problem;

	if (*v && k->check && (problem = k->check(v))) {
		buf_puts(why, problem);
		return -1;
	}
	free_string(k, base);
	/* Optional strings are NULL when unset, so users test one thing. */
	*FIELD(base, k->off, char *) = *v ? xstrdup(v) : NULL;
	return 0;
}

static int parse_number(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	uint64_t n;
	int rc;

	if (k->type == T_SIZE)
		rc = parse_size(v, &n);
	else if (k->type == T_DURATION)
		rc = parse_duration(v, &n);
	else
		rc = parse_u64(v, &n);
	if (rc < 0 || in_range(k, n, why) < 0)
		return -1;
	*FIELD(base, k->off, uint64_t) = n;
	return 0;
}

int conf_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (ascii_casecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (ascii_casecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int parse_bool_key(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	return conf_parse_bool(v, FIELD(base, k->off, int));
}

static int parse_enum(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	for (int i = 0; k->names[i]; i++) {
		if (strcmp(v, k->names[i]) == 0) {
			*FIELD(base, k->off, int) = i;
			return 0;
		}
	}
	buf_puts(why, "expected one of");
	for (int i = 0; k->names[i]; i++)
		buf_printf(why, "%s %s", i ? "," : "", k->names[i]);
	return -1;
}

static void free_addr(const struct conf_key *k, void *base)
{
	struct conf_addr *a = FIELD(base, k->off, struct conf_addr);
	free(a->text);
	memset(a, 0, sizeof(*a));
}

static int parse_addr_key(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	struct conf_addr a;
	const char *err = conf_parse_addr(v, &a, why);

	if (err) {
		if (err != why->data)
			buf_puts(why, err);
		return -1;
	}
	free_addr(k, base);
	*FIELD(base, k->off, struct conf_addr) = a;
	return 0;
}

static int parse_rate(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	static const char units[] = "smhd";
	static const uint64_t seconds[] = {1, 60, 3600, 86400};
	const char *slash = strchr(v, '/');
	const char *u;
	char num[24];
	uint64_t n;

	if (strcmp(v, "unlimited") == 0) {
		*FIELD(base, k->off, uint64_t) = 0; /* 0: no token bucket */
		*FIELD(base, k->off2, uint64_t) = 1;
		return 0;
	}
	if (!slash || (size_t)(slash - v) >= sizeof(num) || slash[1] == '\0' || slash[2] != '\0')
		return -1;
	u = strchr(units, slash[1]);
	memcpy(num, v, (size_t)(slash - v));
	num[slash - v] = '\0';
	if (!u || parse_u64(str_trim(num), &n) < 0 || in_range(k, n, why) < 0)
		return -1;
	*FIELD(base, k->off, uint64_t) = n;
	*FIELD(base, k->off2, uint64_t) = seconds[u - units];
	return 0;
}

/*
 * Splits a comma-separated list into trimmed items in a copy (*store, to
 * free). Empty items ("a,,b", "a,") are an error: usually a typo.
 */
static int split_list(const char *v, char **store, char ***items, size_t *n)
{
	char *p, *comma;

	*store = xstrdup(v);
	*items = NULL;
	*n = 0;
	if (!*str_trim(*store))
		return 0;
	for (p = *store;; p = comma + 1) {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		p = str_trim(p);
		if (!*p)
			return -1;
		*items = xrealloc(*items, (*n + 1) * sizeof(**items));
		(*items)[(*n)++] = p;
		if (!comma)
			return 0;
	}
}

/* Parses one list item into its slot of the new array. */
typedef int (*item_fn)(const struct conf_key *k, const char *item, void *slot, struct buf *why);

static int item_addr(const struct conf_key *k, const char *item, void *slot, struct buf *why)
{
	struct buf host;
	const char *err;

	buf_init(&host);
	if ((err = conf_parse_addr(item, slot, &host)))
		buf_printf(why, "'%.100s': %s", item, err);
	buf_free(&host);
	return err ? -1 : 0;
}

static int item_net(const struct conf_key *k, const char *item, void *slot, struct buf *why)
{
	if (parse_net(item, slot, why) == 0)
		return 0;
	if (!why->len)
		buf_printf(why, "'%s' is not a network such as 10.0.0.0/8 or fd00::/8", item);
	return -1;
}

static int item_duration(const struct conf_key *k, const char *item, void *slot, struct buf *why)
{
	if (parse_duration(item, slot) == 0)
		return in_range(k, *(uint64_t *)slot, why);
	buf_printf(why, "'%s' is not a duration such as 5m (s, m, h, d)", item);
	return -1;
}

/* One host address, no prefix: a source address to bind to. */
static int item_ip(const struct conf_key *k, const char *item, void *slot, struct buf *why)
{
	struct conf_net *n = slot;

	if (!strchr(item, '/') && parse_net(item, n, why) == 0)
		return 0;
	buf_reset(why);
	buf_printf(why, "'%s' is not an IP address such as 192.0.2.10 or 2001:db8::10", item);
	return -1;
}

static int item_name(const struct conf_key *k, const char *item, void *slot, struct buf *why)
{
	if (check_hostname(item)) {
		buf_printf(why, "'%s' is not a host name such as mta1.example.com", item);
		return -1;
	}
	*(char **)slot = xstrdup(item);
	return 0;
}

/* Frees what n items of a list of type t hold (not the array). */
static void list_items_free(enum key_type t, void *arr, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t == T_ADDR_LIST)
			free(((struct conf_addr *)arr)[i].text);
		else if (t == T_NAME_LIST)
			free(((char **)arr)[i]);
	}
}

static void free_list(const struct conf_key *k, void *base)
{
	void **arr = FIELD(base, k->off, void *);
	size_t *n = FIELD(base, k->off2, size_t);

	list_items_free(k->type, *arr, *n);
	free(*arr);
	*arr = NULL;
	*n = 0;
}

/* How each list type reads an item, and how big a slot is. */
static item_fn list_item_fn(enum key_type t, size_t *size)
{
	switch (t) {
	case T_ADDR_LIST:
		*size = sizeof(struct conf_addr);
		return item_addr;
	case T_NET_LIST:
		*size = sizeof(struct conf_net);
		return item_net;
	case T_IP_LIST:
		*size = sizeof(struct conf_net);
		return item_ip;
	case T_NAME_LIST:
		*size = sizeof(char *);
		return item_name;
	default:
		*size = sizeof(uint64_t);
		return item_duration;
	}
}

static int parse_list(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	size_t size;
	item_fn fn = list_item_fn(k->type, &size);
	char *store, **items;
	size_t n, done = 0;
	char *arr;
	int rc = split_list(v, &store, &items, &n);

	arr = xcalloc(n ? n : 1, size);
	for (; rc == 0 && done < n; done++)
		rc = fn(k, items[done], arr + done * size, why);
	if (rc == 0 && n == 0 && (k->flags & F_NONEMPTY)) {
		buf_puts(why, "needs at least one value");
		rc = -1;
	}
	if (rc == 0) {
		free_list(k, base);
		*FIELD(base, k->off, void *) = arr;
		*FIELD(base, k->off2, size_t) = n;
	} else {
		/* what the items parsed so far hold (the last one failed) */
		list_items_free(k->type, arr, done ? done - 1 : 0);
		free(arr);
	}
	free(items);
	free(store);
	return rc;
}

/* "5%", "0.1 %", "12.5%": parts per million, at most 100 %, at most four
 * decimals. */
static int parse_percent(const struct conf_key *k, const char *v, void *base, struct buf *why)
{
	char num[32];
	size_t n = strlen(v), frac_digits = 0;
	uint64_t whole = 0, frac = 0;
	const char *p;

	if (n < 2 || n >= sizeof(num) || v[n - 1] != '%')
		return -1;
	memcpy(num, v, n - 1);
	num[n - 1] = '\0';
	p = str_trim(num);
	if (!*p || *p == '.')
		return -1;
	for (; *p >= '0' && *p <= '9' && whole <= 100; p++)
		whole = whole * 10 + (uint64_t)(*p - '0');
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9' && frac_digits < 4; p++, frac_digits++)
			frac = frac * 10 + (uint64_t)(*p - '0');
	if (*p || (frac_digits == 0 && p[-1] == '.'))
		return -1;
	while (frac_digits++ < 4)
		frac *= 10;
	if (whole * 10000 + frac > 1000000) {
		buf_puts(why, "must be between 0% and 100%");
		return -1;
	}
	*FIELD(base, k->off, uint64_t) = whole * 10000 + frac;
	return 0;
}

struct type_info {
	const char *expect; /* the form, in errors */
	parse_fn parse;
	free_fn free; /* NULL: nothing to free */
};

static const struct type_info TYPES[] = {
    [T_STRING] = {"text", parse_string, free_string},
    [T_SIZE] = {"a size such as 25m (k, m, g: powers of 1024)", parse_number, NULL},
    [T_DURATION] = {"a duration such as 5m (s, m, h, d)", parse_number, NULL},
    [T_COUNT] = {"a whole number", parse_number, NULL},
    [T_BOOL] = {"yes or no", parse_bool_key, NULL},
    [T_ENUM] = {"one of the listed words", parse_enum, NULL},
    [T_ADDR] = {"a numeric address such as 127.0.0.1:25 or [::1]:25", parse_addr_key, free_addr},
    [T_ADDR_LIST] = {"comma-separated numeric addresses such as 127.0.0.1:53, [::1]:53", parse_list,
                     free_list},
    [T_NET_LIST] = {"comma-separated networks such as 127.0.0.0/8, ::1/128", parse_list, free_list},
    [T_DURATION_LIST] = {"comma-separated durations such as 1m, 5m, 1h", parse_list, free_list},
    [T_RATE] = {"a rate such as 3000/h (per s, m, h or d) or unlimited", parse_rate, NULL},
    [T_IP_LIST] = {"comma-separated IP addresses such as 192.0.2.10, 2001:db8::10", parse_list,
                   free_list},
    [T_NAME_LIST] = {"comma-separated host names such as mta1.example.com", parse_list, free_list},
    [T_PERCENT] = {"a percentage such as 5% or 0.1%", parse_percent, NULL},
};

/* ---- string checks ---------------------------------------------------------- */

static const char *check_hostname(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 253 || v[0] == '.' || v[0] == '-' || v[n - 1] == '-')
		return "expected a domain name such as relay.example.com";
	for (; *v; v++)
		if (!isalnum((unsigned char)*v) && *v != '-' && *v != '.')
			return "expected a domain name such as relay.example.com";
	return NULL;
}

static const char *check_smarthost(const char *v)
{
	struct conf_hostport hp = {0};
	const char *why = conf_parse_hostport(v, 25, &hp);

	free(hp.host);
	return why;
}

static const char *check_userpass(const char *v)
{
	const char *colon = strchr(v, ':');
	return colon && colon != v ? NULL : "expected user:password";
}

static const char *check_user(const char *v)
{
	return getpwnam(v) ? NULL : "no such user on this system";
}

static const char *check_http_url(const char *v)
{
	if (ascii_startswith(v, "http://") || ascii_startswith(v, "https://"))
		return NULL;
	return "expected a URL starting with http:// or https://";
}

static const char *check_postgres(const char *v)
{
	const char *why = cluster_url_escape_why(v);

	if (ascii_startswith(v, "postgresql://") || ascii_startswith(v, "postgres://"))
		return why ? why : cluster_url_userinfo_why(v);
	return "expected a URL starting with postgresql://";
}

static const char *check_pool_name(const char *v)
{
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return "expected the NAME of a [pool.NAME] section (letters, digits, '-', "
			       "'_')";
	return NULL;
}

static const char *check_redis(const char *v)
{
	struct cluster_url u;
	const char *why = cluster_url_userinfo_why(v);

	if (why)
		return why;
	return cluster_url_parse(v, &u, &why) < 0 ? why : NULL;
}

/* ---- sections and instances -------------------------------------------------- */

/* Sets the keys of sec in base to their defaults; SEC_NONE: every global key. */
static void apply_defaults(struct load *ld, enum sec_id sec, void *base)
{
	struct buf why;

	buf_init(&why);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct conf_key *k = &KEYS[i];
		int wanted = sec == SEC_NONE ? !SECTIONS[k->sec].instanced : k->sec == sec;
		if (!wanted || !k->def)
			continue;
		buf_reset(&why);
		/* A default that does not parse is a bug in the table. */
		if (TYPES[k->type].parse(k, k->def, base, &why) < 0)
			errorf(ld, DEFAULT_LABEL, 0, "bad built-in default for %s: %s", k->name,
			       why.data);
	}
	buf_free(&why);
}

static int valid_instance_name(enum sec_id sec, const char *name)
{
	if (!*name)
		return 0;
	if (sec == SEC_DOMAIN && strcmp(name, "*") == 0)
		return 1;
	if (sec == SEC_DOMAIN)
		return check_hostname(name) == NULL;
	for (; *name; name++)
		if (!isalnum((unsigned char)*name) && *name != '-' && *name != '_')
			return 0;
	return 1;
}

static size_t listener_add(struct load *ld, const char *name)
{
	struct conf *c = ld->c;
	size_t n = c->n_listeners;

	for (size_t i = 0; i < n; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return i;
	c->listeners = xrealloc(c->listeners, (n + 1) * sizeof(*c->listeners));
	ld->lst = xrealloc(ld->lst, (n + 1) * sizeof(*ld->lst));
	memset(&c->listeners[n], 0, sizeof(c->listeners[n]));
	memset(&ld->lst[n], 0, sizeof(ld->lst[n]));
	c->listeners[n].name = xstrdup(name);
	ld->lst[n].file = ld->file;
	ld->lst[n].line = ld->lineno;
	c->n_listeners++;
	apply_defaults(ld, SEC_LISTENER, &c->listeners[n]);
	return n;
}

static size_t domain_add(struct load *ld, const char *name)
{
	struct conf *c = ld->c;
	size_t n = c->n_domains;

	for (size_t i = 0; i < n; i++)
		if (ascii_casecmp(c->domains[i].name, name) == 0)
			return i;
	c->domains = xrealloc(c->domains, (n + 1) * sizeof(*c->domains));
	ld->dom = xrealloc(ld->dom, (n + 1) * sizeof(*ld->dom));
	memset(&c->domains[n], 0, sizeof(c->domains[n]));
	memset(&ld->dom[n], 0, sizeof(ld->dom[n]));
	c->domains[n].name = xstrdup(name);
	ascii_lower(c->domains[n].name);
	ld->dom[n].file = ld->file;
	ld->dom[n].line = ld->lineno;
	c->n_domains++;
	apply_defaults(ld, SEC_DOMAIN, &c->domains[n]);
	return n;
}

static size_t pool_add(struct load *ld, const char *name)
{
	struct conf *c = ld->c;
	size_t n = c->n_pools;

	for (size_t i = 0; i < n; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return i;
	c->pools = xrealloc(c->pools, (n + 1) * sizeof(*c->pools));
	ld->pl = xrealloc(ld->pl, (n + 1) * sizeof(*ld->pl));
	memset(&c->pools[n], 0, sizeof(c->pools[n]));
	memset(&ld->pl[n], 0, sizeof(ld->pl[n]));
	c->pools[n].name = xstrdup(name);
	ld->pl[n].file = ld->file;
	ld->pl[n].line = ld->lineno;
	c->n_pools++;
	return n;
}

static void known_sections(struct buf *b)
{
	for (int i = 0; i < N_SECS; i++)
		buf_printf(b, "%s[%s%s]", i ? ", " : "", SECTIONS[i].name,
		           SECTIONS[i].instanced ? ".NAME" : "");
}

static void enter_named_section(struct load *ld, enum sec_id sec, const char *inst)
{
	char *name = xstrdup(inst);
	size_t n = strlen(name);

	if (sec == SEC_DOMAIN && n > 1 && name[n - 1] == '.')
		name[n - 1] = '\0'; /* example.com. is example.com */
	if (!valid_instance_name(sec, name)) {
		errorf(ld, ld->file, ld->lineno, "bad name '%s' in [%s.NAME]: expected %s", inst,
		       SECTIONS[sec].name,
		       sec == SEC_DOMAIN ? "a domain name or *" : "letters, digits, '-' or '_'");
		ld->sec = SEC_BAD;
	} else {
		ld->sec = sec;
		ld->idx = sec == SEC_LISTENER ? listener_add(ld, name)
		          : sec == SEC_POOL   ? pool_add(ld, name)
		                              : domain_add(ld, name);
	}
	free(name);
}

static void enter_section(struct load *ld, const char *name)
{
	struct buf known;

	free(ld->label);
	ld->label = xstrdup(name);
	for (int i = 0; i < N_SECS; i++) {
		size_t n = strlen(SECTIONS[i].name);
		if (!SECTIONS[i].instanced && strcmp(name, SECTIONS[i].name) == 0) {
			ld->sec = (enum sec_id)i;
			if (i == SEC_HTTP)
				ld->c->http_enabled = 1; /* SPEC 2: no [http], no listener */
			return;
		}
		if (SECTIONS[i].instanced && strncmp(name, SECTIONS[i].name, n) == 0 &&
		    name[n] == '.') {
			enter_named_section(ld, (enum sec_id)i, name + n + 1);
			return;
		}
	}
	buf_init(&known);
	known_sections(&known);
	errorf(ld, ld->file, ld->lineno, "unknown section [%s]; known: %s", name, known.data);
	buf_free(&known);
	ld->sec = SEC_BAD;
}

/* p points at '['. We read headers ourselves: inih cuts names at 49 bytes. */
static void section_header(struct load *ld, const char *p)
{
	const char *end = strchr(p, ']');
	const char *rest;
	char *name;

	if (!end) {
		errorf(ld, ld->file, ld->lineno, "section header without ']'");
		ld->sec = SEC_BAD;
		return;
	}
	rest = end + 1;
	while (isspace((unsigned char)*rest))
		rest++;
	if (*rest && *rest != ';' && *rest != '#') {
		errorf(ld, ld->file, ld->lineno, "unexpected text after ']'");
		ld->sec = SEC_BAD;
		return;
	}
	name = xstrndup(p + 1, (size_t)(end - p - 1));
	enter_section(ld, str_trim(name));
	free(name);
}

/* ---- reading lines and handling keys -------------------------------------- */

static void finish_line(struct load *ld)
{
	/* inih drops a line it cannot split without telling the handler. */
	if (ld->pending_pair && ld->handled != ld->lineno)
		errorf(ld, ld->file, ld->lineno,
		       "expected 'key = value', '[section]' or a comment");
	ld->pending_pair = 0;
}

static void classify_line(struct load *ld, const char *line)
{
	const char *p = line;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '[')
		section_header(ld, p);
	else if (*p && *p != ';' && *p != '#')
		ld->pending_pair = 1;
}

/* The ini_reader: one whole line per call, however long, with its number. */
static char *read_line(char *str, int num, void *stream)
{
	struct load *ld = stream;
	const char *line;
	ssize_t got;
	size_t n, len;

	finish_line(ld);
	got = getline(&ld->line, &ld->cap, ld->in);
	if (got < 0)
		return NULL;
	ld->lineno++;
	line = ld->line;
	n = (size_t)got;
	if (ld->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		line += 3; /* UTF-8 byte order mark */
		n -= 3;
	}
	len = n;
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (n != strlen(line)) {
		errorf(ld, ld->file, ld->lineno, "line contains a NUL byte");
		line = "\n";
	} else if (len > CONF_MAX_LINE || n >= (size_t)num) {
		/* Never hand inih a cut line: it would read the rest as a new one. */
		errorf(ld, ld->file, ld->lineno, "line longer than %d characters", CONF_MAX_LINE);
		line = "\n";
	} else {
		classify_line(ld, line);
	}
	memcpy(str, line, strlen(line) + 1);
	return str;
}

static const struct conf_key *find_key(enum sec_id sec, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (KEYS[i].sec == sec && strcmp(KEYS[i].name, name) == 0)
			return &KEYS[i];
	return NULL;
}

static void *key_base(struct load *ld, const struct conf_key *k)
{
	if (k->sec == SEC_LISTENER)
		return &ld->c->listeners[ld->idx];
	if (k->sec == SEC_DOMAIN)
		return &ld->c->domains[ld->idx];
	if (k->sec == SEC_POOL)
		return &ld->c->pools[ld->idx];
	return ld->c;
}

static int *key_seen(struct load *ld, const struct conf_key *k)
{
	size_t i = (size_t)(k - KEYS);

	if (k->sec == SEC_LISTENER)
		return &ld->lst[ld->idx].seen[i];
	if (k->sec == SEC_DOMAIN)
		return &ld->dom[ld->idx].seen[i];
	if (k->sec == SEC_POOL)
		return &ld->pl[ld->idx].seen[i];
	return &ld->global_seen[i];
}

/* value as an error may quote it (at most 200 bytes): every part of a URL
 * that may be a password masked (cluster_url_mask), above all in the
 * values of the URL keys, which are masked even without their scheme. */
static void quotable(const struct conf_key *k, const char *value, struct buf *out)
{
	int url_key = k->check == check_postgres || k->check == check_redis;
	char *masked = cluster_url_mask(value, url_key);

	buf_printf(out, "%.200s", masked);
	free(masked);
}

static void set_value(struct load *ld, const struct conf_key *k, const char *value)
{
	struct buf why, shown;

	buf_init(&why);
	if (!*value && (k->flags & (F_NONEMPTY | F_REQUIRED)) && k->type == T_STRING)
		buf_puts(&why, "must not be empty");
	else if (TYPES[k->type].parse(k, value, key_base(ld, k), &why) == 0)
		goto out;
	if (!why.len)
		buf_printf(&why, "expected %s", TYPES[k->type].expect);
	buf_init(&shown);
	quotable(k, value, &shown);
	errorf(ld, ld->file, ld->lineno, "%s in [%s]: %s, got '%s'", k->name, ld->label, why.data,
	       shown.data);
	buf_free(&shown);
out:
	buf_free(&why);
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;
	const struct conf_key *k;
	int *seen;

	ld->handled = ld->lineno;
	if (ld->sec == SEC_BAD)
		return 1;
	if (ld->sec == SEC_NONE) {
		errorf(ld, ld->file, ld->lineno, "'%s' before any [section]", name);
		return 1;
	}
	k = find_key(ld->sec, name);
	if (!k) {
		errorf(ld, ld->file, ld->lineno, "unknown key '%s' in [%s]", name, ld->label);
		return 1;
	}
	seen = key_seen(ld, k);
	if (*seen) {
		errorf(ld, ld->file, ld->lineno,
		       "duplicate key '%s' in [%s] (first set on line %d)", name, ld->label, *seen);
		return 1;
	}
	*seen = ld->lineno;
	set_value(ld, k, value);
	return 1;
}

/* inih's knobs are process globals; set the ones we rely on every time. */
static void ini_setup(void)
{
	static char comment_prefixes[] = ";#";

	ini_max_line = CONF_MAX_LINE + 3; /* + CR, LF, NUL */
	ini_use_stack = true;
	ini_allow_multiline = false; /* indented lines are keys, not continuations */
	ini_allow_bom = false;       /* read_line strips it */
	ini_allow_inline_comments = true;
	ini_start_comment_prefixes = comment_prefixes;
	ini_inline_comment_prefixes = comment_prefixes;
	ini_allow_no_value = false;
	ini_stop_on_first_error = false;
}

static void parse_stream(struct load *ld, const char *label, FILE *in)
{
	ld->file = label;
	ld->in = in;
	ld->lineno = 0;
	ld->handled = 0;
	ld->pending_pair = 0;
	ld->sec = SEC_NONE;
	ini_setup();
	/* Its return value only repeats the first error we already reported. */
	(void)ini_parse_stream(read_line, ld, on_pair, ld);
	finish_line(ld);
	ld->in = NULL;
}

static void parse_text(struct load *ld, const char *text)
{
	FILE *in = fmemopen((void *)text, strlen(text), "r");

	if (!in) {
		errorf(ld, DEFAULT_LABEL, 0, "cannot read the embedded default: %s",
		       strerror(errno));
		return;
	}
	parse_stream(ld, DEFAULT_LABEL, in);
	fclose(in);
}

static void parse_file(struct load *ld, const char *path)
{
	FILE *in = fopen(path, "r");

	if (!in) {
		errorf(ld, path, 0, "cannot open: %s", strerror(errno));
		return;
	}
	parse_stream(ld, path, in);
	if (ferror(in))
		errorf(ld, path, 0, "read error: %s", strerror(errno));
	fclose(in);
}

/* ---- checks across keys, after the whole file is read ------------------------ */

static size_t key_index(enum sec_id sec, const char *name)
{
	return (size_t)(find_key(sec, name) - KEYS);
}

static int same_sockaddr(const struct conf_addr *a, const struct conf_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void check_listeners(struct load *ld)
{
	const struct conf *c = ld->c;
	size_t ai = key_index(SEC_LISTENER, "address"), ti = key_index(SEC_LISTENER, "tls");

	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		const struct inst *in = &ld->lst[i];
		if (!l->address.text && !in->seen[ai]) /* present but bad: reported already */
			errorf(ld, in->file, in->line, "[listener.%s] needs an address", l->name);
		for (size_t j = 0; j < i && l->address.text; j++)
			if (c->listeners[j].address.text &&
			    same_sockaddr(&l->address, &c->listeners[j].address))
				errorf(
				    ld, in->file, in->seen[ai],
				    "address %s of [listener.%s] is already used by [listener.%s]",
				    l->address.text, l->name, c->listeners[j].name);
		if (l->tls != CONF_TLS_NONE && (!c->tls_cert || !c->tls_key))
			errorf(ld, in->file, in->seen[ti],
			       "tls = %s in [listener.%s] needs [tls] cert and key",
			       TLS_NAMES[l->tls], l->name);
	}
}

static void check_readable(struct load *ld, const char *path, const char *key)
{
	int line = ld->global_seen[key_index(SEC_TLS, key)];

	if (path && access(path, R_OK) < 0)
		errorf(ld, ld->top, line, "%s in [tls]: cannot read '%s': %s", key, path,
		       strerror(errno));
}

static void check_tls(struct load *ld)
{
	const struct conf *c = ld->c;
	int cert_line = ld->global_seen[key_index(SEC_TLS, "cert")];
	int key_line = ld->global_seen[key_index(SEC_TLS, "key")];

	if (c->tls_cert && !c->tls_key)
		errorf(ld, ld->top, cert_line, "[tls] cert is set but key is not");
	if (c->tls_key && !c->tls_cert)
		errorf(ld, ld->top, key_line, "[tls] key is set but cert is not");
	check_readable(ld, c->tls_cert, "cert");
	check_readable(ld, c->tls_key, "key");
	check_readable(ld, c->tls_ca_file, "ca_file");
}

static void check_relay(struct load *ld)
{
	struct conf *c = ld->c;
	int line = ld->global_seen[key_index(SEC_RELAY, "smarthost_auth")];

	if (c->smarthost_auth && !c->smarthost)
		errorf(ld, ld->top, line, "smarthost_auth in [relay] is set but smarthost is not");
	/* Credentials go only over a verified session, or an unverified one
	 * the operator chose by name (encrypt). */
	if (c->smarthost_auth && c->smarthost_tls == CONF_SMARTHOST_TLS_NONE)
		errorf(ld, ld->top, line,
		       "smarthost_auth in [relay] needs smarthost_tls = verify (or encrypt): "
		       "with none the password would go over an unverified session");
	/* Checked already (check_smarthost): this keeps the parsed form. */
	if (c->smarthost && conf_parse_hostport(c->smarthost, 25, &c->smarthost_at))
		c->smarthost_at.host = NULL;
}

/*
 * Keys a [domain.NAME] omits come from [domain.*] (domains[0]). Every domain
 * key is a uint64_t (a rate is two) or a string (pool), copied.
 */
static void inherit_domains(struct load *ld)
{
	struct conf *c = ld->c;

	for (size_t d = 1; d < c->n_domains; d++) {
		for (size_t i = 0; i < N_KEYS; i++) {
			const struct conf_key *k = &KEYS[i];
			if (k->sec != SEC_DOMAIN || ld->dom[d].seen[i])
				continue;
			if (k->type == T_STRING) {
				char *v = *FIELD(&c->domains[0], k->off, char *);
				*FIELD(&c->domains[d], k->off, char *) = v ? xstrdup(v) : NULL;
				continue;
			}
			*FIELD(&c->domains[d], k->off, uint64_t) =
			    *FIELD(&c->domains[0], k->off, uint64_t);
			if (k->type == T_RATE)
				*FIELD(&c->domains[d], k->off2, uint64_t) =
				    *FIELD(&c->domains[0], k->off2, uint64_t);
		}
	}
}

/* Defaults that depend on the machine or on other keys. */
static void derive_defaults(struct load *ld)
{
	struct conf *c = ld->c;
	char host[256];

	if (!c->hostname) {
		if (gethostname(host, sizeof(host)) < 0 || !host[0])
			errorf(ld, ld->top, 0,
			       "cannot find this machine's hostname: set [server] hostname");
		else
			c->hostname = xstrndup(host, strnlen(host, sizeof(host)));
	}
	if (!c->http_public_url && c->http_address.text)
		c->http_public_url = xasprintf("http://%s", c->http_address.text);
}

/* Each address has its EHLO name, and a domain's pool exists. */
static void check_pools(struct load *ld)
{
	const struct conf *c = ld->c;
	size_t si = key_index(SEC_POOL, "source_addresses"), ei = key_index(SEC_POOL, "ehlo_names");
	size_t pi = key_index(SEC_DOMAIN, "pool");

	for (size_t i = 0; i < c->n_pools; i++) {
		const struct conf_pool *p = &c->pools[i];
		const struct inst *in = &ld->pl[i];
		if (!in->seen[si] || !in->seen[ei])
			errorf(ld, in->file, in->line,
			       "[pool.%s] needs source_addresses and ehlo_names", p->name);
		else if (p->n_source_addresses && p->n_ehlo_names && /* 0: refused already */
		         p->n_source_addresses != p->n_ehlo_names)
			errorf(ld, in->file, in->seen[ei],
			       "[pool.%s] has %zu source_addresses but %zu ehlo_names: one name "
			       "per address",
			       p->name, p->n_source_addresses, p->n_ehlo_names);
	}
	for (size_t d = 0; d < c->n_domains; d++) {
		const char *name = c->domains[d].pool;
		if (name && ld->dom[d].seen[pi] && !conf_pool_find(c, name))
			errorf(ld, ld->dom[d].file, ld->dom[d].seen[pi],
			       "pool in [domain.%s]: no section [pool.%s]", c->domains[d].name,
			       name);
	}
}

static void check_all(struct load *ld)
{
	if (ld->c->n_listeners == 0)
		parse_text(ld, DEFAULT_LISTENER);
	check_listeners(ld);
	check_tls(ld);
	check_relay(ld);
	check_pools(ld);
	inherit_domains(ld);
	derive_defaults(ld);
}

/* ---- where keys were set, kept for messages after the load ------------------- */

struct conf_lines {
	int global[N_KEYS];
	struct inst *lst, *dom; /* parallel to c->listeners, c->domains */
};

/* Labels of the load outlive it: the caller's path becomes c->file. */
static const char *kept_label(const struct conf *c, const char *label)
{
	return label == DEFAULT_LABEL || !c->file ? DEFAULT_LABEL : c->file;
}

static void keep_lines(struct load *ld, struct conf *c)
{
	struct conf_lines *l = xcalloc(1, sizeof(*l));

	memcpy(l->global, ld->global_seen, sizeof(l->global));
	l->lst = ld->lst;
	l->dom = ld->dom;
	ld->lst = ld->dom = NULL;
	for (size_t i = 0; i < c->n_listeners; i++)
		l->lst[i].file = kept_label(c, l->lst[i].file);
	for (size_t i = 0; i < c->n_domains; i++)
		l->dom[i].file = kept_label(c, l->dom[i].file);
	c->lines = l;
}

static const struct inst *inst_named(const struct conf *c, enum sec_id sec, const char *name)
{
	size_t n = sec == SEC_LISTENER ? c->n_listeners : c->n_domains;

	for (size_t i = 0; name && i < n; i++)
		if (!strcmp(sec == SEC_LISTENER ? c->listeners[i].name : c->domains[i].name, name))
			return sec == SEC_LISTENER ? &c->lines->lst[i] : &c->lines->dom[i];
	return NULL;
}

int conf_line(const struct conf *c, const char *section, const char *name, const char *key,
              const char **file)
{
	const struct inst *in = NULL;
	const struct conf_key *k = NULL;

	*file = c->file ? c->file : DEFAULT_LABEL;
	for (int s = 0; s < N_SECS && !k; s++)
		if (!strcmp(SECTIONS[s].name, section))
			k = find_key((enum sec_id)s, key);
	if (!k || !c->lines)
		return 0;
	if (!SECTIONS[k->sec].instanced)
		return c->lines->global[k - KEYS];
	if (!(in = inst_named(c, k->sec, name)))
		return 0;
	*file = in->file;
	return in->seen[k - KEYS] ? in->seen[k - KEYS] : in->line;
}

/* ---- what changed between two loads (SIGHUP) ----------------------------------- */

static int list_equal(const struct conf_key *k, const void *a, const void *b)
{
	size_t n = *FIELD(a, k->off2, size_t), size;
	const char *x = *FIELD(a, k->off, const char *), *y = *FIELD(b, k->off, const char *);

	if (n != *FIELD(b, k->off2, size_t))
		return 0;
	if (k->type != T_ADDR_LIST) {
		size = k->type == T_NET_LIST ? sizeof(struct conf_net) : sizeof(uint64_t);
		return n == 0 || memcmp(x, y, n * size) == 0;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(((const struct conf_addr *)(const void *)x)[i].text,
		           ((const struct conf_addr *)(const void *)y)[i].text))
			return 0;
	return 1;
}

static int value_equal(const struct conf_key *k, const void *a, const void *b)
{
	switch (k->type) {
	case T_STRING: {
		const char *x = *FIELD(a, k->off, const char *),
		           *y = *FIELD(b, k->off, const char *);
		return (!x && !y) || (x && y && !strcmp(x, y));
	}
	case T_BOOL:
	case T_ENUM:
		return *FIELD(a, k->off, int) == *FIELD(b, k->off, int);
	case T_ADDR: {
		const char *x = FIELD(a, k->off, struct conf_addr)->text;
		const char *y = FIELD(b, k->off, struct conf_addr)->text;
		return (!x && !y) || (x && y && !strcmp(x, y));
	}
	case T_ADDR_LIST:
	case T_NET_LIST:
	case T_DURATION_LIST:
		return list_equal(k, a, b);
	case T_RATE:
		if (*FIELD(a, k->off2, uint64_t) != *FIELD(b, k->off2, uint64_t))
			return 0;
		/* fall through */
	default:
		return *FIELD(a, k->off, uint64_t) == *FIELD(b, k->off, uint64_t);
	}
}

struct diff {
	void (*cb)(void *arg, const char *what);
	void *arg;
	size_t n;
};

static void diff_report(struct diff *d, const char *sec, const char *inst, const char *key)
{
	char *what = xasprintf("%s%s%s%s%s", sec, inst ? "." : "", inst ? inst : "", key ? "." : "",
	                       key ? key : "");
	d->cb(d->arg, what);
	free(what);
	d->n++;
}

/* Keys of section sec that differ between two instances (or the globals). */
static void diff_keys(struct diff *d, enum sec_id sec, const char *inst, const void *a,
                      const void *b)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		int wanted =
		    sec == SEC_NONE ? !SECTIONS[KEYS[i].sec].instanced : KEYS[i].sec == sec;
		if (wanted && !value_equal(&KEYS[i], a, b))
			diff_report(d, SECTIONS[KEYS[i].sec].name, inst, KEYS[i].name);
	}
}

/* Instances of sec: in both (compared), or in one only. */
static void diff_instances(struct diff *d, enum sec_id sec, const struct conf *a,
                           const struct conf *b, int one_way)
{
	size_t na = sec == SEC_LISTENER ? a->n_listeners : a->n_domains;
	size_t nb = sec == SEC_LISTENER ? b->n_listeners : b->n_domains;

	for (size_t i = 0; i < na; i++) {
		const char *name = sec == SEC_LISTENER ? a->listeners[i].name : a->domains[i].name;
		const void *x = sec == SEC_LISTENER ? (const void *)&a->listeners[i]
		                                    : (const void *)&a->domains[i];
		const void *y = NULL;
		for (size_t j = 0; j < nb && !y; j++)
			if (!strcmp(name, sec == SEC_LISTENER ? b->listeners[j].name
			                                      : b->domains[j].name))
				y = sec == SEC_LISTENER ? (const void *)&b->listeners[j]
				                        : (const void *)&b->domains[j];
		if (!y)
			diff_report(d, SECTIONS[sec].name, name, NULL);
		else if (!one_way)
			diff_keys(d, sec, name, x, y);
	}
}

size_t conf_diff(const struct conf *a, const struct conf *b,
                 void (*cb)(void *arg, const char *what), void *arg)
{
	struct diff d = {cb, arg, 0};

	static const enum sec_id instanced[] = {SEC_LISTENER, SEC_DOMAIN};

	diff_keys(&d, SEC_NONE, NULL, a, b);
	for (size_t i = 0; i < ARRAY_LEN(instanced); i++) {
		diff_instances(&d, instanced[i], a, b, 0);
		diff_instances(&d, instanced[i], b, a, 1);
	}
	return d.n;
}

/* ---- public ----------------------------------------------------------------- */

struct conf *conf_load(const char *file, char **errors)
{
	struct load ld;
	struct conf *c = xcalloc(1, sizeof(*c));
	char *text;

	memset(&ld, 0, sizeof(ld));
	ld.c = c;
	ld.top = ld.file = file ? file : DEFAULT_LABEL;
	c->file = file ? xstrdup(file) : NULL;
	apply_defaults(&ld, SEC_NONE, c);
	domain_add(&ld, "*");
	if (file)
		parse_file(&ld, file);
	else
		parse_text(&ld, DEFAULT_CONF);
	check_all(&ld);

	if (ld.n_errs) {
		conf_free(c);
		c = NULL;
	} else {
		keep_lines(&ld, c);
	}
	text = errors_render(&ld);
	if (errors)
		*errors = c ? NULL : text;
	if (!errors || c)
		free(text);
	free(ld.line);
	free(ld.label);
	free(ld.lst);
	free(ld.dom);
	free(ld.pl);
	return c;
}

static void free_fields(enum sec_id sec, void *base)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		int wanted =
		    sec == SEC_NONE ? !SECTIONS[KEYS[i].sec].instanced : KEYS[i].sec == sec;
		if (wanted && TYPES[KEYS[i].type].free)
			TYPES[KEYS[i].type].free(&KEYS[i], base);
	}
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_listeners; i++) {
		free_fields(SEC_LISTENER, &c->listeners[i]);
		free(c->listeners[i].name);
	}
	for (size_t i = 0; i < c->n_domains; i++) {
		free_fields(SEC_DOMAIN, &c->domains[i]);
		free(c->domains[i].name);
	}
	for (size_t i = 0; i < c->n_pools; i++) {
		free_fields(SEC_POOL, &c->pools[i]);
		free(c->pools[i].name);
	}
	free(c->pools);
	free_fields(SEC_NONE, c);
	free(c->smarthost_at.host);
	if (c->lines) {
		free(c->lines->lst);
		free(c->lines->dom);
		free(c->lines);
	}
	free(c->listeners);
	free(c->domains);
	free(c->file);
	free(c);
}

const struct conf_pool *conf_pool_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; name && i < c->n_pools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return &c->pools[i];
	return NULL;
}

const struct conf_domain *conf_domain_for(const struct conf *c, const char *d)
{
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		n--; /* the root dot of a fully qualified name */
	for (size_t i = 1; i < c->n_domains; i++)
		if (strlen(c->domains[i].name) == n &&
		    ascii_ncasecmp(c->domains[i].name, d, n) == 0)
			return &c->domains[i];
	return &c->domains[0];
}

/* ---- documentation ------------------------------------------------------------ */

/* Markdown table cells: '|' would end the cell. */
static void md_cell(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', out);
		fputc(*s, out);
	}
}

static const char MD_INTRO[] =
    "# Posthorn configuration\n"
    "\n"
    "<!-- Generated by `make docs` from the key table in src/conf/conf.c; do not edit. -->\n"
    "\n"
    "Posthorn reads one INI file, given with `-c FILE`. Without one it runs on the\n"
    "embedded default: data under `./posthorn-data`, SMTP on 127.0.0.1:2525 (relay\n"
    "from loopback only, no AUTH), HTTP on 127.0.0.1:8025. `posthorn check-config`\n"
    "prints every problem as `FILE:LINE: message`. `posthorn.conf.example` lists\n"
    "every key with its default.\n"
    "\n"
    "## Syntax\n"
    "\n"
    "- `[section]` headers, then `key = value` lines. An unknown section or key,\n"
    "  or a key given twice in one section, is an error.\n"
    "- Comments start with `;` or `#`, at the start of a line or after a space.\n"
    "- Sizes take `k`, `m` or `g`, powers of 1024: `25m` is 26214400 bytes; a bare\n"
    "  number is bytes.\n"
    "- Durations take `s`, `m`, `h` or `d`: `5m` is 300 seconds; a bare number is\n"
    "  seconds.\n"
    "- Rates are a count per `s`, `m`, `h` or `d`: `3000/h`.\n"
    "- Addresses are numeric, `127.0.0.1:25` or `[::1]:25`; networks are CIDR,\n"
    "  `10.0.0.0/8` or `fd00::/8`. Lists are comma-separated.\n"
    "- An empty value (`key =`) leaves an optional key unset.\n";

static void md_section(FILE *out, int s)
{
	fprintf(out, "\n## [%s%s]\n\n%s\n\n", SECTIONS[s].name,
	        SECTIONS[s].instanced ? ".NAME" : "", SECTIONS[s].doc);
	fputs("| key | default | meaning |\n|---|---|---|\n", out);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct conf_key *k = &KEYS[i];
		if ((int)k->sec != s)
			continue;
		fprintf(out, "| `%s` | ", k->name);
		if (!k->def)
			fputs("*(required)*", out);
		else if (!*k->def)
			fputs("*(empty)*", out);
		else
			fprintf(out, "`%s`", k->def);
		fputs(" | ", out);
		md_cell(out, k->doc);
		if (k->example) {
			fputs(", e.g. `", out);
			md_cell(out, k->example);
			fputs("`", out);
		}
		fputs(" |\n", out);
	}
}

/* Writes text as "; " comment lines of at most 79 columns. */
static void comment(FILE *out, const char *text)
{
	const char *p = text;

	while (*p) {
		size_t n = strlen(p);
		if (n > 77) {
			n = 77;
			while (n > 0 && p[n] != ' ')
				n--;
			if (n == 0)
				n = strcspn(p, " ");
		}
		fprintf(out, "; %.*s\n", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

static const char EXAMPLE_INTRO[] =
    "; Posthorn configuration: every key, set to its default.\n"
    "; Generated by `make docs` from src/conf/conf.c; docs/config.md explains more.\n"
    ";\n"
    "; Sizes take k, m, g (powers of 1024); durations s, m, h, d; rates N/s, N/m,\n"
    "; N/h, N/d. Addresses are numeric (127.0.0.1:25, [::1]:25). Comments start\n"
    "; with ; or #. Without -c FILE, Posthorn runs on its embedded default.\n";

static void example_section(FILE *out, int s)
{
	fputc('\n', out);
	comment(out, SECTIONS[s].doc);
	if (SECTIONS[s].instanced)
		fprintf(out, "[%s.%s]\n", SECTIONS[s].name, SECTIONS[s].example);
	else
		fprintf(out, "[%s]\n", SECTIONS[s].name);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct conf_key *k = &KEYS[i];
		const char *v = k->def ? k->def : k->example;
		if ((int)k->sec != s)
			continue;
		comment(out, k->doc);
		fprintf(out, "%s =%s%s\n", k->name, *v ? " " : "", v);
		if (k->def && k->example)
			fprintf(out, ";%s = %s\n", k->name, k->example);
	}
}

void conf_write_doc(enum conf_doc_format fmt, FILE *out)
{
	fputs(fmt == CONF_DOC_MARKDOWN ? MD_INTRO : EXAMPLE_INTRO, out);
	for (int s = 0; s < N_SECS; s++) {
		if (fmt == CONF_DOC_MARKDOWN)
			md_section(out, s);
		else
			example_section(out, s);
	}
}

int conf_doc_key(size_t i, struct conf_doc_key *out)
{
	if (i >= N_KEYS)
		return 0;
	out->section = SECTIONS[KEYS[i].sec].name;
	out->section_doc = SECTIONS[KEYS[i].sec].doc;
	out->instanced = SECTIONS[KEYS[i].sec].instanced;
	out->name = KEYS[i].name;
	out->def = KEYS[i].def;
	out->example = KEYS[i].example;
	out->doc = KEYS[i].doc;
	return 1;
}
