/*
 * ctl: the control channel between the admin CLI and a running server, a
 * unix socket at DATA_DIR/control.sock (mode 0600: only the server's user
 * and root may steer it). The client sends one request line; the server
 * answers with any number of intermediate lines (progress of a bulk
 * operation, messages it could not do), then one final line, "ok ..." or
 * "error TEXT", and closes. The requests are listed in ctl_cmd.c.
 * The CLI falls back to working on the spool directly when no server
 * answers, so every admin command works with or without a server.
 */
#ifndef POSTHORN_CTL_H
#define POSTHORN_CTL_H

#include <stddef.h>

struct event_base;
struct ctl;
struct ctl_req;

#define CTL_LINE_MAX       65536 /* bytes of a request or reply line */
#define CTL_LINE_TIMEOUT_S 60    /* the client waits this long for each line */

/* Handles one request line (without its newline), on the loop thread: it
 * answers with ctl_reply(), before it returns or later; until then req
 * stays valid, even if the client has gone. */
typedef void (*ctl_handler)(void *arg, struct ctl_req *req, const char *line);

struct ctl *ctl_new(struct event_base *base, const char *data_dir, ctl_handler fn, void *arg,
                    char **err);
/* Requests not yet answered are cancelled (their cancel callback runs,
 * and they are freed: their owner must not answer them afterwards). */
void ctl_free(struct ctl *c);

/* The server's side of the requests (ctl_cmd.c): what they act on. */
struct sched;
struct ctl_deps {
	struct sched *sched;
};

/* A ctl_handler: arg is a struct ctl_deps that outlives the ctl. */
void ctl_dispatch(void *arg, struct ctl_req *req, const char *line);

/* An intermediate line (no newline in it). */
void ctl_send(struct ctl_req *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The final line; req is freed. */
void ctl_reply(struct ctl_req *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What to call if the server stops (ctl_free) before req is answered. */
void ctl_req_on_cancel(struct ctl_req *req, void (*cancel)(void *arg, struct ctl_req *req),
                       void *arg);

/*
 * The arguments of a queue request (ctl_args.c, PURE): "all",
 * "domain D" (D printable, no space, at most CTL_DOMAIN_MAX bytes) or one
 * to CTL_IDS_MAX queue IDs separated by single spaces. 0 with *out (free
 * it with ctl_args_free), or -1 with a malloc'd *why. format writes them
 * back, as the CLI sends them.
 */
#define CTL_DOMAIN_MAX 255
#define CTL_IDS_MAX    1000
struct buf;
struct ctl_args {
	int all;
	char *domain;
	char **ids;
	size_t n_ids;
};
int ctl_args_parse(const char *s, struct ctl_args *out, char **why);
void ctl_args_free(struct ctl_args *a);
void ctl_args_format(const struct ctl_args *a, struct buf *out);

/* The server's side of the requests that steer the queue (ctl_queue.c):
 * op is an enum spool_op, line the whole request (for the log), args
 * what follows the verb. They answer req themselves, later. */
struct sched;
void ctl_queue_steer(struct sched *s, struct ctl_req *req, int op, const char *line,
                     const char *args);
void ctl_queue_pauses(struct sched *s, struct ctl_req *req);

/* ---- the client's side ---- */

enum { CTL_NO_SERVER = -1, CTL_LOST = -2 };
typedef void (*ctl_line_fn)(void *arg, const char *line);

/*
 * Sends line, hands each intermediate line to on_line (may be NULL) and
 * returns 0 with the final line in reply. CTL_NO_SERVER when no server
 * listens (nothing was asked); CTL_LOST when one took the request and then
 * did not answer within CTL_LINE_TIMEOUT_S, or hung up (it may have done
 * part of the work).
 */
int ctl_request_lines(const char *data_dir, const char *line, ctl_line_fn on_line, void *arg,
                      char *reply, size_t cap);
/* The same for a one-line answer: 0, or -1 for either failure. */
int ctl_request(const char *data_dir, const char *line, char *reply, size_t cap);

#endif
