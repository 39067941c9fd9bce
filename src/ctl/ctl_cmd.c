/*
 * ctl_cmd: what a running server does for each control request, from one
 * table: the verb, the argument it takes, and the function that acts.
 * A request is "VERB" or "VERB ARG"; the reply is "ok N" (N: how many
 * things it touched) or "error TEXT". Every request is logged with its
 * reply. Runs on the loop thread (ctl.c calls it from its read callback).
 */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"
#include "log/log.h"
#include "sched/sched.h"
#include "spool/spool.h"
#include "util/util.h"

enum ctl_arg {
	ARG_ID,        /* a queue ID */
	ARG_ID_OR_ALL, /* a queue ID or "all" (then NULL is passed) */
	ARG_LATER,     /* whatever follows: the request answers later, itself */
};

/* A request answered at once (run: "ok N") or later (later: it answers
 * req, and logs, itself; ctl_queue.c). */
struct ctl_cmd {
	const char *verb;
	enum ctl_arg arg;
	long (*run)(const struct ctl_deps *d, const char *id);
	void (*later)(const struct ctl_deps *d, struct ctl_req *req, const char *line,
	              const char *args);
};

static long do_retry(const struct ctl_deps *d, const char *id)
{
	return sched_retry(d->sched, id);
}

static long do_forget(const struct ctl_deps *d, const char *id)
{
	sched_forget(d->sched, id);
	return 1;
}

static void do_hold(const struct ctl_deps *d, struct ctl_req *req, const char *line,
                    const char *args)
{
	ctl_queue_steer(d->sched, req, SPOOL_HOLD, line, args);
}

static void do_release(const struct ctl_deps *d, struct ctl_req *req, const char *line,
                       const char *args)
{
	ctl_queue_steer(d->sched, req, SPOOL_RELEASE, line, args);
}

static void do_delete(const struct ctl_deps *d, struct ctl_req *req, const char *line,
                      const char *args)
{
	ctl_queue_steer(d->sched, req, SPOOL_DELETE, line, args);
}

static void do_pauses(const struct ctl_deps *d, struct ctl_req *req, const char *line,
                      const char *args)
{
	ctl_queue_pauses(d->sched, req);
	log_info("event=control request=%s", log_q(line));
}

static const struct ctl_cmd CMDS[] = {
    {"retry", ARG_ID_OR_ALL, do_retry, NULL}, {"forget", ARG_ID, do_forget, NULL},
    {"hold", ARG_LATER, NULL, do_hold},       {"release", ARG_LATER, NULL, do_release},
    {"delete", ARG_LATER, NULL, do_delete},   {"pause-reload", ARG_LATER, NULL, do_pauses},
};

/* 0 with *id set (NULL for "all"), or -1: not an argument cmd takes. */
static int take_arg(const struct ctl_cmd *cmd, const char *arg, const char **id)
{
	if (!arg)
		return -1;
	if (cmd->arg == ARG_ID_OR_ALL && !strcmp(arg, "all")) {
		*id = NULL;
		return 0;
	}
	*id = arg;
	return id_valid(arg) ? 0 : -1;
}

static const struct ctl_cmd *find(const char *line, const char **args)
{
	const char *sp = strchr(line, ' ');
	size_t vlen = sp ? (size_t)(sp - line) : strlen(line);

	*args = sp ? sp + 1 : NULL;
	for (size_t i = 0; i < ARRAY_LEN(CMDS); i++)
		if (strlen(CMDS[i].verb) == vlen && strncmp(line, CMDS[i].verb, vlen) == 0)
			return &CMDS[i];
	return NULL;
}

void ctl_dispatch(void *arg, struct ctl_req *req, const char *line)
{
	const struct ctl_deps *d = arg;
	const char *args, *id = NULL;
	const struct ctl_cmd *cmd = find(line, &args);
	char reply[128];

	if (cmd && cmd->later) {
		cmd->later(d, req, line, args ? args : "");
		return;
	}
	if (!cmd)
		snprintf(reply, sizeof(reply), "error unknown request");
	else if (take_arg(cmd, args, &id) < 0)
		snprintf(reply, sizeof(reply), "error bad argument for %s", cmd->verb);
	else
		snprintf(reply, sizeof(reply), "ok %ld", cmd->run(d, id));
	log_info("event=control request=%s reply=%s", log_q(line), log_q(reply));
	ctl_reply(req, "%s", reply);
}
