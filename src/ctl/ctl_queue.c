/*
 * ctl_queue: the control requests that steer the queue and may take a
 * while (docs/queue.md):
 *
 *   hold ARGS | release ARGS | delete ARGS   (ARGS: ctl_args.c)
 *     -> "progress DONE TOTAL" after each slice, "fail ID: WHY" for each
 *        message named that could not be done, then
 *        "ok MESSAGES RECIPIENTS" or "error TEXT"
 *   pause-reload  -> "ok" once DATA_DIR/paused is read again
 *
 * The work is the scheduler's (sched_steer, sched_pause_reload); this
 * file turns a request into it and its progress into lines. A client
 * that hangs up does not stop the operation; a server that stops
 * detaches it (ctl_free cancels the request).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "log/log.h"
#include "sched/sched.h"
#include "spool/spool.h"
#include "util/util.h"

struct steer_call {
	struct ctl_req *req;
	struct sched *s;
	char *line; /* the request, for the log */
};

static void call_free(struct steer_call *c)
{
	free(c->line);
	free(c);
}

static void on_progress(void *arg, size_t done, size_t total)
{
	struct steer_call *c = arg;

	ctl_send(c->req, "progress %zu %zu", done, total);
}

static void on_done(void *arg, const struct sched_steer_res *res)
{
	struct steer_call *c = arg;
	size_t i;

	for (i = 0; i < res->n_failed; i++)
		ctl_send(c->req, "fail %s", res->failed[i]);
	if (res->error)
		ctl_reply(c->req, "error %s", res->error);
	else
		ctl_reply(c->req, "ok %zu %zu", res->messages, res->recipients);
	log_info("event=control request=%s messages=%zu recipients=%zu failed=%zu "
	         "error=%s",
	         log_q(c->line), res->messages, res->recipients, res->n_failed,
	         log_q(res->error ? res->error : "none"));
	call_free(c);
}

static void on_cancel(void *arg, struct ctl_req *req)
{
	struct steer_call *c = arg;

	sched_steer_detach(c->s, c);
	call_free(c);
}

void ctl_queue_steer(struct sched *s, struct ctl_req *req, int op, const char *line,
                     const char *args)
{
	struct steer_call *c;
	struct sched_steer_req r;
	struct ctl_args a;
	char *why = NULL;

	if (ctl_args_parse(args, &a, &why) < 0) {
		ctl_reply(req, "error %s", why);
		free(why);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->req = req;
	c->s = s;
	c->line = xstrdup(line);
	ctl_req_on_cancel(req, on_cancel, c);
	memset(&r, 0, sizeof(r));
	r.op = op;
	r.ids = a.n_ids ? a.ids : NULL;
	r.n_ids = a.n_ids;
	r.domain = a.domain;
	r.by = "cli";
	r.progress = on_progress;
	r.done = on_done;
	r.arg = c;
	sched_steer(s, &r); /* copies what it keeps */
	ctl_args_free(&a);
}

void ctl_queue_pauses(struct sched *s, struct ctl_req *req)
{
	char *err = NULL;

	if (sched_pause_reload(s, &err) < 0) {
		ctl_reply(req, "error %s", err);
		free(err);
		return;
	}
	ctl_reply(req, "ok");
}
