/*
 * test_unsub: one-click unsubscribe (src/unsub/): the token round trip
 * for accounts and addresses of every length and byte the SMTP side can
 * give; every single-bit change of a token (and another key, and a
 * token's account or address spliced into another's) fails its MAC;
 * malformed tokens of every kind; the header fields and their refusals
 * (http public_url, a link longer than a header line); the secret file
 * (made once, 0600, the same on a second open, a damaged one refused);
 * the account flag in the store and the list the server reads.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "store_fixture.h"
#include "unsub/unsub.h"
#include "util/util.h"

static const unsigned char KEY[UNSUB_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const unsigned char KEY2[UNSUB_KEY_LEN] = "0123456789abcdef0123456789abcdeF";

static void roundtrip(const char *account, const char *rcpt)
{
	char tok[UNSUB_TOKEN_MAX + 1], a[UNSUB_ACCOUNT_MAX + 1], r[UNSUB_ADDR_MAX + 1];
	size_t n = unsub_token_make(KEY, account, rcpt, tok);

	assert_true(n > 0 && n <= UNSUB_TOKEN_MAX);
	assert_int_equal(strlen(tok), n);
	assert_int_equal(
	    strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	    n); /* a URL path segment as it is */
	assert_int_equal(unsub_token_parse(KEY, tok, a, r), UNSUB_TOKEN_OK);
	assert_string_equal(a, account);
	assert_string_equal(r, rcpt);
	assert_int_equal(unsub_token_parse(KEY2, tok, a, r), UNSUB_TOKEN_FORGED);
}

static void test_roundtrip(void **state)
{
	char acct[UNSUB_ACCOUNT_MAX + 1], addr[UNSUB_ADDR_MAX + 1];

	roundtrip("default", "x@example.net");
	roundtrip("a", "b@c");
	roundtrip("shop.news+eu@x", "\"quoted local\"@example.net");
	roundtrip("acct", "j\xc3\xbcrgen@\xc3\xa9xample.de"); /* SMTPUTF8 */
	memset(acct, 'a', UNSUB_ACCOUNT_MAX);
	acct[UNSUB_ACCOUNT_MAX] = '\0';
	memset(addr, 'r', UNSUB_ADDR_MAX);
	addr[UNSUB_ADDR_MAX] = '\0';
	addr[10] = '@';
	roundtrip(acct, addr); /* the longest: UNSUB_TOKEN_MAX */
}

static void test_make_refuses(void **state)
{
	char tok[UNSUB_TOKEN_MAX + 1], acct[UNSUB_ACCOUNT_MAX + 2], addr[UNSUB_ADDR_MAX + 2];

	memset(acct, 'a', sizeof(acct) - 1);
	acct[sizeof(acct) - 1] = '\0';
	memset(addr, 'r', sizeof(addr) - 1);
	addr[sizeof(addr) - 1] = '\0';
	assert_int_equal(unsub_token_make(KEY, "", "x@y", tok), 0);
	assert_int_equal(unsub_token_make(KEY, NULL, "x@y", tok), 0);
	assert_int_equal(unsub_token_make(KEY, "a", "", tok), 0);
	assert_int_equal(unsub_token_make(KEY, acct, "x@y", tok), 0);
	assert_int_equal(unsub_token_make(KEY, "a", addr, tok), 0);
	assert_int_equal(unsub_token_make(KEY, "a", "x\r\n@y", tok), 0);
	assert_int_equal(unsub_token_make(KEY, "a\x7f", "x@y", tok), 0);
}

/* Every bit of the decoded token matters: flipping one gives a token that
 * is malformed or forged, never another valid one. */
static void test_every_bit(void **state)
{
	char tok[UNSUB_TOKEN_MAX + 1], a[UNSUB_ACCOUNT_MAX + 1], r[UNSUB_ADDR_MAX + 1];
	unsigned char raw[512];
	size_t n = 0;

	unsub_token_make(KEY, "acct", "victim@example.net", tok);
	assert_int_equal(sodium_base642bin(raw, sizeof(raw), tok, strlen(tok), NULL, &n, NULL,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	                 0);
	for (size_t i = 0; i < n * 8; i++) {
		char t2[UNSUB_TOKEN_MAX + 1];
		raw[i / 8] ^= (unsigned char)(1u << (i % 8));
		sodium_bin2base64(t2, sizeof(t2), raw, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		assert_int_not_equal(unsub_token_parse(KEY, t2, a, r), UNSUB_TOKEN_OK);
		raw[i / 8] ^= (unsigned char)(1u << (i % 8));
	}
}

/* Someone who holds their own link cannot make one for another address:
 * the MAC of one token does not fit another payload. */
static void test_splice(void **state)
{
	char mine[UNSUB_TOKEN_MAX + 1], a[UNSUB_ACCOUNT_MAX + 1], r[UNSUB_ADDR_MAX + 1];
	unsigned char raw[512], other[512];
	size_t n = 0, m = 0;

	unsub_token_make(KEY, "acct", "me@example.net", mine);
	sodium_base642bin(raw, sizeof(raw), mine, strlen(mine), NULL, &n, NULL,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	/* same length, another address: "yo@example.net" */
	memcpy(other, raw, n);
	memcpy(other + 2 + 4, "yo", 2);
	sodium_bin2base64(mine, sizeof(mine), other, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	assert_int_equal(unsub_token_parse(KEY, mine, a, r), UNSUB_TOKEN_FORGED);
	(void)m;
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	    "",      "A",   "AQ",   "!!!!",      "AQdkZWZhdWx0", /* too short for a MAC */
	    "a b c", "%41", "AQ==", "AQdk.ZWZh",
	};
	char good[UNSUB_TOKEN_MAX + 1];
	char a[UNSUB_ACCOUNT_MAX + 1], r[UNSUB_ADDR_MAX + 1], big[UNSUB_TOKEN_MAX + 8];
	unsigned char raw[64] = {2, 1, 'a', 'b', '@', 'c'};
	char tok[128];

	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(unsub_token_parse(KEY, bad[i], a, r), UNSUB_TOKEN_MALFORMED);
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(unsub_token_parse(KEY, big, a, r), UNSUB_TOKEN_MALFORMED);
	/* one spelling per token: a byte libsodium would also decode as '_' */
	unsub_token_make(KEY, "acct", "x@example.net", good);
	assert_int_equal(unsub_token_parse(KEY, good, a, r), UNSUB_TOKEN_OK);
	for (char *c = good; *c; c++)
		if (*c == '_' || *c == '-')
			*c = (char)0xe6;
	if (strchr(good, (char)0xe6))
		assert_int_equal(unsub_token_parse(KEY, good, a, r), UNSUB_TOKEN_MALFORMED);
	/* version 2 is not ours */
	sodium_bin2base64(tok, sizeof(tok), raw, 6 + 16, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	assert_int_equal(unsub_token_parse(KEY, tok, a, r), UNSUB_TOKEN_MALFORMED);
}

static void test_fields(void **state)
{
	struct buf b;
	char base[1100];

	assert_true(unsub_url_https("https://relay.example.com"));
	assert_true(unsub_url_https("HTTPS://relay.example.com/prefix/"));
	assert_false(unsub_url_https("http://relay.example.com"));
	assert_false(unsub_url_https("https://"));
	assert_false(unsub_url_https("https:///path"));
	assert_false(unsub_url_https(NULL));
	buf_init(&b);
	assert_int_equal(unsub_fields_for(KEY, "https://relay.test/", "acct", "x@y.test", &b), 0);
	assert_non_null(strstr(b.data, "List-Unsubscribe: <https://relay.test/u/"));
	assert_non_null(
	    strstr(b.data, ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
	assert_null(strstr(b.data, "mailto:"));
	assert_int_equal(strncmp(b.data + b.len - 2, "\r\n", 2), 0);
	buf_reset(&b);
	assert_int_equal(unsub_fields_for(KEY, "http://relay.test", "acct", "x@y.test", &b), -1);
	assert_int_equal(b.len, 0);
	memset(base, 'h', sizeof(base) - 1);
	base[sizeof(base) - 1] = '\0';
	memcpy(base, "https://", 8);
	assert_int_equal(unsub_fields_for(KEY, base, "acct", "x@y.test", &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* The secret: made once, 0600, the same key on every open; a damaged file
 * is refused rather than replaced (links already sent depend on it). */
static void test_secret(void **state)
{
	struct fixture *f = fixture_new("unsub");
	struct buf a, b;
	char *err = NULL, *path;
	struct unsub *u1, *u2;
	struct stat st;
	int fd;

	mkdir(f->data, 0700);
	u1 = unsub_new(f->data, "https://relay.test", &err);
	assert_non_null(u1);
	u2 = unsub_new(f->data, "https://relay.test", &err);
	assert_non_null(u2);
	path = xasprintf("%s/unsubscribe.key", f->data);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, UNSUB_KEY_LEN);
	buf_init(&a), buf_init(&b);
	assert_int_equal(unsub_fields(u1, "acct", "x@y.test", &a), 0);
	assert_int_equal(unsub_fields(u2, "acct", "x@y.test", &b), 0);
	assert_string_equal(a.data, b.data);
	assert_true(unsub_active(u1));
	unsub_free(u1), unsub_free(u2);
	u1 = unsub_new(f->data, "http://relay.test", &err);
	assert_false(unsub_active(u1));
	assert_int_equal(unsub_fields(u1, "acct", "x@y.test", &a), -1);
	unsub_free(u1);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "short", 5), 5);
	close(fd);
	assert_null(unsub_new(f->data, "https://relay.test", &err));
	assert_non_null(strstr(err, "unsubscribe.key"));
	free(err);
	buf_free(&a), buf_free(&b);
	free(path);
	fixture_free(f);
}

static void test_store_flag(void **state)
{
	struct fixture *f = fixture_new("unsubflag");
	struct store *st = open_ok(f);
	char *err = NULL, **names;
	size_t n;
	int on = -1;

	assert_int_equal(store_user_add(st, "bob", "a long password", NULL, 0, &err), 0);
	assert_int_equal(store_account_unsubscribe(st, "bob", &on, &err), 0);
	assert_int_equal(on, 0);
	assert_int_equal(store_accounts_unsubscribe(st, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	store_strv_free(names, n);
	assert_int_equal(store_account_set_unsubscribe(st, "bob", 1, &err), 0);
	assert_int_equal(store_account_set_unsubscribe(st, "default", 1, &err), 0);
	assert_int_equal(store_account_unsubscribe(st, "bob", &on, &err), 0);
	assert_int_equal(on, 1);
	assert_int_equal(store_accounts_unsubscribe(st, &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "bob");
	assert_string_equal(names[1], "default");
	store_strv_free(names, n);
	assert_int_equal(store_account_set_unsubscribe(st, "bob", 0, &err), 0);
	assert_int_equal(store_accounts_unsubscribe(st, &names, &n, &err), 0);
	assert_int_equal(n, 1);
	store_strv_free(names, n);
	assert_int_equal(store_account_set_unsubscribe(st, "nobody", 1, &err), -1);
	assert_string_equal(err, "no such account 'nobody'");
	free(err), err = NULL;
	assert_int_equal(store_account_unsubscribe(st, "nobody", &on, &err), -1);
	free(err);
	store_close(st);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_make_refuses),
	    cmocka_unit_test(test_every_bit), cmocka_unit_test(test_splice),
	    cmocka_unit_test(test_malformed), cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_secret),    cmocka_unit_test(test_store_flag),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
