/*
 * cli_queue: `posthorn queue show | hold | release | retry | delete` and
 * the queue's command tree (`queue list` is in cli_queue_list.c, the
 * work of hold, release and delete in cli_steer.c; docs/queue.md).
 *
 * Reads DATA_DIR/spool through the spool module (opened without an event
 * base: no commits), which is safe while a server runs. Changes go
 * through a running server (its control socket), or, when none answers,
 * are made on the spool under its lock. Output: show to stdout,
 * diagnostics to stderr. Values that come from the network
 * (addresses, HELO, replies) are printed with control bytes and
 * backslashes escaped as \xHH, so one item stays one line; with --json
 * they are JSON strings (docs/cli.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "conf/conf.h"
#include "ctl/ctl.h"
#include "spool/spool.h"

/* The longest header block `queue show` prints (the rest is cut, and said). */
#define HEADERS_MAX (1024 * 1024)

struct retry_ctx {
	struct spool *sp;
	const char *id; /* NULL: all */
	long count;
	int failed;
};

static int fail(char *err)
{
	int e = errno; /* ENOENT: no such message (1); EINVAL: bad ID (2) */

	cli_say(e == EINVAL ? CLI_USAGE : CLI_RUNTIME, "%s", err);
	free(err);
	return e == EINVAL ? CLI_USAGE : CLI_RUNTIME;
}

static struct spool *open_spool(const struct conf *c)
{
	char *err = NULL;
	struct spool *sp = spool_open(c->data_dir, NULL, &err);

	if (!sp) {
		cli_say(CLI_RUNTIME, "%s", err);
		free(err);
	}
	return sp;
}

/* Takes the one operand, a queue ID. 0 ok, CLI_USAGE (reported). */
static int one_id(int argc, char **argv, const struct cli_opt *opts, size_t n_opts, const char **id)
{
	char *pos[1];
	size_t n;

	if (cli_parse(argc, argv, opts, n_opts, pos, &n, 1) != CLI_OK)
		return CLI_USAGE;
	if (n != 1)
		return cli_say(CLI_USAGE, "%s needs a queue ID", argv[0]);
	if (!id_valid(pos[0]))
		return cli_say(CLI_USAGE, "invalid queue ID: %s", pos[0]);
	*id = pos[0];
	return CLI_OK;
}

/* ---- show ---- */

static void show_field(const char *key, const char *v)
{
	printf("%s: ", key);
	cli_put_safe(stdout, v ? v : "");
	putchar('\n');
}

static void show_rcpt(const struct rcpt *r)
{
	char t[32];

	fputs("rcpt: ", stdout);
	cli_put_safe(stdout, r->addr);
	printf(" state=%s attempts=%u", rcpt_state_shown(r), (unsigned)r->attempts);
	if (r->next_attempt)
		printf(" next_attempt=%s", cli_time(r->next_attempt, t, sizeof(t)));
	if (rcpt_is_held(r))
		printf(" held_since=%s", cli_time(r->held_since, t, sizeof(t)));
	if (r->held_secs)
		printf(" held_seconds=%llu", (unsigned long long)r->held_secs);
	if (r->notify)
		printf(" notify=%u", r->notify);
	if (r->orcpt)
		fputs(" orcpt=", stdout), cli_put_safe(stdout, r->orcpt);
	if (r->last_reply)
		fputs(" last_reply=", stdout), cli_put_safe(stdout, r->last_reply);
	putchar('\n');
}

static const char *ret_name(enum dsn_ret ret)
{
	return ret == DSN_RET_FULL ? "FULL" : ret == DSN_RET_HDRS ? "HDRS" : NULL;
}

static void show_text(const struct envelope *e, const char *headers, int cut)
{
	const char *ret = ret_name(e->ret);
	char t[32];

	printf("id: %s\ncreated: %s\nsize: %llu\nfrom: ", e->id, cli_time(e->created, t, sizeof(t)),
	       (unsigned long long)e->size);
	if (*e->mail_from)
		cli_put_safe(stdout, e->mail_from);
	else
		fputs("<>", stdout);
	putchar('\n');
	show_field("account", e->account);
	show_field("client_ip", e->client_ip);
	show_field("helo", e->helo);
	printf("body: %s\nsmtputf8: %s\nret: %s\n", e->body == BODY_8BITMIME ? "8BITMIME" : "7BIT",
	       e->smtputf8 ? "yes" : "no", ret ? ret : "-");
	show_field("envid", e->envid ? e->envid : "-");
	for (size_t i = 0; i < e->n_rcpts; i++)
		show_rcpt(&e->rcpts[i]);
	printf("\n%s", headers);
	if (cut)
		printf("\n[the header block goes on: cut at %d bytes]\n", HEADERS_MAX);
}

static json_t *show_json(const struct envelope *e, const char *headers, int cut)
{
	json_t *o = cli_json_message(e), *rcpts = json_array();
	const char *ret = ret_name(e->ret);

	json_object_set_new(o, "client_ip", cli_json_str(e->client_ip));
	json_object_set_new(o, "helo", cli_json_str(e->helo));
	json_object_set_new(o, "body", json_string(e->body == BODY_8BITMIME ? "8BITMIME" : "7BIT"));
	json_object_set_new(o, "smtputf8", json_boolean(e->smtputf8));
	json_object_set_new(o, "ret", ret ? json_string(ret) : json_null());
	json_object_set_new(o, "envid", cli_json_str(e->envid));
	for (size_t i = 0; i < e->n_rcpts; i++)
		json_array_append_new(rcpts, cli_json_rcpt(&e->rcpts[i], 1));
	json_object_set_new(o, "recipients", rcpts);
	json_object_set_new(o, "headers", cli_json_str(headers));
	json_object_set_new(o, "headers_truncated", json_boolean(cut));
	return o;
}

/* Appends the header block (up to the first empty line, CRLF as LF) to b,
 * at most max bytes; *cut says whether it was longer. Read in pieces. */
static int read_headers(struct spool *sp, const char *id, struct buf *b, size_t max, int *cut)
{
	char chunk[8192], *err = NULL, prev = '\n';
	uint64_t off, len;
	int fd;

	if (spool_open_body(sp, id, &fd, &off, &len, &err) < 0)
		return fail(err);
	*cut = 0;
	while (len > 0) {
		ssize_t n =
		    pread(fd, chunk, len < sizeof(chunk) ? (size_t)len : sizeof(chunk), (off_t)off);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] == '\r')
				continue;
			if ((chunk[i] == '\n' && prev == '\n') || (b->len >= max && (*cut = 1)))
				goto out;
			buf_append(b, &chunk[i], 1);
			prev = chunk[i];
		}
		off += (uint64_t)n, len -= (uint64_t)n;
	}
out:
	close(fd);
	return CLI_OK;
}

static int cmd_show(int argc, char **argv, const struct conf *c)
{
	int json = 0, cut = 0, rc;
	const struct cli_opt opts[] = {{"--json", &json, NULL}};
	struct envelope *e;
	struct spool *sp;
	const char *id = NULL;
	char *err = NULL;
	struct buf h;

	if ((rc = one_id(argc, argv, opts, ARRAY_LEN(opts), &id)) != CLI_OK)
		return rc;
	if (!(sp = open_spool(c)))
		return CLI_RUNTIME;
	buf_init(&h);
	buf_puts(&h, "");
	if (spool_load(sp, id, &e, &err) < 0) {
		rc = fail(err);
	} else {
		rc = read_headers(sp, id, &h, HEADERS_MAX, &cut);
		if (rc == CLI_OK && json)
			rc = cli_json_print(show_json(e, h.data, cut));
		else if (rc == CLI_OK)
			show_text(e, h.data, cut);
		envelope_free(e);
	}
	buf_free(&h);
	spool_close(sp);
	return cli_flush(rc);
}

/* ---- hold, release, delete (cli_steer.c) ---- */

/* ID... or --domain D (or, for delete, --all): into a. CLI_OK or
 * CLI_USAGE (reported). */
static int steer_args(int argc, char **argv, int with_all, struct ctl_args *a)
{
	const char *domain = NULL;
	int all = 0;
	const struct cli_opt opts[] = {{"--domain", NULL, &domain}, {"--all", &all, NULL}};
	char **pos = xcalloc((size_t)argc, sizeof(*pos));
	size_t n, i;

	memset(a, 0, sizeof(*a));
	if (cli_parse(argc, argv, opts, with_all ? 2 : 1, pos, &n, (size_t)argc) != CLI_OK) {
		free(pos);
		return CLI_USAGE;
	}
	a->ids = pos;
	a->n_ids = n;
	a->all = all;
	a->domain = domain ? xstrdup(domain) : NULL;
	if ((n > 0) + all + (domain != NULL) != 1)
		return cli_say(CLI_USAGE, "%s takes queue IDs, --domain D%s", argv[0],
		               with_all ? " or --all" : "");
	if (domain && (!*domain || strlen(domain) > CTL_DOMAIN_MAX || strchr(domain, ' ')))
		return cli_say(CLI_USAGE, "--domain needs a domain, not '%s'", domain);
	for (i = 0; i < n; i++)
		if (!id_valid(pos[i]))
			return cli_say(CLI_USAGE, "invalid queue ID: %s", pos[i]);
	return CLI_OK;
}

static int cmd_steer(int argc, char **argv, const struct conf *c, enum spool_op op)
{
	struct ctl_args a;
	int rc = steer_args(argc, argv, op == SPOOL_DELETE, &a);

	if (rc == CLI_OK)
		rc = cli_steer(c, op, &a);
	free(a.ids); /* argv's strings */
	free(a.domain);
	return rc;
}

static int cmd_hold(int argc, char **argv, const struct conf *c)
{
	return cmd_steer(argc, argv, c, SPOOL_HOLD);
}

static int cmd_release(int argc, char **argv, const struct conf *c)
{
	return cmd_steer(argc, argv, c, SPOOL_RELEASE);
}

static int cmd_delete(int argc, char **argv, const struct conf *c)
{
	return cmd_steer(argc, argv, c, SPOOL_DELETE);
}

/* ---- retry ---- */

/* On a stopped server's spool: deferred recipients become due now, marked
 * as an operator's retry (deferred, next attempt 0: docs/queue.md), held
 * ones excepted. */
static int retry_mark(void *arg, struct envelope *e)
{
	struct retry_ctx *r = arg;
	size_t *idx = xcalloc(e->n_rcpts ? e->n_rcpts : 1, sizeof(*idx)), n = 0, i;
	char *err = NULL;

	if (r->id && strcmp(r->id, e->id) != 0) {
		free(idx);
		return 0;
	}
	for (i = 0; i < e->n_rcpts; i++) {
		struct rcpt *rc = &e->rcpts[i];
		if (rc->state != RCPT_DEFERRED || !rcpt_is_open(rc) || rcpt_is_held(rc) ||
		    rc->next_attempt == 0)
			continue;
		rc->next_attempt = 0;
		idx[n++] = i;
	}
	if (n && spool_set_rcpt_states(r->sp, e->id, e->rcpts, idx, n, 0, &err) < 0) {
		cli_say(CLI_RUNTIME, "%s", err);
		free(err);
		r->failed = 1;
	} else {
		r->count += (long)n;
	}
	free(idx);
	return 0;
}

static int retry_offline(const struct conf *c, const char *id)
{
	struct retry_ctx r = {NULL, id, 0, 0};
	struct envelope *e = NULL;
	char *err = NULL;
	int rc;

	if (!(r.sp = spool_open(c->data_dir, NULL, &err)) || spool_lock(r.sp, &err) < 0) {
		rc = cli_say(
		    CLI_RUNTIME, "%s%s", err,
		    r.sp ? "; its server does not answer on its control socket yet: try again"
		         : "");
		free(err);
		spool_close(r.sp);
		return rc;
	}
	if (id && spool_load(r.sp, id, &e, &err) == 0)
		retry_mark(&r, e);
	else if (id || spool_foreach(r.sp, retry_mark, &r, &err) < 0)
		r.failed = fail(err);
	envelope_free(e);
	if (r.count && spool_sync(r.sp, &err) < 0)
		r.failed = fail(err);
	spool_close(r.sp);
	if (!r.failed)
		printf("%ld\n", r.count);
	return r.failed ? CLI_RUNTIME : CLI_OK;
}

/* CLI_OK if message id is in the spool, else the error, reported. */
static int still_queued(const struct conf *c, const char *id)
{
	struct spool *sp = open_spool(c);
	struct envelope *e = NULL;
	char *err = NULL;
	int rc = CLI_RUNTIME;

	if (sp && spool_load(sp, id, &e, &err) < 0)
		rc = fail(err);
	else if (sp)
		rc = CLI_OK;
	envelope_free(e);
	spool_close(sp);
	return rc;
}

/* Through a running server: 0 done, CTL_NO_SERVER, or the exit code. The
 * server counts what it made due; 0 for one ID may be a message that is
 * not queued, which is an error (as for hold, release and delete). */
static int retry_online(const struct conf *c, const char *id)
{
	char reply[128], *line = id ? xasprintf("retry %s", id) : xstrdup("retry all");
	int n = ctl_request_lines(c->data_dir, line, NULL, NULL, reply, sizeof(reply));

	free(line);
	if (n == CTL_NO_SERVER)
		return n;
	if (n == CTL_LOST)
		return cli_say(CLI_RUNTIME, "the server stopped answering");
	if (strncmp(reply, "ok ", 3) != 0)
		return cli_say(CLI_RUNTIME, "server: %s", reply);
	if (id && !strcmp(reply, "ok 0") && (n = still_queued(c, id)) != CLI_OK)
		return n;
	printf("%s\n", reply + 3);
	return CLI_OK;
}

static int cmd_retry(int argc, char **argv, const struct conf *c)
{
	int all = 0, rc;
	const struct cli_opt opts[] = {{"--all", &all, NULL}};
	char *pos[1];
	size_t n;

	if (cli_parse(argc, argv, opts, ARRAY_LEN(opts), pos, &n, 1) != CLI_OK)
		return CLI_USAGE;
	if (all == (n == 1))
		return cli_say(CLI_USAGE, "retry takes a queue ID or --all");
	if (n == 1 && !id_valid(pos[0]))
		return cli_say(CLI_USAGE, "invalid queue ID: %s", pos[0]);
	if ((rc = retry_online(c, all ? NULL : pos[0])) == CTL_NO_SERVER)
		rc = retry_offline(c, all ? NULL : pos[0]);
	return cli_flush(rc);
}

/* ---- the tree ---- */

static const struct cli_cmd list_cmd = {
    .path = "queue list",
    .args = "[--domain D] [--sender S] [--state pending|deferred|held] [--json]",
    .about = "Lists queued messages with their open recipients, then a totals line.",
    .more = "  --domain picks recipients of domain D, --state those in state S,\n"
            "  --sender messages from address S (<> is the null sender). --json prints\n"
            "  one JSON object per message and line (docs/cli.md).\n",
    .run = cli_queue_list};

static const struct cli_cmd show_cmd = {
    .path = "queue show",
    .args = "ID [--json]",
    .about = "Shows a message's envelope, every recipient and its header block.",
    .run = cmd_show};

static const struct cli_cmd delete_cmd = {
    .path = "queue delete",
    .args = "ID...|--all|--domain D",
    .about = "Drops open recipients (no bounce is sent); prints how many.",
    .more = "  Each is logged in the server's log (event=deleted); with no server running,\n"
            "  on stderr, and by the server at its next start (docs/queue.md).\n",
    .run = cmd_delete};

static const struct cli_cmd hold_cmd = {
    .path = "queue hold",
    .args = "ID...|--domain D",
    .about = "Holds open recipients: neither tried nor expired until released.",
    .more = "  Time held does not count toward queue_lifetime (docs/queue.md).\n",
    .run = cmd_hold};

static const struct cli_cmd release_cmd = {.path = "queue release",
                                           .args = "ID...|--domain D",
                                           .about = "Releases held recipients; prints how many.",
                                           .run = cmd_release};

static const struct cli_cmd retry_cmd = {
    .path = "queue retry",
    .args = "ID|--all",
    .about = "Makes deferred recipients due now; prints how many.",
    .more = "  Not counted as a delivery attempt: if it fails, the recipient waits its\n"
            "  current retry step again.\n",
    .run = cmd_retry};

static const struct cli_cmd *const queue_cmds[] = {&list_cmd,  &show_cmd,   &hold_cmd, &release_cmd,
                                                   &retry_cmd, &delete_cmd, NULL};

const struct cli_cmd cli_queue_cmd = {
    .path = "queue",
    .about = "Inspect and steer the queue, whether or not a server runs.",
    .subs = queue_cmds,
    .flags = CLI_AS_USER,
};

int cli_queue(int argc, char **argv, const struct conf *c)
{
	return cli_dispatch(&cli_queue_cmd, argc, argv, c);
}
