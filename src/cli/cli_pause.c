/*
 * cli_pause: `posthorn pause DOMAIN|--all` and `posthorn resume
 * DOMAIN|--all`: delivery to a destination (or everywhere) stops and
 * starts again, while mail is still accepted (docs/queue.md). The list is
 * DATA_DIR/paused (sched_pause.c writes it, durably, under a lock); a
 * running server is told to read it again, and one that starts later
 * reads it at start.
 *
 * Nothing on stdout (there is no count); what changed, in words, on
 * stderr. Exit 1 when resuming one destination while all are paused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "conf/conf.h"
#include "ctl/ctl.h"
#include "sched/sched.h"
#include "sched/sched_policy.h"
#include "util/util.h"

/* A running server reads the file again; none running: nothing to do. */
static int tell_server(const struct conf *c)
{
	char reply[256];
	int rc = ctl_request_lines(c->data_dir, "pause-reload", NULL, NULL, reply, sizeof(reply));

	if (rc == CTL_LOST || (rc == 0 && strcmp(reply, "ok") != 0))
		return cli_say(CLI_RUNTIME, "the server did not take the change: %s",
		               rc == 0 ? reply : "no answer");
	return CLI_OK;
}

/* With a smarthost every recipient has one destination, the smarthost:
 * a recipient domain paused there stops nothing. */
static void warn_smarthost(const struct conf *c, const char *name)
{
	char host[300];

	if (!c->smarthost || sched_pause_name(c->smarthost_at.host, host, sizeof(host)) < 0 ||
	    !strcmp(host, name))
		return;
	fprintf(stderr,
	        "posthorn: warning: with smarthost set, all mail goes to %s: pausing %s stops "
	        "nothing (pause %s or --all)\n",
	        host, name, host);
}

static int run(int argc, char **argv, const struct conf *c, int pause)
{
	int all = 0, changed, rc;
	const struct cli_opt opts[] = {{"--all", &all, NULL}};
	char *pos[1], name[300], *err = NULL;
	size_t n;

	if (cli_parse(argc, argv, opts, ARRAY_LEN(opts), pos, &n, 1) != CLI_OK)
		return CLI_USAGE;
	if (all == (n == 1))
		return cli_say(CLI_USAGE, "%s takes a domain or --all", argv[0]);
	if (n == 1 && sched_pause_name(pos[0], name, sizeof(name)) < 0)
		return cli_say(CLI_USAGE, "not a domain: %s", pos[0]);
	if ((changed = sched_pause_change(c->data_dir, all ? NULL : name, pause, &err)) < 0) {
		rc = cli_say(CLI_RUNTIME, "%s", err);
		free(err);
		return rc;
	}
	if (pause && !all)
		warn_smarthost(c, name);
	if (changed)
		fprintf(stderr, "posthorn: %s %s\n", all ? "every destination" : name,
		        pause ? "paused" : "resumed");
	else
		fprintf(stderr, "posthorn: %s %s paused\n", all ? "no destination" : name,
		        pause ? "was already" : "was not");
	return tell_server(c);
}

static int cmd_pause(int argc, char **argv, const struct conf *c)
{
	return run(argc, argv, c, 1);
}

static int cmd_resume(int argc, char **argv, const struct conf *c)
{
	return run(argc, argv, c, 0);
}

char *cli_paused_text(const struct conf *c)
{
	struct sched_pauses ps;
	char *err = NULL;
	struct buf b;
	size_t i;

	if (sched_pause_read(c->data_dir, &ps, &err) < 0) {
		free(err);
		return NULL;
	}
	buf_init(&b);
	if (ps.all)
		buf_puts(&b, "every destination");
	for (i = 0; !ps.all && i < ps.n; i++)
		buf_printf(&b, "%s%s", i ? ", " : "", ps.names[i]);
	sched_pauses_free(&ps);
	if (b.len == 0) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

const struct cli_cmd cli_pause_cmd = {
    .path = "pause",
    .args = "DOMAIN|--all",
    .about = "Stops delivery to DOMAIN (or everywhere); mail is still accepted and waits.",
    .more = "  Kept in DATA_DIR/paused across restarts; a running server stops within a\n"
            "  second. With a smarthost, pause the smarthost's name (or --all).\n",
    .run = cmd_pause,
    .flags = CLI_AS_USER,
};

const struct cli_cmd cli_resume_cmd = {
    .path = "resume",
    .args = "DOMAIN|--all",
    .about = "Delivers to DOMAIN again (--all: lifts every pause).",
    .run = cmd_resume,
    .flags = CLI_AS_USER,
};
