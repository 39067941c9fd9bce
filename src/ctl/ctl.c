/*
 * ctl: control socket. A client sends one request line; the server
 * answers with any number of progress lines, then one final line, and
 * closes. Quick requests are answered from the handler; long ones (bulk
 * queue operations) keep their struct ctl_req and answer later, from the
 * loop, as their work advances. A client that sends nothing is dropped
 * after CTL_TIMEOUT_S; one that hangs up before the answer does not stop
 * the work (its lines then go nowhere).
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"
#include "util/util.h"

#define CTL_TIMEOUT_S 5 /* a client sends its request within this */

struct ctl_req {
	struct ctl *c;
	struct bufferevent *bev; /* NULL once the client is gone */
	void (*cancel)(void *arg, struct ctl_req *req);
	void *cancel_arg;
	LIST_ENTRY(ctl_req) link;
};

struct ctl {
	struct evconnlistener *evl;
	char *path;
	ctl_handler fn;
	void *arg;
	LIST_HEAD(, ctl_req) reqs; /* being answered */
};

static int ctl_path(const char *data_dir, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/control.sock", data_dir) >=
	    sizeof(sun->sun_path))
		return -1;
	return 0;
}

/* ---- the server's side ---- */

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_req *req = arg;

	bufferevent_free(bev);
	if (req)
		req->bev = NULL; /* gone: the work goes on, its lines go nowhere */
}

static void on_client_written(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev); /* the final line has left */
}

static void req_vline(struct ctl_req *req, const char *fmt, va_list ap)
{
	struct evbuffer *out;

	if (!req->bev)
		return;
	out = bufferevent_get_output(req->bev);
	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\n", 1);
}

void ctl_send(struct ctl_req *req, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	req_vline(req, fmt, ap);
	va_end(ap);
}

void ctl_reply(struct ctl_req *req, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	req_vline(req, fmt, ap);
	va_end(ap);
	if (req->bev) /* closes once the line has left */
		bufferevent_setcb(req->bev, NULL, on_client_written, on_client_event, NULL);
	LIST_REMOVE(req, link);
	free(req);
}

void ctl_req_on_cancel(struct ctl_req *req, void (*cancel)(void *arg, struct ctl_req *req),
                       void *arg)
{
	req->cancel = cancel;
	req->cancel_arg = arg;
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
	struct ctl_req *req = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);

	if (!line) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			ctl_reply(req, "error request too long");
		return;
	}
	bufferevent_disable(bev, EV_READ);
	bufferevent_set_timeouts(bev, NULL, NULL); /* the work takes what it takes */
	bufferevent_setcb(bev, NULL, NULL, on_client_event, req);
	req->c->fn(req->c->arg, req, line);
	free(line);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct ctl *c = arg;
	struct event_base *base = evconnlistener_get_base(evl);
	struct timeval tv = {CTL_TIMEOUT_S, 0};
	struct ctl_req *req = xcalloc(1, sizeof(*req));

	req->c = c;
	req->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	LIST_INSERT_HEAD(&c->reqs, req, link);
	bufferevent_setcb(req->bev, on_client_read, NULL, on_client_event, req);
	bufferevent_set_timeouts(req->bev, &tv, &tv);
	bufferevent_enable(req->bev, EV_READ | EV_WRITE);
}

struct ctl *ctl_new(struct event_base *base, const char *data_dir, ctl_handler fn, void *arg,
                    char **err)
{
	struct ctl *c;
	struct sockaddr_un sun;
	mode_t old;

	if (ctl_path(data_dir, &sun) < 0) {
		*err = xasprintf("control socket path too long under %s", data_dir);
		return NULL;
	}
	/* A stale socket from a crashed server: the spool lock already proved
	 * no other server runs on this data dir. */
	unlink(sun.sun_path);
	c = xcalloc(1, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	c->path = xstrdup(sun.sun_path);
	LIST_INIT(&c->reqs);
	old = umask(077);
	c->evl = evconnlistener_new_bind(base, on_accept, c,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	                                 (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (!c->evl) {
		*err = xasprintf("cannot listen on %s: %s", sun.sun_path, strerror(errno));
		free(c->path);
		free(c);
		return NULL;
	}
	return c;
}

/* Requests still being answered are cancelled: their owner stops
 * calling back (the work itself may go on). */
void ctl_free(struct ctl *c)
{
	struct ctl_req *req;

	if (!c)
		return;
	while ((req = LIST_FIRST(&c->reqs))) {
		LIST_REMOVE(req, link);
		if (req->cancel)
			req->cancel(req->cancel_arg, req);
		if (req->bev)
			bufferevent_free(req->bev);
		free(req);
	}
	evconnlistener_free(c->evl);
	unlink(c->path);
	free(c->path);
	free(c);
}

/* ---- the client's side ---- */

/* One line (without its '\n') into line; 0, or -1 on timeout, EOF or a
 * line longer than cap. *buf holds what was read past it. */
static int read_line(int fd, struct buf *in, char *line, size_t cap, int timeout_s)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_s * 1000;
	char chunk[4096];

	for (;;) {
		char *nl = in->len ? memchr(in->data, '\n', in->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - in->data);
			if (n >= cap)
				return -1;
			memcpy(line, in->data, n);
			line[n] = '\0';
			buf_consume(in, n + 1);
			return 0;
		}
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = (int64_t)(deadline - clock_mono_ms());
		ssize_t r;
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		if ((r = read(fd, chunk, sizeof(chunk))) <= 0 || in->len > CTL_LINE_MAX)
			return -1;
		buf_append(in, chunk, (size_t)r);
	}
}

static int connect_to(const char *data_dir)
{
	struct sockaddr_un sun;
	int fd;

	if (ctl_path(data_dir, &sun) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int is_final(const char *line)
{
	return !strncmp(line, "ok", 2) || !strncmp(line, "error", 5);
}

int ctl_request_lines(const char *data_dir, const char *line, ctl_line_fn on_line, void *arg,
                      char *reply, size_t cap)
{
	int fd = connect_to(data_dir), rc = CTL_LOST;
	char *msg;
	struct buf in;

	if (fd < 0)
		return CTL_NO_SERVER;
	msg = xasprintf("%s\n", line);
	buf_init(&in);
	if (write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg)) {
		while (read_line(fd, &in, reply, cap, CTL_LINE_TIMEOUT_S) == 0) {
			if (is_final(reply)) {
				rc = 0;
				break;
			}
			if (on_line)
				on_line(arg, reply);
		}
	}
	buf_free(&in);
	free(msg);
	close(fd);
	return rc;
}

int ctl_request(const char *data_dir, const char *line, char *reply, size_t cap)
{
	return ctl_request_lines(data_dir, line, NULL, NULL, reply, cap) == 0 ? 0 : -1;
}
