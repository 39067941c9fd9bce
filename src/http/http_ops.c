/*
 * http_ops: the routes for operators, which need no key: GET /healthz,
 * GET /metrics and GET /v1/openapi.json.
 *
 * /healthz is 200 only when the server could take a message now: a
 * temporary file can be made in the spool (spool_msg_new, then abort: the
 * path every accepted message takes), the data_dir file system has more
 * than [server] min_free_space free (below it SMTP answers 452), the
 * database answers a read, and the server is not draining. All three
 * checks touch the disk, so they run on a worker.
 *
 * /metrics copies the values kept elsewhere (scheduler, spool) into the
 * registry, then renders it; the oldest queued message's arrival is the
 * scheduler's (it keeps its messages in age order), so a scrape reads no
 * file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "conf/conf.h"
#include "http/http_handlers.h"
#include "http/http_int.h"
#include "metrics/metrics.h"
#include "sched/sched.h"
#include "spool/spool.h"
#include "store/store.h"

/* docs/openapi.json, embedded at build time (Makefile). */
extern const char http_openapi_json[];
extern const unsigned long http_openapi_json_len;

/* ---- /healthz -------------------------------------------------------------------- */

struct health_job {
	struct http_req *r;
	char *spool, *disk, *database; /* NULL: ok; else what is wrong (malloc'd) */
};

static char *check_spool(struct spool *sp)
{
	char *err = NULL;
	struct spool_msg *m = spool_msg_new(sp, &err);

	if (!m)
		return err ? err : xstrdup("cannot create a file in the spool");
	spool_msg_abort(m);
	return NULL;
}

static char *check_disk(const struct conf *c)
{
	struct statvfs v;
	uint64_t avail;

	if (statvfs(c->data_dir, &v) < 0)
		return xasprintf("%s: %s", c->data_dir, strerror(errno));
	avail = (uint64_t)v.f_bavail * v.f_frsize;
	if (avail < c->min_free_space)
		return xasprintf("%llu bytes free, below min_free_space (%llu)",
		                 (unsigned long long)avail, (unsigned long long)c->min_free_space);
	return NULL;
}

static void health_work(void *arg)
{
	struct health_job *j = arg;
	const struct http_deps *d = http_req_deps(j->r);
	char *err = NULL;

	j->spool = check_spool(d->spool);
	j->disk = check_disk(http_req_conf(j->r));
	if (store_ping(d->store, &err) < 0)
		j->database = err ? err : xstrdup("no answer");
}

static void add_check(json_t *checks, struct buf *why, const char *name, const char *err)
{
	json_object_set_new(checks, name, json_string(err ? err : "ok"));
	if (err)
		buf_printf(why, "%s%s: %s", why->len ? "; " : "", name, err);
}

static void health_done(void *arg)
{
	struct health_job *j = arg;
	json_t *checks = json_object(), *body;
	struct buf why;

	buf_init(&why);
	add_check(checks, &why, "spool", j->spool);
	add_check(checks, &why, "disk", j->disk);
	add_check(checks, &why, "database", j->database);
	if (j->r->conn->h->draining)
		add_check(checks, &why, "server", "shutting down");
	body = json_pack("{s:s,s:o}", "status", why.len ? "unavailable" : "ok", "checks", checks);
	if (why.len)
		json_object_set_new(
		    body, "error",
		    json_pack("{s:s,s:s}", "code", "unavailable", "message", why.data));
	http_reply_json(j->r, why.len ? 503 : 200, body);
	buf_free(&why);
	free(j->spool);
	free(j->disk);
	free(j->database);
	free(j);
}

void http_h_healthz(struct http_req *r)
{
	struct health_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	http_req_defer(r, health_work, health_done, j);
}

/* ---- /metrics --------------------------------------------------------------------------- */

static void copy_stats(struct http *h)
{
	struct sched_stats ss;
	struct spool_stats sp;
	int64_t now = clock_now_s();

	if (h->deps.sched) {
		sched_get_stats(h->deps.sched, &ss);
		metrics_set(M_QUEUE_MESSAGES, (int64_t)ss.messages);
		metrics_set_l(M_QUEUE_RECIPIENTS, MQ_READY, (int64_t)ss.items_ready);
		metrics_set_l(M_QUEUE_RECIPIENTS, MQ_DEFERRED, (int64_t)ss.items_deferred);
		metrics_set_l(M_QUEUE_RECIPIENTS, MQ_ACTIVE, (int64_t)ss.items_active);
		metrics_set(M_OUTBOUND_CONNECTIONS, (int64_t)ss.connections);
		metrics_set(M_QUEUE_OLDEST_AGE, ss.oldest_created > 0 && now > ss.oldest_created
		                                    ? now - ss.oldest_created
		                                    : 0);
	}
	if (h->deps.spool) {
		spool_get_stats(h->deps.spool, &sp);
		metrics_set(M_SPOOL_COMMITS, (int64_t)sp.commits);
		metrics_set(M_SPOOL_FSYNCS, (int64_t)sp.fsyncs);
	}
}

void http_h_metrics(struct http_req *r)
{
	struct buf out;

	copy_stats(r->conn->h);
	buf_init(&out);
	metrics_render(&out);
	http_reply(r, 200, METRICS_CONTENT_TYPE, out.data, out.len);
	buf_free(&out);
}

/* ---- /v1/openapi.json --------------------------------------------------------------------- */

void http_h_openapi(struct http_req *r)
{
	http_reply(r, 200, "application/json", http_openapi_json, http_openapi_json_len);
}
