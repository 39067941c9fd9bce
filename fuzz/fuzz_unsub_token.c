/*
 * libFuzzer target for unsub/unsub_token.c (PURE): the input is a token
 * (as a URL path segment would give it) checked against a fixed key, and
 * also split into an account and an address that get a token made.
 *
 * Beyond "no crash": a token that parses names an account and an address
 * that make that very token again; whatever make accepts, parse gives
 * back; a made token is at most UNSUB_TOKEN_MAX characters of base64url;
 * the header fields made from it are two lines ending in CRLF.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unsub/unsub.h"
#include "util/util.h"
#include "fuzz_util.h"

static const unsigned char KEY[UNSUB_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz";

static void check_made(const char *account, const char *rcpt)
{
	char tok[UNSUB_TOKEN_MAX + 1], a[UNSUB_ACCOUNT_MAX + 1], r[UNSUB_ADDR_MAX + 1];
	size_t n = unsub_token_make(KEY, account, rcpt, tok);
	struct buf b;

	if (n == 0)
		return;
	CHECK(n <= UNSUB_TOKEN_MAX && strlen(tok) == n);
	CHECK(unsub_token_parse(KEY, tok, a, r) == UNSUB_TOKEN_OK);
	CHECK(strcmp(a, account) == 0 && strcmp(r, rcpt) == 0);
	buf_init(&b);
	if (unsub_fields_for(KEY, "https://relay.example", account, rcpt, &b) == 0) {
		CHECK(b.len > 4 && memcmp(b.data + b.len - 2, "\r\n", 2) == 0);
		CHECK(strstr(b.data, tok) != NULL);
	}
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), *cut, a[UNSUB_ACCOUNT_MAX + 1], r[UNSUB_ADDR_MAX + 1];

	if (unsub_token_parse(KEY, s, a, r) == UNSUB_TOKEN_OK) {
		char again[UNSUB_TOKEN_MAX + 1];
		CHECK(unsub_token_make(KEY, a, r, again) > 0);
		CHECK(strcmp(again, s) == 0);
	}
	if ((cut = strchr(s, '|')) != NULL) {
		*cut = '\0';
		check_made(s, cut + 1);
	}
	free(s);
	return 0;
}
