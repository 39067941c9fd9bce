/*
 * sink: a counting SMTP sink for the benchmark (bench/run.sh).
 *
 *   sink -p PORT -o COUNTFILE [-a ADDR] [-k KEEPFILE]
 *
 * Listens on ADDR:PORT (default 127.0.0.1), accepts every message and
 * throws it away. Speaks just enough SMTP for a relay's delivery client:
 * EHLO/HELO (PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES), MAIL, RCPT,
 * DATA, RSET, NOOP, QUIT. No STARTTLS, so relays deliver in clear text.
 *
 * COUNTFILE holds one line, replaced atomically (write + rename) at most
 * every 5 ms while the counts change, and on SIGUSR1:
 *   messages recipients connections first_ms last_ms
 * first_ms/last_ms: CLOCK_REALTIME milliseconds of the first and last
 * message received (0 before the first). One thread, epoll.
 *
 * -k KEEPFILE: the first message's content (its first 64 KiB, as it came,
 * dot-stuffed) is written there, so that the benchmark can check what the
 * relay sent (the DKIM case: that it was signed).
 *
 * Why not Postfix's smtp-sink: it counts messages but not recipients (the
 * fan-out case needs both), and its counter is a terminal display.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INBUF   65536
#define MAXLINE 4096

struct conn {
	int fd;
	int in_data; /* 1 while reading the DATA body */
	int dstate;  /* DATA end detector: see scan_data() */
	int quit;    /* close once out is flushed */
	unsigned txn_rcpts;
	char line[MAXLINE];
	size_t line_len;
	char *out;
	size_t out_len, out_cap;
};

static uint64_t n_msgs, n_rcpts, n_conns, first_ms, last_ms;
static int dirty = 1;
static volatile sig_atomic_t want_dump;
static const char *count_file;
static const char *keep_file; /* -k: the first message goes here */
static char keep[INBUF];
static size_t keep_len;
static int kept;
static int ep;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void dump_counts(void)
{
	char tmp[4096], buf[256];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", count_file);
	n = snprintf(buf, sizeof(buf), "%llu %llu %llu %llu %llu\n", (unsigned long long)n_msgs,
	             (unsigned long long)n_rcpts, (unsigned long long)n_conns,
	             (unsigned long long)first_ms, (unsigned long long)last_ms);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return;
	}
	close(fd);
	rename(tmp, count_file);
	dirty = 0;
}

static void on_usr1(int sig)
{
	(void)sig;
	want_dump = 1;
}

static void conn_close(struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

/* Appends to the output buffer; flushed by conn_flush(). */
static void put(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap * 2 : 1024;
		while (cap < c->out_len + n)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			abort();
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
}

/* Returns -1 when the connection is gone. */
static int conn_flush(struct conn *c)
{
	struct epoll_event ev;

	while (c->out_len) {
		ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		memmove(c->out, c->out + w, c->out_len - (size_t)w);
		c->out_len -= (size_t)w;
	}
	ev.events = EPOLLIN | (c->out_len ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	if (!c->out_len && c->quit)
		return -1;
	return 0;
}

static int verb_is(const char *line, const char *verb)
{
	size_t n = strlen(verb);

	return strncasecmp(line, verb, n) == 0 &&
	       (line[n] == '\0' || line[n] == ' ' || line[n] == ':');
}

static void command(struct conn *c, char *line)
{
	if (verb_is(line, "EHLO")) {
		put(c, "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n"
		       "250 ENHANCEDSTATUSCODES\r\n");
	} else if (verb_is(line, "HELO")) {
		put(c, "250 sink\r\n");
	} else if (verb_is(line, "MAIL")) {
		c->txn_rcpts = 0;
		put(c, "250 2.1.0 Ok\r\n");
	} else if (verb_is(line, "RCPT")) {
		c->txn_rcpts++;
		put(c, "250 2.1.5 Ok\r\n");
	} else if (verb_is(line, "DATA")) {
		if (c->txn_rcpts == 0) {
			put(c, "554 5.5.1 Error: no valid recipients\r\n");
		} else {
			c->in_data = 1;
			c->dstate = 2; /* at the start of a line */
			put(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
		}
	} else if (verb_is(line, "RSET")) {
		c->txn_rcpts = 0;
		put(c, "250 2.0.0 Ok\r\n");
	} else if (verb_is(line, "NOOP")) {
		put(c, "250 2.0.0 Ok\r\n");
	} else if (verb_is(line, "QUIT")) {
		put(c, "221 2.0.0 Bye\r\n");
		c->quit = 1;
	} else {
		put(c, "502 5.5.2 Error: command not recognized\r\n");
	}
}

/*
 * Finds the end of DATA: CR LF "." CR LF, where the first CR LF may be the
 * one that ended the DATA command. States: 0 mid-line, 1 saw CR, 2 at line
 * start, 3 line start + ".", 4 line start + "." + CR.
 * Returns the bytes consumed; sets *done at the end of the message.
 */
static size_t scan_data(struct conn *c, const char *p, size_t n, int *done)
{
	size_t i;
	int s = c->dstate;

	*done = 0;
	for (i = 0; i < n; i++) {
		char ch = p[i];
		switch (s) {
		case 0:
			if (ch == '\r')
				s = 1;
			else {
				/* skip quickly to the next CR */
				const char *cr = memchr(p + i, '\r', n - i);
				if (!cr) {
					i = n - 1;
					continue;
				}
				i = (size_t)(cr - p);
				s = 1;
			}
			break;
		case 1:
			s = ch == '\n' ? 2 : ch == '\r' ? 1 : 0;
			break;
		case 2:
			s = ch == '.' ? 3 : ch == '\r' ? 1 : 0;
			break;
		case 3:
			s = ch == '\r' ? 4 : 0;
			break;
		case 4:
			if (ch == '\n') {
				c->dstate = 0;
				*done = 1;
				return i + 1;
			}
			s = ch == '\r' ? 1 : 0;
			break;
		}
	}
	c->dstate = s;
	return n;
}

/* -k: the first message's bytes, as they arrive. */
static void keep_bytes(const char *p, size_t n)
{
	if (!keep_file || kept)
		return;
	if (n > sizeof(keep) - keep_len)
		n = sizeof(keep) - keep_len;
	memcpy(keep + keep_len, p, n);
	keep_len += n;
}

static void keep_done(void)
{
	FILE *f;

	if (!keep_file || kept)
		return;
	kept = 1;
	if ((f = fopen(keep_file, "wb"))) {
		fwrite(keep, 1, keep_len, f);
		fclose(f);
	}
}

static void message_done(struct conn *c)
{
	uint64_t t = now_ms();

	keep_done();
	c->in_data = 0;
	n_msgs++;
	n_rcpts += c->txn_rcpts;
	c->txn_rcpts = 0;
	if (!first_ms)
		first_ms = t;
	last_ms = t;
	dirty = 1;
	put(c, "250 2.0.0 Ok: queued\r\n");
}

static void conn_read(struct conn *c)
{
	char buf[INBUF];

	for (;;) {
		ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
		size_t i = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0) {
			conn_close(c);
			return;
		}
		while (i < (size_t)r) {
			if (c->in_data) {
				int done;
				size_t used = scan_data(c, buf + i, (size_t)r - i, &done);
				keep_bytes(buf + i, used);
				i += used;
				if (done)
					message_done(c);
				continue;
			}
			/* command mode: collect a line */
			char ch = buf[i++];
			if (ch == '\n') {
				if (c->line_len && c->line[c->line_len - 1] == '\r')
					c->line_len--;
				c->line[c->line_len] = '\0';
				c->line_len = 0;
				command(c, c->line);
			} else if (c->line_len < MAXLINE - 1) {
				c->line[c->line_len++] = ch;
			}
		}
		if (c->quit)
			break;
	}
	if (conn_flush(c) < 0)
		conn_close(c);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, opt, lfd, one = 1;
	struct sockaddr_in sin;
	struct epoll_event ev, evs[256];
	uint64_t last_dump = 0;

	while ((opt = getopt(argc, argv, "a:p:o:k:")) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'o':
			count_file = optarg;
			break;
		case 'k':
			keep_file = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (!port || !count_file) {
	usage:
		fprintf(stderr, "usage: sink -p PORT -o COUNTFILE [-a ADDR] [-k KEEPFILE]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, on_usr1);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "sink: bad address %s\n", addr);
		return 2;
	}
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 1024) < 0) {
		fprintf(stderr, "sink: %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	dump_counts();
	fprintf(stderr, "sink: listening on %s:%d\n", addr, port);

	for (;;) {
		int n = epoll_wait(ep, evs, 256, 5), i;
		uint64_t t;

		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL,
				                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					c = calloc(1, sizeof(*c));
					if (!c)
						abort();
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
					n_conns++;
					dirty = 1;
					put(c, "220 sink ESMTP\r\n");
					if (conn_flush(c) < 0)
						conn_close(c);
				}
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_read(c);
			else if (evs[i].events & EPOLLOUT) {
				if (conn_flush(c) < 0)
					conn_close(c);
			}
		}
		t = mono_ms();
		if (want_dump || (dirty && t - last_dump >= 5)) {
			want_dump = 0;
			dump_counts();
			last_dump = t;
		}
	}
}
