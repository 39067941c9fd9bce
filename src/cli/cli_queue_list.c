/*
 * cli_queue_list: `posthorn queue list [--domain D] [--sender S]
 * [--state S] [--json]`, the queue as an operator reads it: per message
 * its ID, size, arrival time and sender, then each open recipient with its
 * state, attempts, next attempt and last reply; then a totals line. With
 * --json, one JSON object per message and line instead (docs/cli.md).
 *
 * Filters pick recipients: --domain (the recipient's domain, any case),
 * --state (pending, deferred or held); --sender picks messages (the
 * address, any case; "<>" is the null sender): the spool's filter rules
 * (spool_select.c), which GET /v1/queue shares. A message is shown with
 * the open recipients that pass, and only if one does. The text form ends
 * with the paused destinations, if any.
 *
 * Reads DATA_DIR/spool through the spool module (opened without an event
 * base: no commits, no lock), so it is safe while a server runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "conf/conf.h"
#include "spool/spool.h"
#include "util/util.h"

struct list_args {
	const char *domain, *sender, *state;
	struct spool_filter f;
	int json;
};

struct totals {
	size_t messages, pending, deferred, held;
	uint64_t bytes;
	int failed; /* JSON output failed */
};

struct list_ctx {
	const struct list_args *a;
	struct totals t;
	int64_t now;
	int header_done;
};

static int rcpt_passes(const struct list_args *a, const struct rcpt *r)
{
	return spool_filter_rcpt(&a->f, r);
}

static void put_sender(const struct envelope *e)
{
	putchar('<');
	cli_put_safe(stdout, e->mail_from);
	putchar('>');
}

static void text_rcpt(const struct list_ctx *x, const struct rcpt *r)
{
	char t[32];

	printf("    %-8s attempts=%-3u next=%-20s <", rcpt_state_shown(r), (unsigned)r->attempts,
	       r->next_attempt > x->now ? cli_time(r->next_attempt, t, sizeof(t)) : "now");
	cli_put_safe(stdout, r->addr);
	puts(">");
	if (r->last_reply) {
		fputs("        last reply: ", stdout);
		cli_put_safe(stdout, r->last_reply);
		putchar('\n');
	}
}

static void text_message(struct list_ctx *x, const struct envelope *e)
{
	char t[32];

	if (!x->header_done)
		printf("%-*s %10s  %-20s  %s\n", ID_LEN, "QUEUE ID", "SIZE", "ARRIVAL",
		       "SENDER / OPEN RECIPIENTS");
	x->header_done = 1;
	printf("%-*s %10llu  %-20s  ", ID_LEN, e->id, (unsigned long long)e->size,
	       cli_time(e->created, t, sizeof(t)));
	put_sender(e);
	putchar('\n');
	for (size_t i = 0; i < e->n_rcpts; i++)
		if (rcpt_passes(x->a, &e->rcpts[i]))
			text_rcpt(x, &e->rcpts[i]);
}

static int json_message(const struct list_ctx *x, const struct envelope *e)
{
	json_t *o = cli_json_message(e), *rcpts = json_array();

	for (size_t i = 0; i < e->n_rcpts; i++)
		if (rcpt_passes(x->a, &e->rcpts[i]))
			json_array_append_new(rcpts, cli_json_rcpt(&e->rcpts[i], 0));
	json_object_set_new(o, "recipients", rcpts);
	return cli_json_print(o);
}

static int list_one(void *arg, struct envelope *e)
{
	struct list_ctx *x = arg;
	size_t pending = 0, deferred = 0, held = 0;

	if (!spool_filter_sender(&x->a->f, e))
		return 0;
	for (size_t i = 0; i < e->n_rcpts; i++) {
		const struct rcpt *r = &e->rcpts[i];
		if (!rcpt_passes(x->a, r))
			continue;
		held += rcpt_is_held(r);
		pending += !rcpt_is_held(r) && r->state == RCPT_PENDING;
		deferred += !rcpt_is_held(r) && r->state == RCPT_DEFERRED;
	}
	if (pending + deferred + held == 0)
		return 0;
	x->t.messages++;
	x->t.bytes += e->size;
	x->t.pending += pending;
	x->t.deferred += deferred;
	x->t.held += held;
	if (!x->a->json) {
		text_message(x, e);
		return 0;
	}
	x->t.failed = json_message(x, e) != CLI_OK;
	return x->t.failed; /* stdout is gone: stop */
}

static void print_totals(const struct totals *t, const struct conf *c)
{
	size_t open = t->pending + t->deferred + t->held;
	char *paused = cli_paused_text(c);

	printf("%s-- %zu message%s, %llu bytes, %zu open recipient%s (%zu pending, %zu deferred, "
	       "%zu held)\n",
	       t->messages ? "\n" : "", t->messages, t->messages == 1 ? "" : "s",
	       (unsigned long long)t->bytes, open, open == 1 ? "" : "s", t->pending, t->deferred,
	       t->held);
	if (paused)
		printf("-- delivery paused: %s\n", paused);
	free(paused);
}

static int parse_args(struct list_args *a, int argc, char **argv)
{
	const struct cli_opt opts[] = {
	    {"--domain", NULL, &a->domain},
	    {"--sender", NULL, &a->sender},
	    {"--state", NULL, &a->state},
	    {"--json", &a->json, NULL},
	};
	size_t n_pos;

	memset(a, 0, sizeof(*a));
	if (cli_parse(argc, argv, opts, ARRAY_LEN(opts), NULL, &n_pos, 0) != CLI_OK)
		return CLI_USAGE;
	if (a->state && !(a->f.states = spool_filter_state(a->state)))
		return cli_say(CLI_USAGE, "--state takes pending, deferred or held, not '%s'",
		               a->state);
	if (a->domain && !*a->domain)
		return cli_say(CLI_USAGE, "--domain needs a domain");
	a->f.domain = a->domain;
	a->f.sender = a->sender;
	return CLI_OK;
}

int cli_queue_list(int argc, char **argv, const struct conf *c)
{
	struct list_args a;
	struct list_ctx x;
	struct spool *sp;
	char *err = NULL;
	int rc = parse_args(&a, argc, argv);

	if (rc != CLI_OK)
		return rc;
	if (!(sp = spool_open(c->data_dir, NULL, &err))) {
		rc = cli_say(CLI_RUNTIME, "%s", err);
		free(err);
		return rc;
	}
	memset(&x, 0, sizeof(x));
	x.a = &a;
	x.now = clock_now_s();
	if (spool_foreach(sp, list_one, &x, &err) < 0) {
		rc = cli_say(CLI_RUNTIME, "%s", err);
		free(err);
	} else if (x.t.failed) {
		rc = CLI_RUNTIME;
	} else if (!a.json) {
		print_totals(&x.t, c);
	}
	spool_close(sp);
	return cli_flush(rc);
}
