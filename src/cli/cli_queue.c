/*
 * cli_queue: `posthorn queue show | delete | retry` and the queue's
 * command tree (`queue list` is in cli_queue_list.c).
 *
 * Works on DATA_DIR/spool through the spool module (opened without an
 * event base: no commits, no lock), so it is safe while a server runs; a
 * running server is told of changes over its control socket. Output: show
 * to stdout, diagnostics to stderr. Values that come from the network
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
	printf(" state=%s attempts=%u", cli_rcpt_state(r->state), (unsigned)r->attempts);
	if (r->next_attempt)
		printf(" next_attempt=%s", cli_time(r->next_attempt, t, sizeof(t)));
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
	const char *id;
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

/* ---- delete ---- */

static int cmd_delete(int argc, char **argv, const struct conf *c)
{
	char *err = NULL, reply[64], *line;
	struct spool *sp;
	const char *id;
	int rc;

	if ((rc = one_id(argc, argv, NULL, 0, &id)) != CLI_OK)
		return rc;
	if (!(sp = open_spool(c)))
		return CLI_RUNTIME;
	if (spool_delete(sp, id, &err) < 0) {
		rc = fail(err);
	} else {
		/* A running server forgets it now rather than at its next attempt. */
		line = xasprintf("forget %s", id);
		ctl_request(c->data_dir, line, reply, sizeof(reply));
		free(line);
	}
	spool_close(sp);
	return rc;
}

/* ---- retry ---- */

/* Offline retry: deferred recipients become due now, in the spool itself. */
static int retry_offline_one(void *arg, struct envelope *e)
{
	struct retry_ctx *r = arg;
	char *err = NULL;

	if (r->id && strcmp(r->id, e->id) != 0)
		return 0;
	for (size_t i = 0; i < e->n_rcpts; i++) {
		if (e->rcpts[i].state != RCPT_DEFERRED || e->rcpts[i].next_attempt == 0)
			continue;
		e->rcpts[i].next_attempt = 0;
		if (spool_set_rcpt_state(r->sp, e->id, i, &e->rcpts[i], &err) < 0) {
			cli_say(CLI_RUNTIME, "%s", err);
			free(err);
			err = NULL;
			r->failed = 1;
			continue;
		}
		r->count++;
	}
	return 0;
}

/* Through a running server: 0 done, -1 no server answered. */
static int retry_online(const struct conf *c, const char *id, int *rc)
{
	char reply[64], *line = id ? xasprintf("retry %s", id) : xstrdup("retry all");
	int n = ctl_request(c->data_dir, line, reply, sizeof(reply));

	free(line);
	if (n < 0)
		return -1;
	if (strncmp(reply, "ok ", 3) != 0)
		*rc = cli_say(CLI_RUNTIME, "server: %s", reply);
	else
		printf("%s\n", reply + 3);
	return 0;
}

static int retry_in(struct spool *sp, const struct conf *c, const char *id)
{
	struct retry_ctx r = {sp, id, 0, 0};
	char *err = NULL;
	struct envelope *e;
	int rc = CLI_OK;

	if (id && spool_load(sp, id, &e, &err) < 0)
		return fail(err);
	if (id)
		envelope_free(e);
	if (retry_online(c, id, &rc) == 0)
		return rc;
	if (spool_server_running(sp))
		/* starting (the control socket comes after recovery) or stuck:
		 * two writers must not race on the same records */
		return cli_say(CLI_RUNTIME,
		               "the server holding %s does not answer on its control socket "
		               "yet; try again",
		               c->data_dir);
	if (spool_foreach(sp, retry_offline_one, &r, &err) < 0)
		return fail(err);
	printf("%ld\n", r.count);
	return r.failed ? CLI_RUNTIME : CLI_OK;
}

static int cmd_retry(int argc, char **argv, const struct conf *c)
{
	int all = 0, rc;
	const struct cli_opt opts[] = {{"--all", &all, NULL}};
	struct spool *sp;
	char *pos[1];
	size_t n;

	if (cli_parse(argc, argv, opts, ARRAY_LEN(opts), pos, &n, 1) != CLI_OK)
		return CLI_USAGE;
	if (all == (n == 1))
		return cli_say(CLI_USAGE, "retry takes a queue ID or --all");
	if (n == 1 && !id_valid(pos[0]))
		return cli_say(CLI_USAGE, "invalid queue ID: %s", pos[0]);
	if (!(sp = open_spool(c)))
		return CLI_RUNTIME;
	rc = retry_in(sp, c, all ? NULL : pos[0]);
	spool_close(sp);
	return cli_flush(rc);
}

/* ---- the tree ---- */

static const struct cli_cmd list_cmd = {
    .path = "queue list",
    .args = "[--domain D] [--sender S] [--state pending|deferred] [--json]",
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

static const struct cli_cmd delete_cmd = {.path = "queue delete",
                                          .args = "ID",
                                          .about =
                                              "Deletes a message; its recipients get no bounce.",
                                          .run = cmd_delete};

static const struct cli_cmd retry_cmd = {.path = "queue retry",
                                         .args = "ID|--all",
                                         .about =
                                             "Makes deferred recipients due now; prints how many.",
                                         .run = cmd_retry};

static const struct cli_cmd *const queue_cmds[] = {&list_cmd, &show_cmd, &delete_cmd, &retry_cmd,
                                                   NULL};

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
