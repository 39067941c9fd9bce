/*
 * Unit tests for store/store_apikey: keys made, found by hash only,
 * listed within a scope, revoked and renamed (with the errors a caller
 * sees), last use recorded in batches, an account's domains, the ping,
 * and what the table holds (never the key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("apikey");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static int64_t make_key(struct store *st, const char *account, const char *name, int admin,
                        char key[APIKEY_LEN + 1])
{
	char *err = NULL;
	int64_t id = 0;

	if (store_apikey_create(st, account, name, admin, key, &id, &err) < 0)
		fail_msg("create: %s", err);
	return id;
}

static int lookup(struct store *st, const char *key, struct store_apikey *k)
{
	unsigned char h[APIKEY_HASH_LEN];

	store_apikey_hash(key, h);
	return store_apikey_lookup(st, h, k, NULL);
}

static void test_create_and_lookup(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char key[APIKEY_LEN + 1], key2[APIKEY_LEN + 1];
	struct store_apikey k;

	assert_int_equal(make_key(st, "default", "ci", 0, key), 1);
	assert_int_equal(make_key(st, "default", "", 1, key2), 2);
	assert_true(store_apikey_format_ok(key));
	assert_string_not_equal(key, key2);
	assert_int_equal(lookup(st, key, &k), 1);
	assert_int_equal(k.id, 1);
	assert_string_equal(k.account, "default");
	assert_string_equal(k.name, "ci");
	assert_int_equal(k.admin, 0);
	assert_true(k.created_at > 0);
	assert_int_equal(k.last_used_at, 0);
	assert_int_equal(lookup(st, key2, &k), 1);
	assert_int_equal(k.admin, 1);
	key[10] = key[10] == 'a' ? 'b' : 'a';
	assert_int_equal(lookup(st, key, &k), 0);
	store_close(st);
	/* Only the hash is stored. */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM api_keys WHERE key_hash LIKE 'ph_%'"), 0);
	assert_int_equal(raw_int(f, "SELECT length(key_hash) FROM api_keys WHERE id = 1"), 64);
}

static void test_create_errors(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char key[APIKEY_LEN + 1], *err = NULL;
	int64_t id;

	assert_int_equal(store_apikey_create(st, "nobody", "", 0, key, &id, &err), -1);
	assert_non_null(strstr(err, "no such account 'nobody'"));
	free(err);
	err = NULL;
	assert_int_equal(store_apikey_create(st, "default", "tab\there", 0, key, &id, &err), -1);
	assert_non_null(strstr(err, "invalid key name"));
	free(err);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM api_keys"), 0);
	store_close(st);
}

struct seen {
	int64_t ids[8];
	size_t n;
};

static void collect(void *arg, const struct store_apikey *k)
{
	struct seen *s = arg;

	s->ids[s->n++] = k->id;
}

static void test_scope(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char key[APIKEY_LEN + 1], *err = NULL;
	struct store_apikey_scope all = {NULL, 1}, alice = {"alice", 0}, dflt = {"default", 0};
	struct store_apikey k;
	struct seen s = {0};

	assert_int_equal(store_user_add(st, "alice", NULL, NULL, 0, NULL), 0);
	make_key(st, "default", "a", 0, key); /* 1 */
	make_key(st, "alice", "b", 0, key);   /* 2 */
	make_key(st, "alice", "c", 1, key);   /* 3: admin */
	assert_int_equal(store_apikey_list(st, &all, collect, &s, NULL), 0);
	assert_int_equal(s.n, 3);
	s.n = 0;
	assert_int_equal(store_apikey_list(st, &alice, collect, &s, NULL), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 2);
	/* Out of scope looks like absent. */
	assert_int_equal(store_apikey_revoke(st, 2, &dflt, NULL, &err), STORE_APIKEY_NOT_FOUND);
	assert_non_null(strstr(err, "no such API key 2"));
	free(err);
	err = NULL;
	assert_int_equal(store_apikey_revoke(st, 3, &alice, NULL, &err), STORE_APIKEY_NOT_FOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_apikey_rename(st, 2, &alice, "renamed", &k, NULL), 0);
	assert_string_equal(k.name, "renamed");
	assert_int_equal(store_apikey_revoke(st, 2, &alice, &k, NULL), 0);
	assert_true(k.revoked_at > 0);
	assert_int_equal(store_apikey_revoke(st, 2, &all, NULL, &err), STORE_APIKEY_REVOKED);
	assert_non_null(strstr(err, "already revoked"));
	free(err);
	err = NULL;
	assert_int_equal(store_apikey_revoke(st, 99, &all, NULL, &err), STORE_APIKEY_NOT_FOUND);
	free(err);
	store_close(st);
}

static void test_revoked_and_deleted_stop_working(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char key[APIKEY_LEN + 1], key2[APIKEY_LEN + 1];
	struct store_apikey_scope all = {NULL, 1};
	struct store_apikey k;

	assert_int_equal(store_user_add(st, "bob", NULL, NULL, 0, NULL), 0);
	make_key(st, "default", "", 0, key);
	make_key(st, "bob", "", 0, key2);
	assert_int_equal(store_apikey_revoke(st, 1, &all, NULL, NULL), 0);
	assert_int_equal(lookup(st, key, &k), 0);
	/* Deleting the account deletes its keys. */
	assert_int_equal(lookup(st, key2, &k), 1);
	assert_int_equal(store_user_del(st, "bob", NULL), 0);
	assert_int_equal(lookup(st, key2, &k), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM api_keys"), 1);
	/* A new key never reuses an id. */
	assert_int_equal(make_key(st, "default", "", 0, key), 2);
	store_close(st);
}

static void test_touch(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char key[APIKEY_LEN + 1];
	int64_t ids[] = {1, 2, 77}, times[] = {1000, 2000, 3000}, older[] = {500};
	struct store_apikey k;

	make_key(st, "default", "", 0, key);
	make_key(st, "default", "", 0, key);
	assert_int_equal(store_apikey_touch(st, ids, times, 3, NULL), 0);
	assert_int_equal(store_apikey_touch(st, ids, older, 1, NULL), 0);
	assert_int_equal(lookup(st, key, &k), 1);
	assert_int_equal(k.last_used_at, 2000);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT last_used_at FROM api_keys WHERE id = 1"), 1000);
}

static void test_domains_and_ping(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	const char *d[] = {"b.example", "A.example"};
	char **out, *err = NULL;
	size_t n;

	assert_int_equal(store_user_add(st, "carol", NULL, d, 2, NULL), 0);
	assert_int_equal(store_account_domains(st, "carol", &out, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "a.example");
	assert_string_equal(out[1], "b.example");
	free(out[0]);
	free(out[1]);
	free(out);
	assert_int_equal(store_account_domains(st, "default", &out, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_account_domains(st, "nobody", &out, &n, &err), -1);
	assert_non_null(strstr(err, "no such account"));
	free(err);
	assert_int_equal(store_ping(st, NULL), 0);
	store_close(st);
}

static void test_pure_checks(void **state)
{
	(void)state;
	assert_true(store_apikey_name_valid(""));
	assert_true(store_apikey_name_valid("deploy bot ü"));
	assert_false(store_apikey_name_valid("a\nb"));
	assert_false(store_apikey_name_valid(
	    "0123456789012345678901234567890123456789012345678901234567890123456789"));
	assert_true(store_apikey_format_ok(
	    "ph_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	assert_false(store_apikey_format_ok(
	    "ph_0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
	assert_false(store_apikey_format_ok(
	    "pk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	assert_false(store_apikey_format_ok("ph_0123"));
	assert_false(store_apikey_format_ok(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_create_and_lookup),
	    T(test_create_errors),
	    T(test_scope),
	    T(test_revoked_and_deleted_stop_working),
	    T(test_touch),
	    T(test_domains_and_ping),
	    T(test_pure_checks),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
