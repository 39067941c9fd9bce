/*
 * unsub_token: the unsubscribe token and the two header fields. PURE (libc,
 * util and libsodium's HMAC-SHA256 and base64: functions, no I/O); fuzzed
 * by fuzz/fuzz_unsub_token.c.
 *
 * A token is base64url (no padding) of
 *
 *	0x01  LEN  ACCOUNT(LEN bytes)  ADDRESS(the rest)  MAC(16 bytes)
 *
 * MAC = HMAC-SHA256(key, "posthorn-unsubscribe" 0x00 || everything before
 * it), cut to 128 bits (RFC 2104 section 5 allows half the output and
 * more). The account and the address are in the clear: the token is only
 * a capability, and says nothing the recipient of the mail does not know.
 * It never expires: people unsubscribe from old mail too. A parse checks
 * the MAC (in constant time) before it reads a field.
 */
#include <sodium.h>
#include <string.h>

#include "unsub/unsub.h"
#include "util/util.h"

#define TOKEN_VERSION 1
#define MAC_LEN       16
#define RAW_MAX       (2 + UNSUB_ACCOUNT_MAX + UNSUB_ADDR_MAX + MAC_LEN)
#define RAW_MIN       (2 + 1 + 1 + MAC_LEN)
#define FIELD_MAX     998 /* octets of a header line (RFC 5322 2.1.1) */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char mac_context[] = "posthorn-unsubscribe"; /* with its NUL */

static void mac(const unsigned char key[UNSUB_KEY_LEN], const unsigned char *p, size_t n,
                unsigned char out[MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	unsigned char full[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256_init(&st, key, UNSUB_KEY_LEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)mac_context, sizeof(mac_context));
	crypto_auth_hmacsha256_update(&st, p, n);
	crypto_auth_hmacsha256_final(&st, full);
	memcpy(out, full, MAC_LEN);
	sodium_memzero(&st, sizeof(st));
}

/* 1 if s[0..n) is 1..max bytes, none of them a control byte or DEL. */
static int field_ok(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

size_t unsub_token_make(const unsigned char key[UNSUB_KEY_LEN], const char *account,
                        const char *rcpt, char out[UNSUB_TOKEN_MAX + 1])
{
	unsigned char raw[RAW_MAX];
	size_t a = account ? strlen(account) : 0, r = rcpt ? strlen(rcpt) : 0, n;

	if (!field_ok(account, a, UNSUB_ACCOUNT_MAX) || !field_ok(rcpt, r, UNSUB_ADDR_MAX))
		return 0;
	raw[0] = TOKEN_VERSION;
	raw[1] = (unsigned char)a;
	memcpy(raw + 2, account, a);
	memcpy(raw + 2 + a, rcpt, r);
	n = 2 + a + r;
	mac(key, raw, n, raw + n);
	n += MAC_LEN;
	sodium_bin2base64(out, UNSUB_TOKEN_MAX + 1, raw, n,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return strlen(out);
}

enum unsub_token_result unsub_token_parse(const unsigned char key[UNSUB_KEY_LEN], const char *token,
                                          char account[UNSUB_ACCOUNT_MAX + 1],
                                          char rcpt[UNSUB_ADDR_MAX + 1])
{
	unsigned char raw[RAW_MAX], want[MAC_LEN];
	size_t n = 0, len = strlen(token), a, r;

	/* only the base64url alphabet: libsodium also decodes some other bytes
	 * (found by fuzzing), and one token must have one spelling */
	if (len > UNSUB_TOKEN_MAX || strspn(token, B64URL) != len ||
	    sodium_base642bin(raw, sizeof(raw), token, len, NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n < RAW_MIN || raw[0] != TOKEN_VERSION)
		return UNSUB_TOKEN_MALFORMED;
	mac(key, raw, n - MAC_LEN, want);
	if (sodium_memcmp(want, raw + n - MAC_LEN, MAC_LEN) != 0)
		return UNSUB_TOKEN_FORGED;
	a = raw[1];
	if (a + 2 + MAC_LEN >= n)
		return UNSUB_TOKEN_MALFORMED;
	r = n - MAC_LEN - 2 - a;
	if (!field_ok((const char *)raw + 2, a, UNSUB_ACCOUNT_MAX) ||
	    !field_ok((const char *)raw + 2 + a, r, UNSUB_ADDR_MAX))
		return UNSUB_TOKEN_MALFORMED;
	memcpy(account, raw + 2, a);
	account[a] = '\0';
	memcpy(rcpt, raw + 2 + a, r);
	rcpt[r] = '\0';
	return UNSUB_TOKEN_OK;
}

int unsub_url_https(const char *url)
{
	return url && ascii_ncasecmp(url, "https://", 8) == 0 && url[8] != '\0' && url[8] != '/';
}

int unsub_fields_for(const unsigned char key[UNSUB_KEY_LEN], const char *base_url,
                     const char *account, const char *rcpt, struct buf *out)
{
	char token[UNSUB_TOKEN_MAX + 1];
	size_t base_len, start = out->len;

	if (!unsub_url_https(base_url) || unsub_token_make(key, account, rcpt, token) == 0)
		return -1;
	base_len = strlen(base_url);
	while (base_len > 8 && base_url[base_len - 1] == '/')
		base_len--;
	buf_puts(out, "List-Unsubscribe: <");
	buf_append(out, base_url, base_len);
	buf_printf(out, "/u/%s>", token);
	if (out->len - start > FIELD_MAX) {
		out->len = start; /* a public_url that long cannot carry a link */
		if (out->data)
			out->data[start] = '\0';
		return -1;
	}
	buf_puts(out, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
	return 0;
}
