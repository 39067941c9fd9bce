/*
 * dkim-tool: the test harness's way into src/dkim/ while the signer is
 * not yet wired into the accept path (docs/dkim.md). Built by the
 * Makefile as build/tests/dkim-tool; never installed, so the product has
 * no test-only commands.
 *
 *   dkim-tool sign DATA_DIR [CHUNK] < message > signed
 *       loads the active keys of DATA_DIR's store as a server does, signs
 *       the message from stdin (CRLF lines) through the stream API, fed
 *       CHUNK bytes at a time (default 4096; 1 is the hardest split), and
 *       writes the DKIM-Signature fields followed by the message. stderr:
 *       "result=RESULT domain=DOMAIN". Exit 0 signed, 3 not signed.
 *   dkim-tool watch DATA_DIR DNS_SERVER [MS]
 *       one rotation round of the server's dkim_watch (work pool, event
 *       loop, DNS at DNS_SERVER); or, with MS, its timers for MS
 *       milliseconds (reloads every 100 ms, rounds every 300 ms). Then on
 *       stdout: "activated=N" (keys activated), "signing=N" (keys the
 *       signer holds at the end) and "rounds=N".
 *   dkim-tool bench DATA_DIR N < message
 *       signs the message N times per From domain given in argv[4...]
 *       (a From field is put on top) and prints microseconds per message:
 *       "DOMAIN result=R bytes=B total_us=T hash_us=H finish_us=F"
 *       (hash: context, header and body; finish: key and signature).
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkim/dkim.h"
#include "dkim/dkim_watch.h"
#include "dns/dns.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

#define INPUT_MAX (64 * 1024 * 1024)

static char *read_stdin(size_t *len)
{
	struct buf b;
	char chunk[65536];
	size_t n;

	buf_init(&b);
	buf_puts(&b, "");
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && b.len < INPUT_MAX)
		buf_append(&b, chunk, n);
	*len = b.len;
	return b.data;
}

static struct dkim_signer *open_signer(const char *data_dir, struct store **st)
{
	char *err = NULL;
	struct dkim_signer *s;

	if (!(*st = store_open(data_dir, &err)) || !(s = dkim_signer_new(data_dir, &err)) ||
	    dkim_signer_refresh(s, *st, 0, &err) < 0) {
		fprintf(stderr, "dkim-tool: %s\n", err);
		exit(1);
	}
	return s;
}

static int cmd_sign(const char *data_dir, size_t chunk)
{
	struct store *st;
	struct dkim_signer *s = open_signer(data_dir, &st);
	struct dkim_msg *m = dkim_msg_new(s, "TESTID");
	struct buf out;
	size_t len, off;
	char *msg = read_stdin(&len);
	enum dkim_result r;

	if (chunk == 0)
		chunk = 1;
	for (off = 0; off < len; off += chunk)
		dkim_msg_write(m, msg + off, len - off < chunk ? len - off : chunk);
	buf_init(&out);
	buf_puts(&out, "");
	r = dkim_msg_finish(m, &out);
	fprintf(stderr, "result=%s domain=%s\n", dkim_result_name(r), dkim_msg_domain(m));
	fwrite(out.data, 1, out.len, stdout);
	fwrite(msg, 1, len, stdout);
	buf_free(&out);
	free(msg);
	dkim_msg_free(m);
	dkim_signer_free(s);
	store_close(st);
	return r == DKIM_SIGNED ? 0 : 3;
}

/* ---- watch ---------------------------------------------------------------------- */

struct watch_run {
	struct event_base *base;
	size_t activated, rounds;
	int once; /* stop after the first round */
};

static void on_round(void *arg, size_t activated)
{
	struct watch_run *r = arg;

	r->activated += activated;
	r->rounds++;
	if (r->once)
		event_base_loopbreak(r->base);
}

/* One round (ms 0), or the timers of a server for ms milliseconds:
 * reloads every 100 ms, rounds every 300 ms. */
static int cmd_watch(const char *data_dir, const char *dns_server, long ms)
{
	struct watch_run run = {event_base_new(), 0, 0, ms == 0};
	struct dns_opts o = {.servers = dns_server};
	struct dkim_watch_deps d;
	struct store *st;
	struct dkim_signer *s = open_signer(data_dir, &st);
	struct dkim_watch *w;
	char *err = NULL;

	d = (struct dkim_watch_deps){run.base,
	                             work_pool_new(run.base, 2),
	                             dns_new(run.base, &o, &err),
	                             st,
	                             s,
	                             data_dir,
	                             ms ? 100 : 0,
	                             ms ? 300 : 0,
	                             on_round,
	                             &run};
	if (d.dns == NULL) {
		fprintf(stderr, "dkim-tool: %s\n", err);
		return 1;
	}
	w = dkim_watch_new(&d);
	if (ms == 0)
		dkim_watch_run(w, 0);
	/* The deadline also keeps the loop alive while the pool works: a loop
	 * with no pending event would return at once. */
	event_base_loopexit(run.base, &(struct timeval){ms ? ms / 1000 : 30, (ms % 1000) * 1000});
	event_base_dispatch(run.base);
	dkim_watch_stop(w);
	work_pool_free(d.work);
	dns_free(d.dns);
	dkim_watch_free(w);
	printf("activated=%zu\nsigning=%zu\nrounds=%zu\n", run.activated, dkim_signer_key_count(s),
	       run.rounds);
	dkim_signer_free(s);
	store_close(st);
	event_base_free(run.base);
	if (run.rounds == 0)
		fprintf(stderr, "dkim-tool: no round ended\n");
	return run.rounds ? 0 : 1;
}

/* ---- bench ------------------------------------------------------------------------ */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* One message of `from` signed n times: hashing and finish timed apart. */
static void bench_one(struct dkim_signer *s, const char *body, size_t len, const char *from, long n)
{
	char *msg = xasprintf("From: <bench@%s>\r\n%s", from, body);
	size_t mlen = strlen(msg);
	double hash = 0, finish = 0;
	struct buf out;

	enum dkim_result r = DKIM_FAILED;

	buf_init(&out);
	for (long i = 0; i < n; i++) {
		double t0 = now_us(), t1;
		struct dkim_msg *m = dkim_msg_new(s, "BENCH");

		dkim_msg_write(m, msg, mlen);
		t1 = now_us();
		buf_reset(&out);
		r = dkim_msg_finish(m, &out);
		dkim_msg_free(m);
		hash += t1 - t0;
		finish += now_us() - t1;
	}
	printf("%s result=%s bytes=%zu total_us=%.1f hash_us=%.1f finish_us=%.1f\n", from,
	       dkim_result_name(r), mlen + out.len, (hash + finish) / (double)n, hash / (double)n,
	       finish / (double)n);
	buf_free(&out);
	free(msg);
	(void)len;
}

static int cmd_bench(const char *data_dir, long n, char **domains, int n_domains)
{
	struct store *st;
	struct dkim_signer *s = open_signer(data_dir, &st);
	size_t len;
	char *body = read_stdin(&len);

	for (int i = 0; i < n_domains; i++)
		bench_one(s, body, len, domains[i], n);
	free(body);
	dkim_signer_free(s);
	store_close(st);
	return 0;
}

int main(int argc, char **argv)
{
	evthread_use_pthreads(); /* the work pool wakes the loop from its threads */
	if (argc >= 3 && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argv[2], argc > 3 ? (size_t)atol(argv[3]) : 4096);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "watch") == 0)
		return cmd_watch(argv[2], argv[3], argc == 5 ? atol(argv[4]) : 0);
	if (argc >= 5 && strcmp(argv[1], "bench") == 0)
		return cmd_bench(argv[2], atol(argv[3]), argv + 4, argc - 4);
	fprintf(stderr, "usage: dkim-tool sign DATA_DIR [CHUNK] | watch DATA_DIR DNS_SERVER [MS] |"
	                " bench DATA_DIR N DOMAIN... < message\n");
	return 2;
}
