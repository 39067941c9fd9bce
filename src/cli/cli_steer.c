/*
 * cli_steer: what `queue hold`, `queue release` and `queue delete` do
 * (docs/queue.md), with or without a server.
 *
 * A server runs: it does the work (control socket, ctl_queue.c). The
 * request names up to CTL_IDS_MAX IDs (more go in several requests), or
 * "all", or "domain D"; the server answers progress lines, a line for
 * each message named that it could not do, and the counts.
 *
 * No server runs: the CLI takes the spool's lock (no server may start
 * and recover halfway through) and does the same work itself, slice by
 * slice (spool_steer); a delete writes the deletion journal first, which
 * the next server logs, and prints each recipient it drops on stderr as
 * that log line.
 *
 * Either way: progress on stderr every CLI_PROGRESS_EVERY messages (of
 * large operations), the number of recipients changed on stdout, the same
 * in words on stderr, exit 1 if a message named could not be done.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "conf/conf.h"
#include "ctl/ctl.h"
#include "spool/spool.h"
#include "util/util.h"

#define CLI_PROGRESS_EVERY 10000
#define CLI_SLICE          1000

static const char *const verbs[] = {"hold", "release", "delete"};
static const char *const done_words[] = {"held", "released", "deleted"};

struct steer_cli {
	const struct conf *c;
	enum spool_op op;
	size_t messages, recipients;
	size_t shown; /* progress last printed at */
	int failed;
};

static void progress(struct steer_cli *x, size_t done, size_t total)
{
	if (total < CLI_PROGRESS_EVERY || done - x->shown < CLI_PROGRESS_EVERY)
		return;
	x->shown = done;
	fprintf(stderr, "posthorn: %s: %zu of %zu messages\n", verbs[x->op], done, total);
}

/* ---- through a running server ---- */

static void on_line(void *arg, const char *line)
{
	struct steer_cli *x = arg;
	unsigned long long done, total;

	if (sscanf(line, "progress %llu %llu", &done, &total) == 2) {
		progress(x, (size_t)done, (size_t)total);
	} else if (!strncmp(line, "fail ", 5)) {
		cli_say(CLI_RUNTIME, "%s", line + 5);
		x->failed = 1;
	}
}

/* One request. 0 done, CTL_NO_SERVER, or CLI_RUNTIME (reported). */
static int ask(struct steer_cli *x, const struct ctl_args *a)
{
	char reply[512];
	unsigned long long m, r;
	struct buf line;
	int rc;

	buf_init(&line);
	buf_printf(&line, "%s ", verbs[x->op]);
	ctl_args_format(a, &line);
	rc = ctl_request_lines(x->c->data_dir, line.data, on_line, x, reply, sizeof(reply));
	buf_free(&line);
	if (rc == CTL_NO_SERVER)
		return rc;
	if (rc == CTL_LOST)
		return cli_say(CLI_RUNTIME,
		               "the server stopped answering; the %s may be partly done "
		               "(see posthorn queue list)",
		               verbs[x->op]);
	if (sscanf(reply, "ok %llu %llu", &m, &r) != 2)
		return cli_say(CLI_RUNTIME, "server: %s",
		               strncmp(reply, "error ", 6) ? reply : reply + 6);
	x->messages += (size_t)m;
	x->recipients += (size_t)r;
	return 0;
}

/* The IDs go in requests of at most CTL_IDS_MAX. */
static int online(struct steer_cli *x, const struct ctl_args *a)
{
	struct ctl_args part = *a;
	size_t done = 0;
	int rc;

	if (!a->n_ids)
		return ask(x, a);
	while (done < a->n_ids) {
		part.ids = a->ids + done;
		part.n_ids = a->n_ids - done < CTL_IDS_MAX ? a->n_ids - done : CTL_IDS_MAX;
		if ((rc = ask(x, &part)) != 0)
			return done && rc == CTL_NO_SERVER
			           ? cli_say(CLI_RUNTIME, "the server went away halfway through")
			           : rc;
		done += part.n_ids;
	}
	return 0;
}

/* ---- on a stopped server's spool ---- */

static void report(struct steer_cli *x, const struct spool_steered *v)
{
	size_t k;

	if (v->error) {
		cli_say(CLI_RUNTIME, "%s", v->error);
		x->failed = 1;
		return;
	}
	if (x->op == SPOOL_DELETE && !v->env && v->removed)
		fprintf(stderr, "queue=%s event=deleted reason=unreadable by=cli offline=1\n",
		        v->id);
	for (k = 0; x->op == SPOOL_DELETE && v->env && k < v->n; k++) {
		fprintf(stderr, "queue=%s event=deleted to=<", v->id);
		cli_put_safe(stderr, v->env->rcpts[v->idx[k]].addr);
		fputs("> by=cli offline=1\n", stderr);
	}
	x->messages += v->n || v->removed;
	x->recipients += v->n;
}

static int run_offline(struct steer_cli *x, struct spool *sp, const struct spool_steer_opts *o)
{
	struct spool_steered *v = NULL;
	struct spool_steer *st;
	char *err = NULL;
	size_t n = 0, i;
	long left;

	if (!(st = spool_steer_begin(sp, o, &err)))
		goto fail;
	do {
		if ((left = spool_steer_step(st, CLI_SLICE, &v, &n, &err)) < 0)
			break;
		for (i = 0; i < n; i++)
			report(x, &v[i]);
		spool_steered_free(v, n);
		v = NULL, n = 0;
		progress(x, spool_steer_done(st), spool_steer_total(st));
	} while (left > 0);
	spool_steer_end(st);
	if (left >= 0)
		return 0;
fail:
	cli_say(CLI_RUNTIME, "%s", err);
	free(err);
	return CLI_RUNTIME;
}

static int offline(struct steer_cli *x, const struct ctl_args *a)
{
	struct spool_steer_opts o = {x->op,     a->n_ids ? a->ids : NULL, a->n_ids,
	                             a->domain, x->op == SPOOL_DELETE,    clock_now_s()};
	struct spool *sp;
	char *err = NULL;
	int rc;

	if (!(sp = spool_open(x->c->data_dir, NULL, &err)) || spool_lock(sp, &err) < 0) {
		rc = cli_say(
		    CLI_RUNTIME, "%s%s", err,
		    sp ? "; its server does not answer on its control socket yet: try again" : "");
		free(err);
		spool_close(sp);
		return rc;
	}
	rc = run_offline(x, sp, &o);
	spool_close(sp);
	return rc;
}

int cli_steer(const struct conf *c, enum spool_op op, const struct ctl_args *a)
{
	struct steer_cli x = {c, op, 0, 0, 0, 0};
	int rc = online(&x, a);

	if (rc == CTL_NO_SERVER)
		rc = offline(&x, a);
	if (rc != 0)
		return rc;
	printf("%zu\n", x.recipients);
	fprintf(stderr, "posthorn: %s %zu recipient%s of %zu message%s\n", done_words[op],
	        x.recipients, x.recipients == 1 ? "" : "s", x.messages, x.messages == 1 ? "" : "s");
	return cli_flush(x.failed ? CLI_RUNTIME : CLI_OK);
}
