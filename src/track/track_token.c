/*
 * track_token: PURE. Tokens of tracking URLs: base64url(payload) "."
 * base64url(HMAC-SHA256(key, payload)), the payload being the kind, the
 * account, the message ID, the recipient and the link, joined by NUL
 * bytes (none of them holds one). The HMAC is compared in constant time.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "track/track.h"

#define MAC_LEN 32

static void b64url(const unsigned char *p, size_t n, struct buf *out)
{
	char *tmp = xmalloc(base64_encoded_len(n) + 1);
	size_t len = base64_encode(p, n, tmp), i;

	for (i = 0; i < len; i++)
		if (tmp[i] != '=')
			buf_append(out, tmp[i] == '+' ? "-" : tmp[i] == '/' ? "_" : tmp + i, 1);
	free(tmp);
}

/* -1 if s[0..n) is not base64url. */
static long unb64url(const char *s, size_t n, unsigned char **out)
{
	char *tmp = xmalloc(n + 4);
	size_t i;
	long len;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+' || c == '/' || c == '=')
			break;
		tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (i % 4)
		tmp[i++] = '=';
	*out = xmalloc(n + 4);
	len = i >= n ? base64_decode(tmp, i, *out, n + 4) : -1;
	free(tmp);
	if (len < 0) {
		free(*out);
		*out = NULL;
	}
	return len;
}

char *track_token_make(const unsigned char key[TRACK_KEY_LEN], const struct track_ref *r)
{
	unsigned char mac[MAC_LEN];
	struct buf p, out;

	buf_init(&p);
	buf_init(&out);
	buf_append(&p, &r->kind, 1);
	buf_append(&p, "", 1);
	buf_puts(&p, r->account);
	buf_append(&p, "", 1);
	buf_puts(&p, r->message_id);
	buf_append(&p, "", 1);
	buf_puts(&p, r->recipient);
	buf_append(&p, "", 1);
	buf_puts(&p, r->url ? r->url : "");
	crypto_auth_hmacsha256(mac, (const unsigned char *)p.data, p.len, key);
	b64url((const unsigned char *)p.data, p.len, &out);
	buf_puts(&out, ".");
	b64url(mac, sizeof(mac), &out);
	buf_free(&p);
	return out.data;
}

/* Splits p[0..n) (NUL at p[n]) into its five fields; -1 when it has not five. */
static int fields(unsigned char *p, size_t n, char *f[5])
{
	size_t i, k = 1;

	f[0] = (char *)p;
	for (i = 0; i < n; i++) {
		if (p[i] != 0)
			continue;
		if (k == 5)
			return -1;
		f[k++] = (char *)p + i + 1;
	}
	return k == 5 ? 0 : -1;
}

int track_token_parse(const unsigned char key[TRACK_KEY_LEN], const char *token, char kind,
                      struct track_parsed *out)
{
	const char *dot = strchr(token, '.');
	unsigned char *p = NULL, *mac = NULL;
	long n, m;
	char *f[5];

	memset(out, 0, sizeof(*out));
	if (!dot || strlen(token) > 4 * TRACK_URL_MAX)
		return -1;
	n = unb64url(token, (size_t)(dot - token), &p);
	m = unb64url(dot + 1, strlen(dot + 1), &mac);
	if (n < 2 || m != MAC_LEN ||
	    crypto_auth_hmacsha256_verify(mac, p, (unsigned long long)n, key) != 0 ||
	    (p = xrealloc(p, (size_t)n + 1), p[n] = 0, fields(p, (size_t)n, f)) < 0 ||
	    f[0][0] != kind || f[0][1] != 0) {
		free(p);
		free(mac);
		return -1;
	}
	free(mac);
	out->kind = kind;
	out->account = f[1], out->message_id = f[2], out->recipient = f[3], out->url = f[4];
	return 0;
}

void track_parsed_free(struct track_parsed *p)
{
	free(p->account ? p->account - 2 : NULL);
	memset(p, 0, sizeof(*p));
}
