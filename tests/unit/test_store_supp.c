/*
 * Unit tests for store/store_supp (the suppression lists) and
 * store/store_supp_addr (PURE: how an address and a reason are kept):
 * normalization and its refusals, idempotent adds that keep the first
 * reason and time, case-insensitive checks one by one and in batches
 * (larger than one PostgreSQL statement takes, too),
 * removal, listing with search and cursors, isolation between accounts,
 * another process's changes seen at once, account deletion, and the cost
 * of a check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("supp");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	clock_set_override_ms(0);
	fixture_free(*state);
	return 0;
}

/* ---- normalization (pure) ---------------------------------------------------- */

static void norm_ok(const char *in, const char *display, const char *key)
{
	char d[SUPP_ADDRESS_MAX + 1], k[SUPP_ADDRESS_MAX + 1];
	const char *why = NULL;

	if (store_supp_normalize(in, d, k, &why) != 0)
		fail_msg("refused '%s': %s", in, why);
	assert_string_equal(d, display);
	assert_string_equal(k, key);
}

static void norm_bad(const char *in, const char *why_part)
{
	char d[SUPP_ADDRESS_MAX + 1], k[SUPP_ADDRESS_MAX + 1];
	const char *why = NULL;

	if (store_supp_normalize(in, d, k, &why) == 0)
		fail_msg("accepted '%s' as '%s'", in, d);
	assert_non_null(why);
	if (!strstr(why, why_part))
		fail_msg("'%s': reason '%s' lacks '%s'", in, why, why_part);
}

static void test_normalize(void **state)
{
	(void)state;
	norm_ok("john@example.com", "john@example.com", "john@example.com");
	norm_ok("John.Doe@Example.COM", "John.Doe@example.com", "john.doe@example.com");
	norm_ok("  <John@Example.com>\t", "John@example.com", "john@example.com");
	norm_ok("a@example.com.", "a@example.com", "a@example.com");
	norm_ok("\"john\"@x.org", "john@x.org", "john@x.org");
	norm_ok("\"J.o\\hn\"@x.org", "J.ohn@x.org", "j.ohn@x.org");
	norm_ok("\"john doe\"@x.org", "\"john doe\"@x.org", "\"john doe\"@x.org");
	norm_ok("\"a..b\"@x.org", "\"a..b\"@x.org", "\"a..b\"@x.org");
	norm_ok("\"\"@x.org", "\"\"@x.org", "\"\"@x.org");
	norm_ok("user+tag@X.org", "user+tag@x.org", "user+tag@x.org");
	norm_ok("Ünïcødé@Exämple.de", "Ünïcødé@exämple.de", "Ünïcødé@exämple.de");
	norm_ok("a@[192.0.2.1]", "a@[192.0.2.1]", "a@[192.0.2.1]");
	norm_ok("\"a@b\"@c.d", "\"a@b\"@c.d", "\"a@b\"@c.d");
	norm_bad("john", "no '@'");
	norm_bad("@example.com", "empty local part");
	norm_bad("john@", "empty domain");
	norm_bad("<>", "no '@'");
	norm_bad("jo\nhn@x.org", "control");
	norm_bad("john@x.org\r", "control");
	norm_bad("j\x7fohn@x.org", "control");
	norm_bad("j\xc3ohn@x.org", "UTF-8");
	norm_bad("j\xed\xa0\x80@x.org", "UTF-8"); /* a surrogate */
	norm_bad("j\xc0\xafohn@x.org", "UTF-8");  /* overlong */
	norm_bad("john doe@x.org", "unquoted local part");
	norm_bad("<<john@x.org>>", "unquoted local part");
	norm_bad("john@x.org>", "domain");
	norm_bad("john@x .org", "domain");
	norm_bad("john@[1.2.3.4 ]", "domain");
	norm_ok("< john@x.org >", "john@x.org", "john@x.org");
	norm_ok("a@x.org...", "a@x.org", "a@x.org");
}

static void test_normalize_bounds(void **state)
{
	char in[600], d[SUPP_ADDRESS_MAX + 1], k[SUPP_ADDRESS_MAX + 1];

	(void)state;
	memset(in, 'a', 64);
	snprintf(in + 64, sizeof(in) - 64, "@x.org");
	assert_int_equal(store_supp_normalize(in, d, k, NULL), 0);
	memset(in, 'a', 65);
	snprintf(in + 65, sizeof(in) - 65, "@x.org");
	norm_bad(in, "local part longer than 64");
	/* 64 + 1 + 189 = 254 fits; one more does not. */
	memset(in, 'a', 64);
	in[64] = '@';
	memset(in + 65, 'b', 189);
	in[254] = '\0';
	assert_int_equal(store_supp_normalize(in, d, k, NULL), 0);
	assert_int_equal(strlen(d), 254);
	in[254] = 'b';
	in[255] = '\0';
	norm_bad(in, "longer than 254");
	memset(in + 65, 'b', 500);
	in[565] = '\0';
	norm_bad(in, "longer than 254");
}

static void clean_is(const char *in, const char *want)
{
	char out[SUPP_REASON_MAX + 1];

	store_supp_reason_clean(in, out);
	assert_string_equal(out, want);
}

static void test_reason_clean(void **state)
{
	char in[SUPP_REASON_MAX + 10], out[SUPP_REASON_MAX + 1];

	(void)state;
	clean_is("hard bounce: 550 5.1.1 no such user", "hard bounce: 550 5.1.1 no such user");
	clean_is("  hard bounce: 550-5.1.1 one\r\n550 5.1.1 two\r\n",
	         "hard bounce: 550-5.1.1 one  550 5.1.1 two");
	clean_is("a\tb", "a b");
	clean_is("caf\xc3\xa9 \xff ok", "caf\xc3\xa9 ? ok");
	clean_is("", SUPP_REASON_MANUAL);
	clean_is(" \r\n ", SUPP_REASON_MANUAL);
	clean_is(NULL, SUPP_REASON_MANUAL);
	/* Cut at SUPP_REASON_MAX bytes, on a character boundary. */
	memset(in, 'x', SUPP_REASON_MAX - 1);
	memcpy(in + SUPP_REASON_MAX - 1, "\xc3\xa9yz", 5);
	store_supp_reason_clean(in, out);
	assert_int_equal(strlen(out), SUPP_REASON_MAX - 1);
	memset(in, 'x', SUPP_REASON_MAX + 5);
	in[SUPP_REASON_MAX + 5] = '\0';
	store_supp_reason_clean(in, out);
	assert_int_equal(strlen(out), SUPP_REASON_MAX);
}

/* ---- the store ---------------------------------------------------------------------- */

static void test_add_is_idempotent_and_keeps_the_first(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_supp s;
	char *err = NULL;

	clock_set_override_ms(1700000000000ULL);
	assert_int_equal(
	    store_supp_add(st, "default", "John@Example.com", "hard bounce: 550 5.1.1", &s, &err),
	    1);
	assert_string_equal(s.address, "John@example.com");
	assert_string_equal(s.key, "john@example.com");
	assert_string_equal(s.reason, "hard bounce: 550 5.1.1");
	assert_int_equal(s.created_at, 1700000000);
	clock_set_override_ms(1700000999000ULL);
	memset(&s, 0, sizeof(s));
	assert_int_equal(
	    store_supp_add(st, "default", "JOHN@example.COM", "unsubscribed", &s, &err), 0);
	assert_string_equal(s.address, "John@example.com");
	assert_string_equal(s.reason, "hard bounce: 550 5.1.1");
	assert_int_equal(s.created_at, 1700000000);
	/* No reason: "manual"; out may be NULL. */
	assert_int_equal(store_supp_add(st, "default", "x@y.z", NULL, NULL, &err), 1);
	assert_int_equal(store_supp_check(st, "default", "X@Y.Z", &s, &err), 1);
	assert_string_equal(s.reason, SUPP_REASON_MANUAL);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM suppressions"), 2);
	assert_int_equal(
	    raw_int(f, "SELECT count(*) FROM suppressions WHERE address_key = 'john@example.com'"),
	    1);
}

static void test_add_errors(void **state)
{
	struct store *st = open_ok(*state);
	char *err = NULL;

	assert_int_equal(store_supp_add(st, "nobody", "a@b.c", "x", NULL, &err),
	                 STORE_SUPP_NO_ACCOUNT);
	assert_string_equal(err, "no such account 'nobody'");
	free(err);
	err = NULL;
	assert_int_equal(store_supp_add(st, "default", "not-an-address", "x", NULL, &err),
	                 STORE_SUPP_BAD_ADDRESS);
	assert_non_null(strstr(err, "invalid address 'not-an-address': no '@'"));
	free(err);
	err = NULL;
	assert_int_equal(store_supp_remove(st, "default", "a\nb@c.d", NULL, &err),
	                 STORE_SUPP_BAD_ADDRESS);
	free(err);
	err = NULL;
	assert_int_equal(store_supp_remove(st, "nobody", "a@b.c", NULL, &err),
	                 STORE_SUPP_NO_ACCOUNT);
	free(err);
	store_close(st);
}

static void test_reason_is_cleaned_when_stored(void **state)
{
	struct store *st = open_ok(*state);
	char reason[2000];
	struct store_supp s;

	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	memcpy(reason, "hard bounce: 550\r\n5.1.1", 23);
	assert_int_equal(store_supp_add(st, "default", "a@b.c", reason, &s, NULL), 1);
	assert_int_equal(strlen(s.reason), SUPP_REASON_MAX);
	assert_memory_equal(s.reason, "hard bounce: 550  5.1.1", 23);
	assert_int_equal(store_supp_check(st, "default", "a@b.c", &s, NULL), 1);
	assert_int_equal(strlen(s.reason), SUPP_REASON_MAX);
	store_close(st);
}

static void test_check(void **state)
{
	struct store *st = open_ok(*state);
	struct store_supp s;

	assert_int_equal(
	    store_supp_add(st, "default", "\"Jane\"@Example.com", "complaint (abuse)", NULL, NULL),
	    1);
	assert_int_equal(store_supp_check(st, "default", "jane@example.com", &s, NULL), 1);
	assert_string_equal(s.address, "Jane@example.com");
	assert_string_equal(s.reason, "complaint (abuse)");
	assert_true(s.created_at > 0);
	assert_int_equal(store_supp_check(st, "default", "<JANE@EXAMPLE.COM>", NULL, NULL), 1);
	assert_int_equal(store_supp_check(st, "default", "jane+x@example.com", &s, NULL), 0);
	assert_int_equal(store_supp_check(st, "default", "jane@example.co", &s, NULL), 0);
	assert_int_equal(store_supp_check(st, "default", "garbage", &s, NULL), 0);
	assert_int_equal(store_supp_check(st, "nobody", "jane@example.com", &s, NULL), 0);
	store_close(st);
}

static void test_check_many(void **state)
{
	struct store *st = open_ok(*state);
	const char *addrs[] = {"a@x.org", "B@X.org", "c@x.org", "no at", "A@x.ORG"};
	unsigned char found[5];
	struct store_supp out[5];

	assert_int_equal(store_supp_add(st, "default", "a@x.org", "one", NULL, NULL), 1);
	assert_int_equal(store_supp_add(st, "default", "b@x.org", "two", NULL, NULL), 1);
	assert_int_equal(store_supp_check_many(st, "default", addrs, 5, found, out, NULL), 3);
	assert_int_equal(found[0], 1);
	assert_int_equal(found[1], 1);
	assert_int_equal(found[2], 0);
	assert_int_equal(found[3], 0);
	assert_int_equal(found[4], 1);
	assert_string_equal(out[0].reason, "one");
	assert_string_equal(out[1].reason, "two");
	assert_string_equal(out[4].address, "a@x.org");
	assert_int_equal(store_supp_check_many(st, "default", addrs, 5, found, NULL, NULL), 3);
	assert_int_equal(store_supp_check_many(st, "bob", addrs, 5, found, NULL, NULL), 0);
	assert_int_equal(store_supp_check_many(st, "default", addrs, 0, found, NULL, NULL), 0);
	store_close(st);
}

/* A batch larger than one PostgreSQL statement takes (256), with mixed
 * case, duplicates, bad addresses, keys that need quoting in an array
 * literal, and two accounts whose lists differ. */
static void test_check_many_split(void **state)
{
	struct store *st = open_with_user(*state, "bob");
	static const char *const odd[] = {"\"john doe\"@x.org", "\"a,b{c}\"@x.org",
	                                  "\"q\\\"q\"@x.org", "\"\"@x.org", "NULL@x.org"};
	enum { N = 700 };
	const char *addrs[N];
	char names[N][48];
	unsigned char found[N];
	struct store_supp out[N];
	int want = 0;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "%s%d@Split.example", i % 2 ? "U" : "u",
		         i % 350);
		addrs[i] = names[i]; /* i and i + 350 are the same address */
		if (i % 350 % 7 == 0 && i < 350)
			assert_int_equal(store_supp_add(st, "default", addrs[i], "r7", NULL, NULL),
			                 1);
	}
	for (size_t i = 0; i < ARRAY_LEN(odd); i++) {
		assert_int_equal(store_supp_add(st, "default", odd[i], "odd", NULL, NULL), 1);
		addrs[300 + 2 * i] = odd[i]; /* in the second chunk */
	}
	addrs[5] = "no at";
	addrs[6] = "";
	assert_int_equal(store_supp_add(st, "bob", "u1@split.example", "bob's", NULL, NULL), 1);
	memset(out, 0, sizeof(out));
	for (int i = 0; i < N; i++) {
		int is_odd = i >= 300 && i < 310 && i % 2 == 0;
		int expect = is_odd || (i != 5 && i != 6 && i % 350 % 7 == 0);

		want += expect;
	}
	assert_int_equal(store_supp_check_many(st, "default", addrs, N, found, out, NULL), want);
	for (int i = 0; i < N; i++) {
		int is_odd = i >= 300 && i < 310 && i % 2 == 0;
		int expect = is_odd || (i != 5 && i != 6 && i % 350 % 7 == 0);

		assert_int_equal(found[i], expect);
		if (expect)
			assert_string_equal(out[i].reason, is_odd ? "odd" : "r7");
	}
	assert_string_equal(out[300].address, "\"john doe\"@x.org");
	assert_string_equal(out[357].address, "U7@split.example"); /* as added; asked as u7@Split */
	/* bob's list holds one of them only; an unknown account none */
	assert_int_equal(store_supp_check_many(st, "bob", addrs, N, found, out, NULL), 2);
	assert_true(found[1] && found[351] && !found[0] && !found[7]);
	assert_string_equal(out[351].reason, "bob's");
	assert_int_equal(store_supp_check_many(st, "nobody", addrs, N, found, NULL, NULL), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(found[i], 0);
	store_close(st);
}

static void test_remove(void **state)
{
	struct store *st = open_ok(*state);
	struct store_supp s;
	char *err = NULL;

	assert_int_equal(store_supp_add(st, "default", "Gone@x.org", "unsubscribed", NULL, NULL),
	                 1);
	assert_int_equal(store_supp_remove(st, "default", "GONE@X.ORG", &s, &err), 1);
	assert_string_equal(s.address, "Gone@x.org");
	assert_string_equal(s.reason, "unsubscribed");
	assert_int_equal(store_supp_check(st, "default", "gone@x.org", NULL, NULL), 0);
	assert_int_equal(store_supp_remove(st, "default", "gone@x.org", &s, &err), 0);
	/* Added again after removal: a new entry with the new reason. */
	assert_int_equal(store_supp_add(st, "default", "gone@x.org", "manual", &s, NULL), 1);
	assert_string_equal(s.address, "gone@x.org");
	assert_string_equal(s.reason, "manual");
	store_close(st);
}

/* ---- listing ------------------------------------------------------------------------------ */

struct seen {
	struct buf b;
	char last[SUPP_ADDRESS_MAX + 1];
	int n;
};

static void seen_cb(void *arg, const struct store_supp *s)
{
	struct seen *sn = arg;

	buf_printf(&sn->b, "%s%s", sn->n++ ? "," : "", s->address);
	snprintf(sn->last, sizeof(sn->last), "%s", s->key);
}

/* The addresses of one page, comma-separated; *more as the store says. */
static char *page(struct store *st, const char *account, const char *contains, const char *after,
                  size_t limit, int *more, char *last)
{
	struct store_supp_query q = {account, contains, after, limit};
	struct seen sn = {.n = 0};
	char *err = NULL;

	buf_init(&sn.b);
	if (store_supp_list(st, &q, seen_cb, &sn, more, &err) != 0)
		fail_msg("list: %s", err);
	if (last)
		strcpy(last, sn.last);
	return sn.b.data;
}

static void test_list_pages_and_search(void **state)
{
	struct store *st = open_with_user(*state, "bob");
	const char *addrs[] = {"e@x.org",   "D@y.org",  "c@x.org",
	                       "b_1@z.org", "A%@x.org", "bx1@z.org"};
	char last[SUPP_ADDRESS_MAX + 1], *s;
	int more;

	for (size_t i = 0; i < ARRAY_LEN(addrs); i++)
		assert_int_equal(store_supp_add(st, "default", addrs[i], "r", NULL, NULL), 1);
	assert_int_equal(store_supp_add(st, "bob", "zz@x.org", "r", NULL, NULL), 1);
	s = page(st, "default", NULL, NULL, 1000, &more, NULL);
	assert_string_equal(s, "A%@x.org,b_1@z.org,bx1@z.org,c@x.org,D@y.org,e@x.org");
	assert_int_equal(more, 0);
	free(s);
	s = page(st, "default", "", "", 2, &more, last);
	assert_string_equal(s, "A%@x.org,b_1@z.org");
	assert_int_equal(more, 1);
	free(s);
	s = page(st, "default", NULL, last, 2, &more, last);
	assert_string_equal(s, "bx1@z.org,c@x.org");
	assert_int_equal(more, 1);
	free(s);
	s = page(st, "default", NULL, last, 2, &more, last);
	assert_string_equal(s, "D@y.org,e@x.org");
	assert_int_equal(more, 0);
	free(s);
	/* Search: a part of the address, in any case; LIKE's wildcards are
	 * plain characters. */
	s = page(st, "default", "@X.ORG", NULL, 10, &more, NULL);
	assert_string_equal(s, "A%@x.org,c@x.org,e@x.org");
	free(s);
	s = page(st, "default", "b_", NULL, 10, &more, NULL);
	assert_string_equal(s, "b_1@z.org");
	free(s);
	s = page(st, "default", "%", NULL, 10, &more, NULL);
	assert_string_equal(s, "A%@x.org");
	free(s);
	s = page(st, "default", "@x.org", NULL, 1, &more, last);
	assert_string_equal(s, "A%@x.org");
	assert_int_equal(more, 1);
	free(s);
	s = page(st, "default", "@x.org", last, 1, &more, NULL);
	assert_string_equal(s, "c@x.org");
	free(s);
	s = page(st, "bob", NULL, NULL, 10, &more, NULL);
	assert_string_equal(s, "zz@x.org");
	free(s);
	store_close(st);
}

static void test_list_errors(void **state)
{
	struct store *st = open_ok(*state);
	struct store_supp_query q = {"default", NULL, NULL, 0};
	char *err = NULL;
	int more = 7;

	assert_int_equal(store_supp_list(st, &q, seen_cb, NULL, &more, &err), -1);
	assert_int_equal(more, 0);
	free(err);
	q.limit = SUPP_LIST_MAX + 1;
	err = NULL;
	assert_int_equal(store_supp_list(st, &q, seen_cb, NULL, &more, &err), -1);
	free(err);
	q.limit = 10;
	q.account = "nobody";
	err = NULL;
	assert_int_equal(store_supp_list(st, &q, seen_cb, NULL, &more, &err),
	                 STORE_SUPP_NO_ACCOUNT);
	assert_string_equal(err, "no such account 'nobody'");
	free(err);
	store_close(st);
}

/* ---- accounts and processes ----------------------------------------------------------------- */

static void test_accounts_are_isolated(void **state)
{
	struct store *st = open_with_user(*state, "bob");
	struct store_supp s;

	assert_int_equal(store_supp_add(st, "default", "a@x.org", "default's", NULL, NULL), 1);
	assert_int_equal(store_supp_check(st, "bob", "a@x.org", &s, NULL), 0);
	assert_int_equal(store_supp_remove(st, "bob", "a@x.org", &s, NULL), 0);
	assert_int_equal(store_supp_add(st, "bob", "a@x.org", "bob's", &s, NULL), 1);
	assert_string_equal(s.reason, "bob's");
	assert_int_equal(store_supp_check(st, "default", "a@x.org", &s, NULL), 1);
	assert_string_equal(s.reason, "default's");
	assert_int_equal(store_supp_remove(st, "bob", "a@x.org", NULL, NULL), 1);
	assert_int_equal(store_supp_check(st, "default", "a@x.org", NULL, NULL), 1);
	store_close(st);
}

static void test_other_process_sees_changes_at_once(void **state)
{
	struct fixture *f = *state;
	struct store *server = open_ok(f), *cli = open_ok(f);

	assert_int_equal(store_supp_check(server, "default", "a@x.org", NULL, NULL), 0);
	assert_int_equal(store_supp_add(cli, "default", "a@x.org", "manual", NULL, NULL), 1);
	assert_int_equal(store_supp_check(server, "default", "a@x.org", NULL, NULL), 1);
	raw_exec(f, "DELETE FROM suppressions");
	assert_int_equal(store_supp_check(server, "default", "a@x.org", NULL, NULL), 0);
	store_close(cli);
	store_close(server);
}

static void test_deleting_the_account_deletes_its_list(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "bob");

	assert_int_equal(store_supp_add(st, "bob", "a@x.org", "r", NULL, NULL), 1);
	assert_int_equal(store_supp_add(st, "default", "a@x.org", "r", NULL, NULL), 1);
	assert_int_equal(store_user_del(st, "bob", NULL), 0);
	assert_int_equal(store_user_add(st, "bob", NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_supp_check(st, "bob", "a@x.org", NULL, NULL), 0);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM suppressions"), 1);
}

/* The figure docs/deliverability.md quotes: a check against a list of
 * 100,000 entries, one by one and in batches of 1,000. */
static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void test_check_cost(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	const char *addrs[1000];
	char names[1000][32];
	unsigned char found[1000];
	double t0, one, many;
	int hits = 0;

	st = open_ok(f); /* the schema, and "default" as account 1 */
	store_close(st);
	raw_exec(f,
	         "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)"
	         " INSERT INTO suppressions SELECT 1, 'user' || i || '@example.com',"
	         " 'user' || i || '@example.com', 'manual', 1700000000 FROM n");
	st = open_ok(f);
	for (int i = 0; i < 1000; i++) {
		snprintf(names[i], sizeof(names[i]), "User%d@Example.com", i * 97);
		addrs[i] = names[i];
	}
	t0 = now_us();
	for (int i = 0; i < 1000; i++)
		hits += store_supp_check(st, "default", addrs[i], NULL, NULL);
	one = (now_us() - t0) / 1000;
	t0 = now_us();
	assert_int_equal(store_supp_check_many(st, "default", addrs, 1000, found, NULL, NULL),
	                 1000);
	many = (now_us() - t0) / 1000;
	assert_int_equal(hits, 1000);
	print_message("suppression check, 100,000 entries: %.1f us one by one, %.1f us each in a "
	              "batch of 1,000\n",
	              one, many);
	/* Loose bounds (sanitizer builds are slow): a lookup, not a scan. */
	assert_true(one < 2000);
	assert_true(many < 2000);
	store_close(st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_normalize_bounds),
	    cmocka_unit_test(test_reason_clean),
	    T(test_add_is_idempotent_and_keeps_the_first),
	    T(test_add_errors),
	    T(test_reason_is_cleaned_when_stored),
	    T(test_check),
	    T(test_check_many),
	    T(test_check_many_split),
	    T(test_remove),
	    T(test_list_pages_and_search),
	    T(test_list_errors),
	    T(test_accounts_are_isolated),
	    T(test_other_process_sees_changes_at_once),
	    T(test_deleting_the_account_deletes_its_list),
	    T(test_check_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
