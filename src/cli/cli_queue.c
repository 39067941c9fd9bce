/*
 * cli_queue.c: `posthorn queue list | show ID | delete ID`.
 *
 * Works on DATA_DIR/spool through the spool module (opened without an
 * event base: no commits, no lock), so it is safe while a server runs.
 * Output: list and show to stdout, diagnostics to stderr. Values that come
 * from the network (addresses, HELO, replies) are printed with control
 * bytes and backslashes escaped as \xHH, so one item stays one line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "ctl/ctl.h"
#include "spool/spool.h"

struct retry_ctx {
	struct spool *sp;
	const char *id; /* NULL: all */
	long count;
	int failed;
};

static int usage(void)
{
	fprintf(stderr, "usage: posthorn queue list\n"
	                "       posthorn queue show ID\n"
	                "       posthorn queue delete ID\n");
	return 2;
}

static void put_safe(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || c == '\\')
			fprintf(f, "\\x%02X", c);
		else
			fputc(c, f);
	}
}

static void put_time(FILE *f, int64_t t)
{
	char out[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, sizeof(out), "%lld", (long long)t);
	fputs(out, f);
}

static size_t n_pending(const struct envelope *e)
{
	size_t i, n = 0;

	for (i = 0; i < e->n_rcpts; i++)
		n += e->rcpts[i].state == RCPT_PENDING || e->rcpts[i].state == RCPT_DEFERRED;
	return n;
}

static void put_from(const struct envelope *e)
{
	if (*e->mail_from)
		put_safe(stdout, e->mail_from);
	else
		fputs("<>", stdout);
}

/* ID, created, size, from, pending/rcpts: one message a line. */
static int list_one(void *arg, struct envelope *e)
{
	printf("%s\t", e->id);
	put_time(stdout, e->created);
	printf("\t%llu\t", (unsigned long long)e->size);
	put_from(e);
	printf("\t%zu/%zu\n", n_pending(e), e->n_rcpts);
	return 0;
}

static const char *state_name(enum rcpt_state s)
{
	static const char *const names[] = {"pending", "delivered", "bounced", "deferred"};

	return (unsigned)s < 4 ? names[s] : "?";
}

static void show_field(const char *key, const char *v)
{
	printf("%s: ", key);
	put_safe(stdout, v ? v : "");
	putchar('\n');
}

static void show_rcpt(const struct rcpt *r)
{
	fputs("rcpt: ", stdout);
	put_safe(stdout, r->addr);
	printf(" state=%s attempts=%u", state_name(r->state), (unsigned)r->attempts);
	if (r->next_attempt) {
		fputs(" next_attempt=", stdout);
		put_time(stdout, r->next_attempt);
	}
	if (r->notify)
		printf(" notify=%u", r->notify);
	if (r->orcpt)
		fputs(" orcpt=", stdout), put_safe(stdout, r->orcpt);
	if (r->last_reply)
		fputs(" last_reply=", stdout), put_safe(stdout, r->last_reply);
	putchar('\n');
}

static void show_envelope(const struct envelope *e)
{
	static const char *const ret[] = {"-", "FULL", "HDRS"};
	size_t i;

	printf("id: %s\ncreated: ", e->id);
	put_time(stdout, e->created);
	printf("\nsize: %llu\nfrom: ", (unsigned long long)e->size);
	put_from(e);
	putchar('\n');
	show_field("account", e->account);
	show_field("client_ip", e->client_ip);
	show_field("helo", e->helo);
	printf("body: %s\nsmtputf8: %s\nret: %s\n", e->body == BODY_8BITMIME ? "8BITMIME" : "7BIT",
	       e->smtputf8 ? "yes" : "no", (unsigned)e->ret < 3 ? ret[e->ret] : "?");
	show_field("envid", e->envid ? e->envid : "-");
	for (i = 0; i < e->n_rcpts; i++)
		show_rcpt(&e->rcpts[i]);
}

/* The header block: up to the first empty line, CRLF shown as LF. Read in
 * pieces, so a huge message costs no memory. */
static int show_headers(struct spool *sp, const char *id)
{
	char chunk[8192], *err = NULL, prev = '\n';
	uint64_t off, len;
	int fd;

	if (spool_open_body(sp, id, &fd, &off, &len, &err) < 0) {
		fprintf(stderr, "posthorn: %s\n", err);
		free(err);
		return 1;
	}
	putchar('\n');
	while (len > 0) {
		ssize_t n =
		    pread(fd, chunk, len < sizeof(chunk) ? (size_t)len : sizeof(chunk), (off_t)off);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] == '\r')
				continue;
			if (chunk[i] == '\n' && prev == '\n')
				goto out;
			putchar(chunk[i]);
			prev = chunk[i];
		}
		off += (uint64_t)n, len -= (uint64_t)n;
	}
out:
	close(fd);
	return 0;
}

static int fail(char *err)
{
	int e = errno; /* ENOENT: no such message (1); EINVAL: bad ID (2) */

	fprintf(stderr, "posthorn: %s\n", err);
	free(err);
	return e == EINVAL ? 2 : 1;
}

static int cmd_list(struct spool *sp)
{
	char *err = NULL;

	return spool_foreach(sp, list_one, NULL, &err) < 0 ? fail(err) : 0;
}

static int cmd_show(struct spool *sp, const char *id)
{
	struct envelope *e;
	char *err = NULL;

	if (spool_load(sp, id, &e, &err) < 0)
		return fail(err);
	show_envelope(e);
	envelope_free(e);
	return show_headers(sp, id);
}

static int cmd_delete(struct spool *sp, const struct conf *c, const char *id)
{
	char *err = NULL, reply[64], *line;

	if (spool_delete(sp, id, &err) < 0)
		return fail(err);
	/* A running server forgets it now rather than at its next attempt. */
	line = xasprintf("forget %s", id);
	ctl_request(c->data_dir, line, reply, sizeof(reply));
	free(line);
	return 0;
}

/* Offline retry: deferred recipients become due now, in the spool itself. */
static int retry_offline_one(void *arg, struct envelope *e)
{
	struct retry_ctx *r = arg;
	size_t i;
	char *err = NULL;

	if (r->id && strcmp(r->id, e->id) != 0)
		return 0;
	for (i = 0; i < e->n_rcpts; i++) {
		if (e->rcpts[i].state != RCPT_DEFERRED || e->rcpts[i].next_attempt == 0)
			continue;
		e->rcpts[i].next_attempt = 0;
		if (spool_set_rcpt_state(r->sp, e->id, i, &e->rcpts[i], &err) < 0) {
			fprintf(stderr, "posthorn: %s\n", err);
			free(err);
			err = NULL;
			r->failed = 1;
			continue;
		}
		r->count++;
	}
	return 0;
}

static int cmd_retry(struct spool *sp, const struct conf *c, const char *id)
{
	struct retry_ctx r = {sp, id, 0, 0};
	char reply[64], *line, *err = NULL;
	struct envelope *e;

	if (id) {
		if (spool_load(sp, id, &e, &err) < 0)
			return fail(err);
		envelope_free(e);
	}
	line = id ? xasprintf("retry %s", id) : xstrdup("retry all");
	if (ctl_request(c->data_dir, line, reply, sizeof(reply)) == 0) {
		free(line);
		if (strncmp(reply, "ok ", 3) != 0) {
			fprintf(stderr, "posthorn: server: %s\n", reply);
			return 1;
		}
		printf("%s\n", reply + 3);
		return 0;
	}
	free(line);
	if (spool_server_running(sp)) {
		/* starting (the control socket comes after recovery) or stuck:
		 * two writers must not race on the same records */
		fprintf(stderr,
		        "posthorn: the server holding %s does not answer on its control "
		        "socket yet; try again\n",
		        c->data_dir);
		return 1;
	}
	if (spool_foreach(sp, retry_offline_one, &r, &err) < 0)
		return fail(err);
	printf("%ld\n", r.count);
	return r.failed ? 1 : 0;
}

static int run(struct spool *sp, const struct conf *c, int argc, char **argv)
{
	if (!strcmp(argv[1], "list"))
		return argc == 2 ? cmd_list(sp) : usage();
	if (argc != 3)
		return usage();
	if (!strcmp(argv[1], "retry") && !strcmp(argv[2], "--all"))
		return cmd_retry(sp, c, NULL);
	if (!id_valid(argv[2])) {
		fprintf(stderr, "posthorn: invalid queue ID: %s\n", argv[2]);
		return 2;
	}
	if (!strcmp(argv[1], "show"))
		return cmd_show(sp, argv[2]);
	if (!strcmp(argv[1], "retry"))
		return cmd_retry(sp, c, argv[2]);
	return cmd_delete(sp, c, argv[2]);
}

int cli_queue(int argc, char **argv, const struct conf *c)
{
	struct spool *sp;
	char *err = NULL;
	int rc;

	if (argc < 2 || (strcmp(argv[1], "list") && strcmp(argv[1], "show") &&
	                 strcmp(argv[1], "delete") && strcmp(argv[1], "retry")))
		return usage();
	sp = spool_open(c->data_dir, NULL, &err);
	if (!sp) {
		fprintf(stderr, "posthorn: %s\n", err);
		free(err);
		return 1;
	}
	rc = run(sp, c, argc, argv);
	fflush(stdout);
	spool_close(sp);
	return rc;
}
