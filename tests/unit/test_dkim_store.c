/*
 * Unit tests for the DKIM keys in the store (store_dkim.c, migration 4)
 * and for making keys (dkim_keygen: files, rows, selectors) and the
 * rotation step against the store (dkim_activate_visible). Each test gets
 * a fresh data directory; raw sqlite3 calls stand in for another process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "dkim/dkim.h"
#include "store/store.h"
#include "util/util.h"

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("dkim");

	if (f == NULL)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void assert_fails_with(int rc, char **err, const char *want)
{
	assert_int_equal(rc, -1);
	assert_non_null(*err);
	if (strstr(*err, want) == NULL)
		fail_msg("error '%s' does not mention '%s'", *err, want);
	free(*err);
	*err = NULL;
}

static struct store_dkim_key row(const char *domain, const char *sel, const char *algo,
                                 const char *state, int64_t created)
{
	return (struct store_dkim_key){
	    (char *)domain,       (char *)sel, (char *)algo, (char *)state, created, 0, 0,
	    (char *)"dkim/x.pem", NULL};
}

static void add_ok(struct store *st, struct store_dkim_key k)
{
	char *err = NULL;

	if (store_dkim_add(st, &k, &err) != 0)
		fail_msg("store_dkim_add: %s", err);
}

/* "domain/selector/state" of each listed key, joined by spaces. */
static char *listing(struct store *st, const char *domain, const char *state)
{
	struct store_dkim_key *v;
	size_t n;
	char *err = NULL;
	struct buf b;

	if (store_dkim_list(st, domain, state, &v, &n, &err) != 0)
		fail_msg("store_dkim_list: %s", err);
	buf_init(&b);
	buf_puts(&b, "");
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%s/%s/%s", i ? " " : "", v[i].domain, v[i].selector, v[i].state);
	store_dkim_keys_free(v, n);
	return b.data;
}

static void assert_listing(struct store *st, const char *domain, const char *state,
                           const char *want)
{
	char *got = listing(st, domain, state);

	assert_string_equal(got, want);
	free(got);
}

/* ---- the table ------------------------------------------------------------------ */

static void test_add_and_list(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;
	struct store_dkim_key k = row("a.example", "s1", "rsa2048", "active", 5);

	add_ok(st, row("B.example", "s1", "ed25519", "pending", 3));
	add_ok(st, k);
	add_ok(st, row("a.example", "s0", "rsa2048", "retired", 9));
	assert_listing(st, NULL, NULL,
	               "a.example/s1/active a.example/s0/retired b.example/s1/pending");
	assert_listing(st, "A.EXAMPLE", NULL, "a.example/s1/active a.example/s0/retired");
	assert_listing(st, NULL, "pending", "b.example/s1/pending");
	assert_listing(st, "nowhere.example", NULL, "");
	/* one selector per domain; another domain may use it */
	assert_fails_with(store_dkim_add(st, &k, &err), &err, "already has a key with selector");
	k.algorithm = "rsa1024";
	k.selector = "s2";
	assert_fails_with(store_dkim_add(st, &k, &err), &err, "invalid algorithm");
	k.algorithm = NULL;
	assert_fails_with(store_dkim_add(st, &k, &err), &err, "incomplete");
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM dkim_keys WHERE activated IS NULL"), 3);
}

static void test_change_compare_and_set(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;
	const struct store_dkim_change rot[] = {
	    {"a.example", "new", "pending", "active", 100},
	    {"a.example", "old", "active", "retired", 100},
	};

	add_ok(st, row("a.example", "old", "rsa2048", "active", 1));
	add_ok(st, row("a.example", "new", "rsa2048", "pending", 2));
	assert_int_equal(store_dkim_change(st, rot, 2, &err), 0);
	assert_listing(st, "a.example", NULL, "a.example/old/retired a.example/new/active");
	assert_int_equal(raw_int(f, "SELECT activated FROM dkim_keys WHERE selector = 'new'"), 100);
	assert_int_equal(raw_int(f, "SELECT retired FROM dkim_keys WHERE selector = 'old'"), 100);
	/* a second process doing the same finds the keys moved: nothing changes */
	assert_int_equal(store_dkim_change(st, rot, 2, &err), 1);
	assert_int_equal(store_dkim_change(st, NULL, 0, &err), 0);
	store_close(st);
}

static void test_change_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;
	const struct store_dkim_change c[] = {
	    {"a.example", "new", "pending", "active", 100},
	    {"a.example", "gone", "active", "retired", 100}, /* no such key */
	};

	add_ok(st, row("a.example", "new", "rsa2048", "pending", 2));
	assert_int_equal(store_dkim_change(st, c, 2, &err), 1);
	assert_listing(st, NULL, NULL, "a.example/new/pending");
	/* another process moved the key to a state the CHECK refuses */
	raw_exec(f, "UPDATE dkim_keys SET state = 'active'");
	assert_int_equal(store_dkim_change(st, c, 1, &err), 1);
	store_close(st);
}

/* ---- keygen ---------------------------------------------------------------------- */

static void keygen_ok(struct store *st, const struct fixture *f, const char *domain,
                      const char *sel, enum dkim_algo a, enum dkim_state s,
                      struct dkim_key_info *out)
{
	char *err = NULL;

	if (dkim_keygen(st, f->data, domain, sel, a, s, out, &err) != 0)
		fail_msg("dkim_keygen %s: %s", domain, err);
}

static void test_keygen_files_and_rows(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct dkim_key_info k, *v;
	struct stat sb;
	size_t n;
	char *path, *err = NULL;

	keygen_ok(st, f, "Mail.Example", NULL, DKIM_ALGO_RSA2048, DKIM_STATE_ACTIVE, &k);
	assert_string_equal(k.domain, "mail.example");
	assert_true(strncmp(k.selector, "ph", 2) == 0 && strlen(k.selector) == 8);
	assert_true(strncmp(k.record, "v=DKIM1; k=rsa; p=MII", 21) == 0);
	assert_true(k.activated > 0 && k.activated == k.created);
	path = xasprintf("%s/%s", f->data, k.key_path);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	free(path);
	path = xasprintf("%s/dkim", f->data);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	free(path);
	/* what is loaded back is what keygen gave */
	assert_int_equal(dkim_keys_load(st, f->data, "mail.example", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].record, k.record);
	assert_int_equal(v[0].state, DKIM_STATE_ACTIVE);
	assert_null(v[0].error);
	dkim_key_info_free(v, n);
	dkim_key_info_clear(&k);
	store_close(st);
}

static void test_keygen_selectors(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct dkim_key_info a, b, c, d;
	char *err = NULL, *orphan, *sel3;
	FILE *fp;

	keygen_ok(st, f, "x.example", NULL, DKIM_ALGO_ED25519, DKIM_STATE_ACTIVE, &a);
	keygen_ok(st, f, "x.example", NULL, DKIM_ALGO_ED25519, DKIM_STATE_PENDING, &b);
	assert_string_equal(b.selector + strlen(a.selector), "-2");
	assert_int_equal(b.activated, 0);
	assert_true(strncmp(b.record, "v=DKIM1; k=ed25519; p=", 22) == 0);
	assert_int_equal(strlen(b.record), 22 + 44); /* 32 bytes in base64 */
	/* a key file left by a crash is stepped over, never overwritten */
	orphan = xasprintf("%s/dkim/%s-3._domainkey.x.example.pem", f->data, a.selector);
	assert_non_null(fp = fopen(orphan, "w"));
	fclose(fp);
	keygen_ok(st, f, "x.example", NULL, DKIM_ALGO_RSA2048, DKIM_STATE_ACTIVE, &c);
	assert_string_equal(c.selector + strlen(a.selector), "-4");
	/* explicit selectors: taken, or with a leftover file, or invalid */
	assert_fails_with(dkim_keygen(st, f->data, "x.example", a.selector, DKIM_ALGO_RSA2048,
	                              DKIM_STATE_ACTIVE, &d, &err),
	                  &err, "already has a key with selector");
	sel3 = xasprintf("%s-3", a.selector);
	assert_fails_with(dkim_keygen(st, f->data, "x.example", sel3, DKIM_ALGO_ED25519,
	                              DKIM_STATE_ACTIVE, &d, &err),
	                  &err, "File exists");
	free(sel3);
	keygen_ok(st, f, "x.example", "s1.mail", DKIM_ALGO_ED25519, DKIM_STATE_ACTIVE, &d);
	dkim_key_info_clear(&d);
	assert_fails_with(dkim_keygen(st, f->data, "x.example", "bad_sel", DKIM_ALGO_RSA2048,
	                              DKIM_STATE_ACTIVE, &d, &err),
	                  &err, "invalid selector");
	assert_fails_with(dkim_keygen(st, f->data, "x..example", NULL, DKIM_ALGO_RSA2048,
	                              DKIM_STATE_ACTIVE, &d, &err),
	                  &err, "invalid domain");
	assert_fails_with(dkim_keygen(st, f->data, "x.example", NULL, DKIM_ALGO_RSA2048,
	                              DKIM_STATE_RETIRED, &d, &err),
	                  &err, "cannot be retired");
	store_close(st);
	/* four keys: the failures left no row */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM dkim_keys"), 4);
	free(orphan);
	dkim_key_info_clear(&a);
	dkim_key_info_clear(&b);
	dkim_key_info_clear(&c);
}

/* A name of exactly len octets: labels of 63 'a' joined by dots. */
static char *name_of(size_t len)
{
	char *s = xmalloc(len + 1);

	memset(s, 'a', len);
	for (size_t i = 63; i < len; i += 64)
		s[i] = '.';
	s[len] = '\0';
	return s;
}

static void test_selector_valid(void **state)
{
	char *sel = name_of(191), *d50 = name_of(50), *d51 = name_of(51);

	assert_true(dkim_selector_valid("ph202611", "example.com"));
	assert_true(dkim_selector_valid("s1.eu-west", "example.com"));
	assert_false(dkim_selector_valid("-s", "example.com"));
	assert_false(dkim_selector_valid("s_1", "example.com"));
	assert_false(dkim_selector_valid("s..1", "example.com"));
	assert_false(dkim_selector_valid("", "example.com"));
	assert_false(dkim_selector_valid(NULL, "example.com"));
	/* SELECTOR._domainkey.DOMAIN must fit in 253 octets: 191 + 12 + 50 */
	assert_true(dkim_selector_valid(sel, d50));
	assert_false(dkim_selector_valid(sel, d51));
	free(sel);
	free(d50);
	free(d51);
}

/* ---- rotation against the store ------------------------------------------------------ */

/* Keys are listed by creation time, which may tie: find them by name. */
static size_t idx_of(const struct dkim_key_info *v, size_t n, const char *sel)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].selector, sel) == 0)
			return i;
	fail_msg("no key %s", sel);
	return 0;
}

static void test_activate_visible(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct dkim_key_info old, ed, new, *v;
	struct dkim_activation *acts;
	struct dkim_lookup res[3];
	size_t n, n_acts, p;
	char *err = NULL;

	keygen_ok(st, f, "r.example", "old", DKIM_ALGO_RSA2048, DKIM_STATE_ACTIVE, &old);
	keygen_ok(st, f, "r.example", "ed", DKIM_ALGO_ED25519, DKIM_STATE_ACTIVE, &ed);
	keygen_ok(st, f, "r.example", "new", DKIM_ALGO_RSA2048, DKIM_STATE_PENDING, &new);
	assert_int_equal(dkim_keys_load(st, f->data, "r.example", &v, &n, &err), 0);
	assert_int_equal(n, 3);
	p = idx_of(v, n, "new");
	/* not visible yet: nothing happens */
	for (size_t i = 0; i < n; i++)
		res[i] = (struct dkim_lookup){DKIM_LOOKUP_ANSWERED, DKIM_VERDICT_MATCH, NULL};
	res[p].verdict = DKIM_VERDICT_MISSING;
	assert_int_equal(dkim_activate_visible(st, v, n, res, 1000, &acts, &n_acts, &err), 0);
	assert_int_equal(n_acts, 0);
	free(acts);
	/* a DNS failure is not a sighting either */
	res[p] = (struct dkim_lookup){DKIM_LOOKUP_FAILED, DKIM_VERDICT_MATCH, "timeout"};
	assert_int_equal(dkim_activate_visible(st, v, n, res, 1000, &acts, &n_acts, &err), 0);
	assert_int_equal(n_acts, 0);
	free(acts);
	/* seen: new is active, old retired, ed untouched */
	res[p] = (struct dkim_lookup){DKIM_LOOKUP_ANSWERED, DKIM_VERDICT_MATCH, NULL};
	assert_int_equal(dkim_activate_visible(st, v, n, res, 2000, &acts, &n_acts, &err), 0);
	assert_int_equal(n_acts, 2);
	assert_string_equal(v[acts[0].key].selector, "new");
	assert_int_equal(acts[0].to, DKIM_STATE_ACTIVE);
	assert_string_equal(v[acts[1].key].selector, "old");
	assert_int_equal(acts[1].to, DKIM_STATE_RETIRED);
	assert_int_equal(v[idx_of(v, n, "old")].retired, 2000);
	assert_int_equal(v[idx_of(v, n, "ed")].state, DKIM_STATE_ACTIVE);
	free(acts);
	assert_listing(st, NULL, "retired", "r.example/old/retired");
	assert_listing(st, NULL, "pending", "");
	dkim_key_info_free(v, n);
	dkim_key_info_clear(&old);
	dkim_key_info_clear(&ed);
	dkim_key_info_clear(&new);
	store_close(st);
}

/* Another process activated the key between our lookup and our write. */
static void test_activate_raced(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct dkim_key_info a, b, *v;
	struct dkim_activation *acts;
	struct dkim_lookup res[2] = {{DKIM_LOOKUP_ANSWERED, DKIM_VERDICT_MATCH, NULL},
	                             {DKIM_LOOKUP_ANSWERED, DKIM_VERDICT_MATCH, NULL}};
	size_t n, n_acts;
	char *err = NULL;

	keygen_ok(st, f, "r.example", "a", DKIM_ALGO_RSA2048, DKIM_STATE_ACTIVE, &a);
	keygen_ok(st, f, "r.example", "b", DKIM_ALGO_RSA2048, DKIM_STATE_PENDING, &b);
	assert_int_equal(dkim_keys_load(st, f->data, "r.example", &v, &n, &err), 0);
	raw_exec(f, "UPDATE dkim_keys SET state = 'active', activated = 77 WHERE selector = 'b';"
	            "UPDATE dkim_keys SET state = 'retired', retired = 77 WHERE selector = 'a'");
	assert_int_equal(dkim_activate_visible(st, v, n, res, 2000, &acts, &n_acts, &err), 0);
	assert_int_equal(n_acts, 0);
	/* the other process's times stand */
	assert_int_equal(v[idx_of(v, n, "a")].state, DKIM_STATE_RETIRED);
	assert_int_equal(v[idx_of(v, n, "a")].retired, 77);
	assert_int_equal(v[idx_of(v, n, "b")].activated, 77);
	free(acts);
	dkim_key_info_free(v, n);
	dkim_key_info_clear(&a);
	dkim_key_info_clear(&b);
	store_close(st);
}

/* A secret key file in the fixture's directory; its path (malloc'd). */
static char *secret_file(const struct fixture *f, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", f->base, name);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* The PEM the one listed key comes back with (malloc'd), or NULL. */
static char *listed_pem(struct store *st)
{
	struct store_dkim_key *v;
	size_t n;
	char *err = NULL, *pem;

	if (store_dkim_list(st, NULL, NULL, &v, &n, &err) != 0)
		fail_msg("store_dkim_list: %s", err);
	assert_int_equal(n, 1);
	pem = v[0].key_pem ? xstrdup(v[0].key_pem) : NULL;
	store_dkim_keys_free(v, n);
	return pem;
}

#define HEX_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define PEM   "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"

/* [cluster] secret_key_file: the key goes in sealed and comes back only
 * under the same secret; a bad file is an error naming it. */
static void test_private_key_sealed(void **state)
{
	struct fixture *f = *state;
	char *a = secret_file(f, "a.key", HEX_A "\n"), *b = secret_file(f, "b.key", HEX_B);
	char *bad = secret_file(f, "bad.key", "0011\n"), *err = NULL, *pem;
	struct store_dkim_key k = row("x.example", "s1", "ed25519", "active", 100);
	struct store *st = store_open_url(f->data, fixture_pg_url(), a, &err);

	assert_non_null(st);
	k.key_pem = (char *)PEM;
	add_ok(st, k);
	pem = listed_pem(st);
	assert_string_equal(pem, PEM);
	free(pem);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM dkim_keys WHERE key_box IS NOT NULL"
	                            " AND key_box NOT LIKE '%PRIVATE%'"),
	                 1);
	store_close(st);
	st = store_open_url(f->data, fixture_pg_url(), b, &err); /* another secret */
	assert_non_null(st);
	assert_null(listed_pem(st));
	store_close(st);
	st = store_open_url(f->data, fixture_pg_url(), NULL, &err); /* none */
	assert_non_null(st);
	assert_null(listed_pem(st));
	store_close(st);
	assert_null(store_open_url(f->data, fixture_pg_url(), bad, &err));
	assert_non_null(strstr(err, "bad.key: expected 64 hex digits"));
	free(err);
	free(a);
	free(b);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_add_and_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_private_key_sealed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_change_compare_and_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_change_all_or_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keygen_files_and_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keygen_selectors, setup, teardown),
	    cmocka_unit_test(test_selector_valid),
	    cmocka_unit_test_setup_teardown(test_activate_visible, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_activate_raced, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
