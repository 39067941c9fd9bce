/*
 * Unit tests for metrics: the registry's arithmetic (labels, histograms,
 * out-of-range indexes), the exposition text, the pure helpers, and what
 * an increment costs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "util/util.h"

static const char *const ROUTES[] = {"/healthz", "/v1/x/{id}", "unmatched"};

static int setup(void **state)
{
	(void)state;
	metrics_init();
	metrics_bind_labels(M_HTTP_REQUESTS, 0, ROUTES, ARRAY_LEN(ROUTES));
	metrics_reset();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	metrics_free();
	return 0;
}

static char *render(void)
{
	struct buf b;

	buf_init(&b);
	metrics_render(&b);
	return b.data;
}

static void assert_line(const char *text, const char *line)
{
	char *want = xasprintf("\n%s\n", line);

	if (!strstr(text, want))
		fail_msg("missing line '%s' in:\n%s", line, text);
	free(want);
}

static void test_counters_and_labels(void **state)
{
	char *t;

	(void)state;
	metrics_inc(M_MESSAGES_DELIVERED);
	metrics_add(M_MESSAGES_DELIVERED, 4);
	metrics_inc_l(M_MESSAGES_BOUNCED, MR_MAILBOX);
	metrics_inc_l2(M_TLS_HANDSHAKES, MD_OUTBOUND, MRES_FAILED);
	metrics_inc_l2(M_HTTP_REQUESTS, 1, metrics_http_code_index(404));
	/* Out of range: ignored, never a crash. */
	metrics_inc_l(M_MESSAGES_BOUNCED, MR_COUNT);
	metrics_inc_l2(M_HTTP_REQUESTS, 3, 0);
	metrics_inc_l(M_MESSAGES_DELIVERED, 1);
	assert_int_equal(metrics_get(M_MESSAGES_DELIVERED, 0, 0), 5);
	assert_int_equal(metrics_get(M_MESSAGES_BOUNCED, MR_MAILBOX, 0), 1);
	t = render();
	assert_line(t, "# TYPE posthorn_messages_delivered_total counter");
	assert_line(t, "posthorn_messages_delivered_total 5");
	assert_line(t, "posthorn_messages_bounced_total{class=\"mailbox\"} 1");
	assert_line(t, "posthorn_messages_bounced_total{class=\"address\"} 0");
	assert_line(t, "posthorn_tls_handshakes_total{direction=\"outbound\",result=\"failed\"} 1");
	assert_line(t, "posthorn_http_requests_total{route=\"/v1/x/{id}\",code=\"404\"} 1");
	/* Two-label families show only what happened. */
	assert_null(strstr(t, "code=\"200\""));
	free(t);
}

static void test_gauges(void **state)
{
	char *t;

	(void)state;
	metrics_set(M_QUEUE_MESSAGES, 42);
	metrics_set_l(M_QUEUE_RECIPIENTS, MQ_DEFERRED, 7);
	metrics_set(M_HTTP_CONNECTIONS, -1);
	t = render();
	assert_line(t, "# TYPE posthorn_queue_messages gauge");
	assert_line(t, "posthorn_queue_messages 42");
	assert_line(t, "posthorn_queue_recipients{state=\"deferred\"} 7");
	assert_line(t, "posthorn_http_connections -1");
	free(t);
}

static void test_histogram(void **state)
{
	char *t;

	(void)state;
	metrics_observe_us(M_DNS_LATENCY, 500);      /* <= 1ms */
	metrics_observe_us(M_DNS_LATENCY, 1000);     /* == 1ms: in the 1ms bucket */
	metrics_observe_us(M_DNS_LATENCY, 30000);    /* <= 50ms */
	metrics_observe_us(M_DNS_LATENCY, 60000000); /* above every bound */
	metrics_observe_us(M_MESSAGES_DELIVERED, 5); /* not a histogram: ignored */
	assert_int_equal(metrics_get(M_DNS_LATENCY, 0, 0), 4);
	t = render();
	assert_line(t, "# TYPE posthorn_dns_lookup_duration_seconds histogram");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_bucket{le=\"0.001\"} 2");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_bucket{le=\"0.025\"} 2");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_bucket{le=\"0.05\"} 3");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_bucket{le=\"10\"} 3");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_bucket{le=\"+Inf\"} 4");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_sum 60.031500");
	assert_line(t, "posthorn_dns_lookup_duration_seconds_count 4");
	assert_line(t, "posthorn_spool_commit_duration_seconds_bucket{le=\"0.0025\"} 0");
	assert_line(t, "posthorn_spool_commit_duration_seconds_count 0");
	assert_int_equal(metrics_get(M_MESSAGES_DELIVERED, 0, 0), 0);
	free(t);
}

/* Every family has HELP and TYPE, in that order, and the posthorn_ prefix. */
static void test_every_family_described(void **state)
{
	char *t = render(), *line, *save = NULL;
	int help = 0, type = 0;

	(void)state;
	for (line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# HELP ", 7)) {
			assert_int_equal(help, type);
			help++;
		} else if (!strncmp(line, "# TYPE ", 7)) {
			type++;
			assert_int_equal(help, type);
		}
		assert_true(!strncmp(line, "# HELP posthorn_", 16) ||
		            !strncmp(line, "# TYPE posthorn_", 16) ||
		            !strncmp(line, "posthorn_", 9));
	}
	assert_int_equal(help, M_COUNT);
	assert_int_equal(type, M_COUNT);
	free(t);
}

static void test_reason_class(void **state)
{
	(void)state;
	assert_int_equal(metrics_reason_class("5.1.1"), MR_ADDRESS);
	assert_int_equal(metrics_reason_class("4.2.2"), MR_MAILBOX);
	assert_int_equal(metrics_reason_class("4.4.7"), MR_NETWORK);
	assert_int_equal(metrics_reason_class("5.7.1"), MR_POLICY);
	assert_int_equal(metrics_reason_class("5.0.0"), MR_OTHER);
	assert_int_equal(metrics_reason_class("5.8.1"), MR_OTHER);
	assert_int_equal(metrics_reason_class("550"), MR_OTHER);
	assert_int_equal(metrics_reason_class(""), MR_OTHER);
	assert_int_equal(metrics_reason_class(NULL), MR_OTHER);
	assert_int_equal(metrics_http_code_index(200), 0);
	assert_int_equal(metrics_http_code_index(299), metrics_http_code_index(999));
}

/* What the hot path pays: a few nanoseconds (generous bounds: sanitizer builds). */
static void test_cost(void **state)
{
	enum { N = 2000000 };
	struct timespec a, b;
	double inc_ns, obs_ns;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++)
		metrics_inc_l(M_MESSAGES_DEFERRED, (size_t)i & 7);
	clock_gettime(CLOCK_MONOTONIC, &b);
	inc_ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++)
		metrics_observe_us(M_DELIVERY_LATENCY, (uint64_t)i);
	clock_gettime(CLOCK_MONOTONIC, &b);
	obs_ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
	print_message("metrics: increment %.1f ns, histogram observation %.1f ns\n", inc_ns,
	              obs_ns);
	assert_int_equal(metrics_get(M_DELIVERY_LATENCY, 0, 0), N);
	assert_true(inc_ns < 200);
	assert_true(obs_ns < 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_counters_and_labels),    T(test_gauges),       T(test_histogram),
	    T(test_every_family_described), T(test_reason_class), T(test_cost),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
