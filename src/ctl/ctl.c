/*
 * ctl: control socket. Requests are tiny and answered at once from the
 * loop; a client that sends nothing is dropped after CTL_TIMEOUT_S.
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"
#include "util/util.h"

#define CTL_TIMEOUT_S 5
#define CTL_LINE_MAX  256

struct ctl {
	struct evconnlistener *evl;
	char *path;
	ctl_handler fn;
	void *arg;
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

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void on_client_written(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev); /* the reply has left */
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
	struct ctl *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char reply[CTL_LINE_MAX];
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);

	if (!line) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	reply[0] = '\0';
	if (n < CTL_LINE_MAX)
		c->fn(c->arg, line, reply, sizeof(reply));
	else
		snprintf(reply, sizeof(reply), "error request too long");
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, on_client_written, on_client_event, c);
	evbuffer_add_printf(bufferevent_get_output(bev), "%s\n", reply);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct ctl *c = arg;
	struct event_base *base = evconnlistener_get_base(evl);
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct timeval tv = {CTL_TIMEOUT_S, 0};

	bufferevent_setcb(bev, on_client_read, NULL, on_client_event, c);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
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

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	evconnlistener_free(c->evl);
	unlink(c->path);
	free(c->path);
	free(c);
}

/* Reads until newline or timeout. 0 ok, -1 error. */
static int read_reply(int fd, char *reply, size_t cap)
{
	size_t got = 0;
	uint64_t deadline = clock_mono_ms() + CTL_TIMEOUT_S * 1000;

	while (got + 1 < cap) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = (int64_t)(deadline - clock_mono_ms());
		ssize_t n;
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		n = read(fd, reply + got, cap - 1 - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		reply[got] = '\0';
		if (strchr(reply, '\n')) {
			reply[strcspn(reply, "\n")] = '\0';
			return 0;
		}
	}
	return -1;
}

int ctl_request(const char *data_dir, const char *line, char *reply, size_t cap)
{
	struct sockaddr_un sun;
	int fd, rc = -1;
	char *msg;

	if (ctl_path(data_dir, &sun) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		msg = xasprintf("%s\n", line);
		if (write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg))
			rc = read_reply(fd, reply, cap);
		free(msg);
	}
	close(fd);
	return rc;
}
