/*
 * ctl: the control channel between the admin CLI and a running server, a
 * unix socket at DATA_DIR/control.sock (mode 0600: only the server's user
 * and root may steer it). One request line, one reply line, then close:
 *   "retry all" | "retry ID" | "forget ID"   ->   "ok N" | "error TEXT"
 * The CLI falls back to working on the spool directly when no server
 * answers, so every admin command works with or without a server.
 */
#ifndef POSTHORN_CTL_H
#define POSTHORN_CTL_H

#include <stddef.h>

struct event_base;
struct ctl;

/* Handles one request line; writes the reply line (without newline) into
 * reply (cap bytes). Runs on the loop thread. */
typedef void (*ctl_handler)(void *arg, const char *line, char *reply, size_t cap);

struct ctl *ctl_new(struct event_base *base, const char *data_dir, ctl_handler fn, void *arg,
                    char **err);
void ctl_free(struct ctl *c);

/* The server's side of the requests (ctl_cmd.c): what they act on. */
struct sched;
struct ctl_deps {
	struct sched *sched;
};

/* A ctl_handler: arg is a struct ctl_deps that outlives the ctl. */
void ctl_dispatch(void *arg, const char *line, char *reply, size_t cap);

/* Client side: sends line, waits (at most 5 s) for the reply line.
 * Returns 0 with the reply, -1 when no server is listening (or it did not
 * answer in time). */
int ctl_request(const char *data_dir, const char *line, char *reply, size_t cap);

#endif
