/*
 * loadgen: SMTP load generator for the benchmark (bench/run.sh), with
 * per-message latency and optional STARTTLS (smtp-source has neither).
 *
 *   loadgen -p PORT [-H 127.0.0.1] [-s SESSIONS] [-m MESSAGES] [-l SIZE]
 *           [-r RCPTS] [-f FROM] [-t TO] [-T | -A KEY [-b N]] [-o LATENCY_FILE]
 *
 * SESSIONS threads each open one connection (EHLO, STARTTLS and EHLO again
 * with -T) and send messages over it until MESSAGES have been claimed in
 * total. Per message: MAIL, RCPT x RCPTS, DATA (pipelined when the server
 * offers PIPELINING), then SIZE bytes of body after a few headers, then the
 * final "." — latency is measured from just before the final "." is written
 * to the arrival of its reply. Recipients: TO for one, NTO (1to@..., 2to@...)
 * for several, as smtp-source -r does.
 *
 * With -A KEY it loads the HTTP API instead (PORT is the [http] listener):
 * each session is one keep-alive HTTP/1.1 connection posting one message
 * per request to /v1/messages (Authorization: Bearer KEY), JSON
 * {"from": FROM, "to": [the recipients], "subject", "text": SIZE bytes};
 * latency is from writing the request to reading the whole answer, and a
 * message counts as accepted when the answer is 200 with no recipient
 * refused (the server answers only after the spool commit). A connection
 * the server closes is opened again. No TLS in this mode. With -b N each
 * request is a batch instead: template "bench" (made at the start, its
 * text SIZE bytes) and N recipients (1to@..., 2to@...), each its own
 * message; MESSAGES then counts requests, and the latency is the batch's.
 *
 * Prints one key=value line on stdout:
 *   sent= ok= failed= wall_ms= accept_per_s= p50_ms= p99_ms= max_ms=
 * and exits 1 if any message did not get its 250 (its 200). TCP_NODELAY on every
 * socket so that the small final "." is not held back by Nagle.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *from = "from@bench.test", *to = "to@dest.test";
static int port, sessions = 1, rcpts = 1, use_tls, io_timeout_s = 120;
static long messages = 1, size = 2048;
static SSL_CTX *ssl_ctx;
static _Atomic long next_msg, n_ok, n_failed;
static _Atomic int printed_tls;
static double *lat_ms;      /* per message, -1 when not measured */
static char *body;          /* SIZE bytes of CRLF lines */
static const char *api_key; /* -A: the HTTP API, with this key */
static int batch;           /* -b: recipients per batch request (0: single messages) */
static char *api_text;      /* body as a JSON string's contents (CRLF escaped) */

struct sess {
	int fd;
	SSL *ssl;
	char buf[16384];
	size_t len, off;
	int pipelining;
	int id;
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int s_write(struct sess *s, const char *p, size_t n)
{
	while (n) {
		ssize_t w;
		if (s->ssl) {
			int r = SSL_write(s->ssl, p, n > 1 << 30 ? 1 << 30 : (int)n);
			if (r <= 0)
				return -1;
			w = r;
		} else {
			w = send(s->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int s_fill(struct sess *s)
{
	ssize_t r;

	if (s->off == s->len)
		s->off = s->len = 0;
	else if (s->off) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	if (s->len == sizeof(s->buf))
		return -1;
	for (;;) {
		if (s->ssl) {
			int n = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof(s->buf) - s->len));
			r = n;
		} else {
			r = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
			if (r < 0 && errno == EINTR)
				continue;
		}
		break;
	}
	if (r <= 0)
		return -1;
	s->len += (size_t)r;
	return 0;
}

/* Reads one line (without CRLF) into out. */
static int s_line(struct sess *s, char *out, size_t cap)
{
	for (;;) {
		char *nl = memchr(s->buf + s->off, '\n', s->len - s->off);
		if (nl) {
			size_t n = (size_t)(nl - (s->buf + s->off));
			size_t k = n && nl[-1] == '\r' ? n - 1 : n;
			if (k >= cap)
				k = cap - 1;
			memcpy(out, s->buf + s->off, k);
			out[k] = '\0';
			s->off += n + 1;
			return 0;
		}
		if (s_fill(s) < 0)
			return -1;
	}
}

/* Reads a (possibly multi-line) reply; returns its code, -1 on I/O error.
 * With ehlo, notes PIPELINING. last gets the final line. */
static int s_reply(struct sess *s, int ehlo, char *last, size_t cap)
{
	char line[1024];

	for (;;) {
		if (s_line(s, line, sizeof(line)) < 0)
			return -1;
		if (strlen(line) < 3)
			return -1;
		if (ehlo && strlen(line) > 4 && !strncasecmp(line + 4, "PIPELINING", 10))
			s->pipelining = 1;
		if (line[3] != '-') {
			if (last) {
				snprintf(last, cap, "%s", line);
			}
			return atoi(line);
		}
	}
}

static int s_cmd(struct sess *s, const char *cmd, int ehlo, char *last, size_t cap)
{
	if (s_write(s, cmd, strlen(cmd)) < 0)
		return -1;
	return s_reply(s, ehlo, last, cap);
}

static void s_close(struct sess *s)
{
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static int s_open(struct sess *s)
{
	struct sockaddr_in sin;
	struct timeval tv = {.tv_sec = io_timeout_s};
	int one = 1;
	char last[1024];

	s->len = s->off = 0;
	s->pipelining = 0;
	s->ssl = NULL;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sin.sin_addr);
	if (connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		fprintf(stderr, "loadgen: session %d: connect: %s\n", s->id, strerror(errno));
		return -1;
	}
	if (api_key)
		return 0; /* HTTP: the client speaks first */
	if (s_reply(s, 0, last, sizeof(last)) != 220) {
		fprintf(stderr, "loadgen: session %d: greeting: %s\n", s->id, last);
		return -1;
	}
	if (s_cmd(s, "EHLO loadgen.bench.test\r\n", 1, last, sizeof(last)) != 250) {
		fprintf(stderr, "loadgen: session %d: EHLO: %s\n", s->id, last);
		return -1;
	}
	if (!use_tls)
		return 0;
	if (s_cmd(s, "STARTTLS\r\n", 0, last, sizeof(last)) != 220) {
		fprintf(stderr, "loadgen: session %d: STARTTLS: %s\n", s->id, last);
		return -1;
	}
	if (s->off != s->len) {
		fprintf(stderr, "loadgen: session %d: data after STARTTLS reply\n", s->id);
		return -1;
	}
	s->ssl = SSL_new(ssl_ctx);
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_tlsext_host_name(s->ssl, "localhost");
	if (SSL_connect(s->ssl) != 1) {
		fprintf(stderr, "loadgen: session %d: TLS handshake failed: ", s->id);
		ERR_print_errors_fp(stderr);
		return -1;
	}
	if (atomic_fetch_add(&printed_tls, 1) == 0)
		fprintf(stderr, "loadgen: tls %s %s\n", SSL_get_version(s->ssl),
		        SSL_CIPHER_get_name(SSL_get_current_cipher(s->ssl)));
	s->pipelining = 0;
	if (s_cmd(s, "EHLO loadgen.bench.test\r\n", 1, last, sizeof(last)) != 250) {
		fprintf(stderr, "loadgen: session %d: EHLO after STARTTLS: %s\n", s->id, last);
		return -1;
	}
	return 0;
}

/* Sends message idx. Returns 1 accepted, 0 rejected (session usable),
 * -1 I/O error (session dead). */
static int send_msg(struct sess *s, long idx)
{
	char cmds[65536], last[1024], hdr[1024];
	size_t n = 0;
	int i, code = 0, nreplies;
	double t0;

	n += (size_t)snprintf(cmds + n, sizeof(cmds) - n, "MAIL FROM:<%s>\r\n", from);
	for (i = 1; i <= rcpts; i++) {
		if (rcpts == 1)
			n += (size_t)snprintf(cmds + n, sizeof(cmds) - n, "RCPT TO:<%s>\r\n", to);
		else
			n += (size_t)snprintf(cmds + n, sizeof(cmds) - n, "RCPT TO:<%d%s>\r\n", i,
			                      to);
	}
	n += (size_t)snprintf(cmds + n, sizeof(cmds) - n, "DATA\r\n");
	nreplies = rcpts + 2;
	if (s->pipelining) {
		if (s_write(s, cmds, n) < 0)
			return -1;
	}
	{
		/* read replies (writing each command first without PIPELINING) */
		char *p = cmds;
		int ok_rcpts = 0, bad = 0;
		for (i = 0; i < nreplies; i++) {
			char *e = strstr(p, "\r\n") + 2;
			if (!s->pipelining && s_write(s, p, (size_t)(e - p)) < 0)
				return -1;
			p = e;
			code = s_reply(s, 0, last, sizeof(last));
			if (code < 0)
				return -1;
			if (i == 0 && code != 250)
				bad = 1;
			else if (i > 0 && i < nreplies - 1 && code == 250)
				ok_rcpts++;
			else if (i == nreplies - 1 && code != 354)
				bad = 1;
			if (bad && !s->pipelining)
				break;
		}
		if (bad || ok_rcpts != rcpts) {
			fprintf(stderr, "loadgen: message %ld: rejected: %s\n", idx, last);
			if (code == 354) {
				/* abort the transaction with an empty message? no: end it */
				if (s_write(s, ".\r\n", 3) < 0 ||
				    s_reply(s, 0, last, sizeof(last)) < 0)
					return -1;
			}
			if (s_cmd(s, "RSET\r\n", 0, last, sizeof(last)) < 0)
				return -1;
			return 0;
		}
	}
	n = (size_t)snprintf(hdr, sizeof(hdr),
	                     "From: <%s>\r\nTo: <%s>\r\nSubject: bench %ld\r\n"
	                     "Message-ID: <%ld.%d.%ld@loadgen.bench.test>\r\n\r\n",
	                     from, to, idx, idx, (int)getpid(), (long)time(NULL));
	if (s_write(s, hdr, n) < 0 || s_write(s, body, (size_t)size) < 0)
		return -1;
	t0 = mono_ms();
	if (s_write(s, ".\r\n", 3) < 0)
		return -1;
	code = s_reply(s, 0, last, sizeof(last));
	if (code < 0)
		return -1;
	if (code != 250) {
		fprintf(stderr, "loadgen: message %ld: end of data: %s\n", idx, last);
		return 0;
	}
	lat_ms[idx] = mono_ms() - t0;
	return 1;
}

/* ---- -A: the HTTP API ---- */

/* Reads one HTTP answer: its status, *close when the server ends the
 * connection, *queued when no recipient of the body is refused. -1 on I/O
 * error or a malformed answer. */
static int http_answer(struct sess *s, int *close_after, int *queued)
{
	char line[1024], *body_buf;
	long clen = -1, got = 0;
	int status;

	/* "HTTP/1.x NNN": anything shorter is malformed (no status to read) */
	if (s_line(s, line, sizeof(line)) < 0 || strncmp(line, "HTTP/1.", 7) != 0 ||
	    strlen(line) < 12 || line[8] != ' ')
		return -1;
	status = atoi(line + 9);
	*close_after = line[7] == '0';
	for (;;) {
		if (s_line(s, line, sizeof(line)) < 0)
			return -1;
		if (!*line)
			break;
		if (!strncasecmp(line, "Content-Length:", 15))
			clen = atol(line + 15);
		else if (!strncasecmp(line, "Connection:", 11))
			*close_after = strcasestr(line + 11, "close") != NULL;
	}
	if (clen < 0 || clen > 1 << 24)
		return -1;
	body_buf = malloc((size_t)clen + 1);
	while (got < clen) {
		size_t n = s->len - s->off;
		if (!n && s_fill(s) < 0) {
			free(body_buf);
			return -1;
		}
		n = s->len - s->off;
		if (n > (size_t)(clen - got))
			n = (size_t)(clen - got);
		memcpy(body_buf + got, s->buf + s->off, n);
		s->off += n;
		got += (long)n;
	}
	body_buf[clen] = '\0';
	*queued = strstr(body_buf, "\"queued\"") && !strstr(body_buf, "\"refused\"");
	if (status >= 300 || (status == 200 && !*queued))
		fprintf(stderr, "loadgen: HTTP %d: %.300s\n", status, body_buf);
	free(body_buf);
	return status;
}

/* A batch request's JSON into out (malloc'd); its length. */
static size_t batch_json(char **out)
{
	size_t cap = (strlen(to) + 40) * (size_t)batch + strlen(from) + 1024, n = 0;
	char *j = malloc(cap);

	n += (size_t)snprintf(j + n, cap - n,
	                      "{\"from\":\"%s\",\"template\":\"bench\",\"recipients\":[", from);
	for (int i = 1; i <= batch; i++)
		n += (size_t)snprintf(j + n, cap - n, "%s{\"to\":\"%d%s\"}", i > 1 ? "," : "", i,
		                      to);
	n += (size_t)snprintf(j + n, cap - n, "]}");
	*out = j;
	return n;
}

/* The JSON of message idx into out (malloc'd); its length. */
static size_t api_json(long idx, char **out)
{
	if (batch)
		return batch_json(out);
	size_t cap = strlen(api_text) + (strlen(to) + 16) * (size_t)rcpts + strlen(from) + 1024,
	       n = 0;
	char *j = malloc(cap);
	int i;

	n += (size_t)snprintf(j + n, cap - n, "{\"from\":\"%s\",\"to\":[", from);
	for (i = 1; i <= rcpts; i++) {
		if (rcpts == 1)
			n += (size_t)snprintf(j + n, cap - n, "\"%s\"", to);
		else
			n +=
			    (size_t)snprintf(j + n, cap - n, "%s\"%d%s\"", i > 1 ? "," : "", i, to);
	}
	n += (size_t)snprintf(j + n, cap - n, "],\"subject\":\"bench %ld\",\"text\":\"%s\"}", idx,
	                      api_text);
	*out = j;
	return n;
}

/* POSTs json (freed) to path: the answer's status (*queued as
 * http_answer says), -1 on I/O error. The connection is opened again
 * when the server closes it. */
static int api_post(struct sess *s, const char *path, char *json, size_t jn, int *queued)
{
	char head[1024];
	size_t hn;
	int close_after = 0, status;

	hn = (size_t)snprintf(head, sizeof(head),
	                      "POST %s HTTP/1.1\r\nHost: %s\r\n"
	                      "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	                      "Content-Length: %zu\r\n\r\n",
	                      path, host, api_key, jn);
	status = s_write(s, head, hn) < 0 || s_write(s, json, jn) < 0
	             ? -1
	             : http_answer(s, &close_after, queued);
	free(json);
	if (status >= 0 && close_after) {
		s_close(s);
		if (s_open(s) < 0)
			return -1;
	}
	return status;
}

/* Posts message idx: 1 accepted, 0 refused (connection usable), -1 I/O error. */
static int api_send_msg(struct sess *s, long idx)
{
	char *json;
	size_t jn = api_json(idx, &json);
	int queued = 0, status;
	double t0 = mono_ms();

	status = api_post(s, "/v1/messages", json, jn, &queued);
	if (status < 0)
		return -1;
	if (status == 200 && queued)
		lat_ms[idx] = mono_ms() - t0;
	return status == 200 && queued;
}

/* -b: the template the batches name (already there from a run before: 409). */
static int make_template(void)
{
	struct sess s = {.fd = -1, .id = -1};
	size_t cap = strlen(api_text) + 128;
	char *json = malloc(cap);
	int queued, status;

	snprintf(json, cap, "{\"name\":\"bench\",\"subject\":\"bench\",\"text\":\"%s\"}", api_text);
	status = s_open(&s) < 0 ? -1 : api_post(&s, "/v1/templates", json, strlen(json), &queued);
	s_close(&s);
	if (status == 200 || status == 201 || status == 409)
		return 0;
	fprintf(stderr, "loadgen: POST /v1/templates: %d\n", status);
	return -1;
}

/* body as the contents of a JSON string: CR and LF escaped. */
static char *json_text(const char *p, long n)
{
	char *out = malloc((size_t)n * 2 + 1), *o = out;

	for (long k = 0; k < n; k++) {
		if (p[k] == '\r' || p[k] == '\n') {
			*o++ = '\\';
			*o++ = p[k] == '\r' ? 'r' : 'n';
		} else {
			*o++ = p[k];
		}
	}
	*o = '\0';
	return out;
}

static void *session_main(void *arg)
{
	struct sess *s = arg;
	char last[1024];
	long idx;

	s->fd = -1;
	if (s_open(s) < 0) {
		s_close(s);
		return NULL;
	}
	while ((idx = atomic_fetch_add(&next_msg, 1)) < messages) {
		int r = api_key ? api_send_msg(s, idx) : send_msg(s, idx);
		if (r == 1)
			atomic_fetch_add(&n_ok, 1);
		else
			atomic_fetch_add(&n_failed, 1);
		if (r < 0) {
			fprintf(stderr, "loadgen: session %d: I/O error on message %ld: %s\n",
			        s->id, idx, strerror(errno));
			s_close(s);
			return NULL;
		}
	}
	if (!api_key)
		s_cmd(s, "QUIT\r\n", 0, last, sizeof(last));
	s_close(s);
	return NULL;
}

/* Nearest-rank percentile of sorted[0..n). */
static double pct(const double *sorted, long n, double p)
{
	long r = (long)(p * (double)n + 0.999999);

	if (n == 0)
		return 0.0;
	if (r < 1)
		r = 1;
	return sorted[(r > n ? n : r) - 1];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int opt, i;
	const char *lat_file = NULL;
	pthread_t *th;
	struct sess *ss;
	double t0, wall, *sorted;
	long k, nlat = 0;

	while ((opt = getopt(argc, argv, "H:p:s:m:l:r:f:t:To:A:b:")) != -1) {
		switch (opt) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 's':
			sessions = atoi(optarg);
			break;
		case 'm':
			messages = atol(optarg);
			break;
		case 'l':
			size = atol(optarg);
			break;
		case 'r':
			rcpts = atoi(optarg);
			break;
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'T':
			use_tls = 1;
			break;
		case 'o':
			lat_file = optarg;
			break;
		case 'A':
			api_key = optarg;
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (!port || sessions < 1 || messages < 1 || size < 0 || rcpts < 1 || rcpts > 1000 ||
	    (api_key && use_tls) || batch < 0 || batch > 1000 || (batch && !api_key)) {
	usage:
		fprintf(stderr, "usage: loadgen -p PORT [-H ADDR] [-s SESSIONS] [-m MESSAGES] "
		                "[-l SIZE] [-r RCPTS] [-f FROM] [-t TO] [-T | -A KEY [-b N]] [-o "
		                "LATENCY_FILE]\n");
		return 2;
	}
	/* body: SIZE bytes of 78-byte lines (76 chars + CRLF); none starts with "." */
	body = malloc((size_t)size + 1);
	for (k = 0; k < size; k++) {
		long col = k % 78;
		body[k] = col == 76 ? '\r' : col == 77 ? '\n' : (char)('a' + (k / 78 + col) % 26);
	}
	if (size >= 2) { /* end on CRLF so that "." starts a line */
		body[size - 2] = '\r';
		body[size - 1] = '\n';
	}
	if (api_key)
		api_text = json_text(body, size);
	if (batch && make_template() < 0)
		return 1;
	lat_ms = malloc(sizeof(double) * (size_t)messages);
	for (k = 0; k < messages; k++)
		lat_ms[k] = -1;
	if (use_tls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL); /* self-signed bench cert */
	}
	th = calloc((size_t)sessions, sizeof(*th));
	ss = calloc((size_t)sessions, sizeof(*ss));
	t0 = mono_ms();
	for (i = 0; i < sessions; i++) {
		ss[i].id = i;
		pthread_create(&th[i], NULL, session_main, &ss[i]);
	}
	for (i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	wall = mono_ms() - t0;

	/* messages never claimed (all sessions died) are failures too */
	if (atomic_load(&next_msg) < messages)
		atomic_fetch_add(&n_failed, messages - atomic_load(&next_msg));
	sorted = malloc(sizeof(double) * (size_t)messages);
	for (k = 0; k < messages; k++)
		if (lat_ms[k] >= 0)
			sorted[nlat++] = lat_ms[k];
	qsort(sorted, (size_t)nlat, sizeof(double), cmp_double);
	if (lat_file) {
		FILE *f = fopen(lat_file, "w");
		if (f) {
			for (k = 0; k < messages; k++)
				fprintf(f, "%.3f\n", lat_ms[k]);
			fclose(f);
		}
	}
	printf("sent=%ld ok=%ld failed=%ld wall_ms=%.0f accept_per_s=%.1f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f\n",
	       messages, atomic_load(&n_ok), atomic_load(&n_failed), wall,
	       wall > 0 ? (double)atomic_load(&n_ok) * 1000.0 / wall : 0.0, pct(sorted, nlat, 0.50),
	       pct(sorted, nlat, 0.99), nlat ? sorted[nlat - 1] : 0.0);
	return atomic_load(&n_ok) == messages ? 0 : 1;
}
