/*
 * metrics: the registry (see metrics.h). One table, FAMILIES[], names
 * every family; storage is one array of relaxed atomics per family, laid
 * out series by series: a counter or gauge has one slot per series, a
 * histogram n_bounds + 2 (one per bucket, the overflow bucket, the sum in
 * microseconds). Buckets are kept non-cumulative and summed at render
 * time, so an observation touches exactly three slots.
 *
 * Relaxed order is enough: every slot is an independent tally, and a
 * scrape only needs each value to be one that was really there.
 */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct family {
	const char *name; /* without the posthorn_ prefix */
	const char *help;
	enum metric_type type;
	const char *label[2]; /* names; NULL when unused */
	const char *const *values[2];
	size_t n[2];
	const uint64_t *bounds_us; /* histograms: upper bounds, ascending */
	size_t n_bounds;
	_Atomic uint64_t *v;
};

#define PREFIX "posthorn_"

static const char *const SOURCES[MS_COUNT] = {"smtp", "http", "dsn"};
static const char *const DIRECTIONS[MD_COUNT] = {"inbound", "outbound"};
static const char *const RESULTS[MRES_COUNT] = {"ok", "failed"};
static const char *const LIMITS[ML_COUNT] = {"quota", "throttle", "reputation"};
static const char *const QUEUE_STATES[MQ_COUNT] = {"ready", "deferred", "active"};
static const char *const REASONS[MR_COUNT] = {"other",   "address",  "mailbox", "system",
                                              "network", "protocol", "content", "policy"};
static const int HTTP_CODES[] = {200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 411,
                                 413, 415, 417, 422, 429, 431, 500, 501, 503, 505};
static const char *const HTTP_CODE_NAMES[] = {
    "200", "201", "204", "304", "400", "401", "403", "404", "405", "408", "411",
    "413", "415", "417", "422", "429", "431", "500", "501", "503", "505", "other"};
_Static_assert(ARRAY_LEN(HTTP_CODE_NAMES) == ARRAY_LEN(HTTP_CODES) + 1, "codes and names");

#define MS(x) ((uint64_t)((x)*1000))
#define S(x)  ((uint64_t)(x)*1000000)
static const uint64_t DNS_BOUNDS[] = {MS(1),   MS(5),   MS(10), MS(25),   MS(50), MS(100),
                                      MS(250), MS(500), S(1),   MS(2500), S(5),   S(10)};
static const uint64_t COMMIT_BOUNDS[] = {500,    MS(1),   MS(2.5), MS(5),   MS(10), MS(25),
                                         MS(50), MS(100), MS(250), MS(500), S(1),   MS(2500)};
static const uint64_t DELIVERY_BOUNDS[] = {MS(100), MS(500), S(1),   S(5),    S(10),    S(30),
                                           S(60),   S(300),  S(900), S(3600), S(14400), S(86400)};

#define LABEL1(l, vals) .label = {l, NULL}, .values = {vals, NULL}, .n = {ARRAY_LEN(vals), 0}
#define LABEL2(l0, v0, l1, v1)                                                                     \
	.label = {l0, l1}, .values = {v0, v1}, .n = {ARRAY_LEN(v0), ARRAY_LEN(v1)}
#define BOUNDS(b) .bounds_us = b, .n_bounds = ARRAY_LEN(b)

static struct family FAMILIES[M_COUNT] = {
    [M_MESSAGES_ACCEPTED] = {"messages_accepted_total",
                             "Recipients accepted into the queue (a message to N recipients "
                             "counts N), by entrance.",
                             METRIC_COUNTER, LABEL1("source", SOURCES)},
    [M_MESSAGES_DELIVERED] = {"messages_delivered_total",
                              "Recipients delivered (2xx from the next hop).", METRIC_COUNTER},
    [M_MESSAGES_DEFERRED] = {"messages_deferred_total",
                             "Delivery attempts deferred per recipient, by the RFC 3463 "
                             "subject of the status.",
                             METRIC_COUNTER, LABEL1("class", REASONS)},
    [M_MESSAGES_BOUNCED] = {"messages_bounced_total",
                            "Recipients bounced, by the RFC 3463 subject of the status.",
                            METRIC_COUNTER, LABEL1("class", REASONS)},
    [M_SMTP_SESSIONS] = {"smtp_sessions_total",
                         "SMTP sessions: inbound accepted connections, outbound connections "
                         "opened.",
                         METRIC_COUNTER, LABEL1("direction", DIRECTIONS)},
    [M_TLS_HANDSHAKES] = {"tls_handshakes_total", "TLS handshakes of SMTP sessions, by result.",
                          METRIC_COUNTER, LABEL2("direction", DIRECTIONS, "result", RESULTS)},
    [M_DNS_LATENCY] = {"dns_lookup_duration_seconds",
                       "Time from a DNS query to its answer (or failure).", METRIC_HISTOGRAM,
                       BOUNDS(DNS_BOUNDS)},
    [M_SPOOL_COMMIT_LATENCY] = {"spool_commit_duration_seconds",
                                "Time from a commit request to the message being durable.",
                                METRIC_HISTOGRAM, BOUNDS(COMMIT_BOUNDS)},
    [M_DELIVERY_LATENCY] = {"delivery_duration_seconds",
                            "Time from acceptance to delivery, per delivered recipient.",
                            METRIC_HISTOGRAM, BOUNDS(DELIVERY_BOUNDS)},
    [M_QUEUE_MESSAGES] = {"queue_messages", "Messages in the queue with a recipient still open.",
                          METRIC_GAUGE},
    [M_QUEUE_RECIPIENTS] = {"queue_recipients",
                            "Open recipients in the queue, grouped per message and "
                            "destination, by scheduling state.",
                            METRIC_GAUGE, LABEL1("state", QUEUE_STATES)},
    [M_QUEUE_OLDEST_AGE] = {"queue_oldest_message_age_seconds",
                            "Age of the oldest message in the queue (0 when it is empty).",
                            METRIC_GAUGE},
    [M_OUTBOUND_CONNECTIONS] = {"outbound_connections", "Open outbound SMTP connections.",
                                METRIC_GAUGE},
    [M_SPOOL_COMMITS] = {"spool_commits_total", "Messages made durable in the spool.",
                         METRIC_COUNTER},
    [M_SPOOL_FSYNCS] = {"spool_fsyncs_total", "fsync and fdatasync calls made by the spool.",
                        METRIC_COUNTER},
    [M_HTTP_REQUESTS] = {"http_requests_total",
                         "HTTP requests answered, by route (the path pattern, or "
                         "\"unmatched\") and status code.",
                         METRIC_COUNTER, .label = {"route", "code"},
                         .values = {NULL, HTTP_CODE_NAMES}, .n = {0, ARRAY_LEN(HTTP_CODE_NAMES)}},
    [M_HTTP_CONNECTIONS] = {"http_connections", "Open HTTP connections.", METRIC_GAUGE},
    [M_EVENTS_WRITTEN] = {"events_written_total",
                          "Events written to the database (repeated opens and clicks "
                          "included).",
                          METRIC_COUNTER},
    [M_EVENTS_DROPPED] = {"events_dropped_total",
                          "Events refused because the in-memory event queue was full (the "
                          "database was not keeping up).",
                          METRIC_COUNTER},
    [M_EVENTS_QUEUE_BYTES] = {"events_queue_bytes",
                              "Bytes of events waiting in memory for the event writer.",
                              METRIC_GAUGE},
    [M_WEBHOOK_REQUESTS] = {"webhook_requests_total",
                            "Webhook POSTs made, by result (ok: a 2xx answer).", METRIC_COUNTER,
                            LABEL1("result", RESULTS)},
    [M_WEBHOOK_DROPPED] = {"webhook_events_dropped_total",
                           "Events a webhook never received: their batch failed for "
                           "[events] webhook_retry_for.",
                           METRIC_COUNTER},
    [M_REDIS_UP] = {"redis_up",
                    "1 while the link to [cluster] redis is up, else 0 (always 0 without "
                    "Redis).",
                    METRIC_GAUGE},
    [M_CLUSTER_FALLBACK] = {"cluster_fallback_total",
                            "Cluster-wide limits decided on this node alone, at 1/N of the "
                            "limit, because Redis could not be reached, by limit "
                            "(reputation: outcomes judged on the node's own window).",
                            METRIC_COUNTER, LABEL1("limit", LIMITS)},
    [M_NODE_TAG_LOST] = {"node_tag_lost",
                         "1 while another node holds this node's queue-ID tag (its heartbeats "
                         "stalled and a new node took it): new mail is refused meanwhile.",
                         METRIC_GAUGE},
    [M_NODE_ID_CLASH] = {"node_id_clash",
                         "1 while another running process writes this node's heartbeat row "
                         "(the same node ID: a copied data dir): new mail is refused "
                         "meanwhile.",
                         METRIC_GAUGE},
};

/* ---- layout ---------------------------------------------------------------- */

static size_t series_count(const struct family *f)
{
	size_t n = 1;

	for (int i = 0; i < 2; i++)
		if (f->label[i])
			n *= f->n[i];
	return n;
}

static size_t slots_per_series(const struct family *f)
{
	return f->type == METRIC_HISTOGRAM ? f->n_bounds + 2 : 1;
}

static void family_alloc(struct family *f)
{
	size_t n = series_count(f) * slots_per_series(f);

	free(f->v);
	f->v = xcalloc(n ? n : 1, sizeof(*f->v));
}

void metrics_init(void)
{
	for (size_t i = 0; i < M_COUNT; i++)
		if (!FAMILIES[i].v)
			family_alloc(&FAMILIES[i]);
}

void metrics_free(void)
{
	for (size_t i = 0; i < M_COUNT; i++) {
		free(FAMILIES[i].v);
		FAMILIES[i].v = NULL;
	}
}

void metrics_reset(void)
{
	for (size_t i = 0; i < M_COUNT; i++) {
		struct family *f = &FAMILIES[i];
		size_t n = series_count(f) * slots_per_series(f);
		for (size_t j = 0; f->v && j < n; j++)
			atomic_store_explicit(&f->v[j], 0, memory_order_relaxed);
	}
}

void metrics_bind_labels(enum metric_id id, int label, const char *const *values, size_t n)
{
	struct family *f = &FAMILIES[id];

	f->values[label] = values;
	f->n[label] = n;
	family_alloc(f);
}

/* The first slot of series (l0, l1), or NULL when out of range. */
static _Atomic uint64_t *series(enum metric_id id, size_t l0, size_t l1)
{
	const struct family *f;
	size_t idx;

	if ((unsigned)id >= M_COUNT || !FAMILIES[id].v)
		return NULL;
	f = &FAMILIES[id];
	if ((f->label[0] ? l0 >= f->n[0] : l0 != 0) || (f->label[1] ? l1 >= f->n[1] : l1 != 0))
		return NULL;
	idx = f->label[1] ? l0 * f->n[1] + l1 : l0;
	return &f->v[idx * slots_per_series(f)];
}

/* ---- the hot path ------------------------------------------------------------ */

void metrics_add_l2(enum metric_id id, size_t l0, size_t l1, uint64_t n)
{
	_Atomic uint64_t *s = series(id, l0, l1);

	if (s)
		atomic_fetch_add_explicit(s, n, memory_order_relaxed);
}

void metrics_add_l(enum metric_id id, size_t l0, uint64_t n)
{
	metrics_add_l2(id, l0, 0, n);
}

void metrics_add(enum metric_id id, uint64_t n)
{
	metrics_add_l2(id, 0, 0, n);
}

void metrics_set_l(enum metric_id id, size_t l0, int64_t v)
{
	_Atomic uint64_t *s = series(id, l0, 0);

	if (s)
		atomic_store_explicit(s, (uint64_t)v, memory_order_relaxed);
}

void metrics_set(enum metric_id id, int64_t v)
{
	metrics_set_l(id, 0, v);
}

void metrics_observe_us(enum metric_id id, uint64_t us)
{
	_Atomic uint64_t *s = series(id, 0, 0);
	const struct family *f = &FAMILIES[id];
	size_t b = 0;

	if (!s || f->type != METRIC_HISTOGRAM)
		return;
	while (b < f->n_bounds && us > f->bounds_us[b])
		b++;
	atomic_fetch_add_explicit(&s[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s[f->n_bounds + 1], us, memory_order_relaxed);
}

static uint64_t load(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

int64_t metrics_get(enum metric_id id, size_t l0, size_t l1)
{
	_Atomic uint64_t *s = series(id, l0, l1);
	uint64_t n = 0;

	if (!s)
		return 0;
	if (FAMILIES[id].type != METRIC_HISTOGRAM)
		return (int64_t)load(s);
	for (size_t b = 0; b <= FAMILIES[id].n_bounds; b++)
		n += load(&s[b]);
	return (int64_t)n;
}

/* ---- pure helpers -------------------------------------------------------------- */

enum metric_reason metrics_reason_class(const char *status)
{
	if (!status || (status[0] != '2' && status[0] != '4' && status[0] != '5') ||
	    status[1] != '.' || status[2] < '1' || status[2] > '7' || status[3] != '.')
		return MR_OTHER;
	return (enum metric_reason)(status[2] - '0');
}

size_t metrics_http_code_index(int code)
{
	for (size_t i = 0; i < ARRAY_LEN(HTTP_CODES); i++)
		if (HTTP_CODES[i] == code)
			return i;
	return ARRAY_LEN(HTTP_CODES);
}

/* ---- the exposition format --------------------------------------------------------- */

/* HELP text escapes backslash and newline; label values the quote too. */
static void put_escaped(struct buf *out, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else if (quote && *s == '"')
			buf_puts(out, "\\\"");
		else
			buf_append(out, s, 1);
	}
}

/* {a="x",b="y"} for series (l0, l1), with `extra` (le="...") appended. */
static void put_labels(struct buf *out, const struct family *f, size_t l0, size_t l1,
                       const char *extra)
{
	size_t idx[2] = {l0, l1};
	int any = 0;

	for (int i = 0; i < 2; i++) {
		if (!f->label[i])
			continue;
		buf_printf(out, "%s%s=\"", any++ ? "," : "{", f->label[i]);
		put_escaped(out, f->values[i][idx[i]], 1);
		buf_puts(out, "\"");
	}
	if (extra)
		buf_printf(out, "%s%s", any++ ? "," : "{", extra);
	if (any)
		buf_puts(out, "}");
}

static void put_seconds(struct buf *out, uint64_t us)
{
	buf_printf(out, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void render_histogram(struct buf *out, const struct family *f, const _Atomic uint64_t *s)
{
	uint64_t cum = 0;
	char le[48];

	for (size_t b = 0; b <= f->n_bounds; b++) {
		cum += load(&s[b]);
		if (b < f->n_bounds)
			snprintf(le, sizeof(le), "le=\"%g\"", (double)f->bounds_us[b] / 1e6);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		buf_printf(out, PREFIX "%s_bucket", f->name);
		put_labels(out, f, 0, 0, le);
		buf_printf(out, " %" PRIu64 "\n", cum);
	}
	buf_printf(out, PREFIX "%s_sum ", f->name);
	put_seconds(out, load(&s[f->n_bounds + 1]));
	buf_printf(out, "\n" PREFIX "%s_count %" PRIu64 "\n", f->name, cum);
}

static void render_series(struct buf *out, const struct family *f, size_t l0, size_t l1)
{
	size_t idx = f->label[1] ? l0 * f->n[1] + l1 : l0;
	uint64_t v = load(&f->v[idx]);

	/* Two labels make a sparse grid (routes x codes): only what happened. */
	if (f->label[1] && v == 0)
		return;
	buf_printf(out, PREFIX "%s", f->name);
	put_labels(out, f, l0, l1, NULL);
	if (f->type == METRIC_GAUGE)
		buf_printf(out, " %" PRId64 "\n", (int64_t)v);
	else
		buf_printf(out, " %" PRIu64 "\n", v);
}

static void render_family(struct buf *out, const struct family *f)
{
	static const char *const TYPES[] = {"counter", "gauge", "histogram"};
	size_t n0 = f->label[0] ? f->n[0] : 1, n1 = f->label[1] ? f->n[1] : 1;

	buf_printf(out, "# HELP " PREFIX "%s ", f->name);
	put_escaped(out, f->help, 0);
	buf_printf(out, "\n# TYPE " PREFIX "%s %s\n", f->name, TYPES[f->type]);
	if (!f->v)
		return;
	if (f->type == METRIC_HISTOGRAM) {
		render_histogram(out, f, f->v);
		return;
	}
	for (size_t i = 0; i < n0; i++)
		for (size_t j = 0; j < n1; j++)
			render_series(out, f, i, j);
}

void metrics_render(struct buf *out)
{
	for (size_t i = 0; i < M_COUNT; i++)
		render_family(out, &FAMILIES[i]);
}
