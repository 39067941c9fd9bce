/*
 * store_secret: the cluster's secret key ([cluster] secret_key_file) and
 * the sealed form of what the database keeps under it (DKIM private keys).
 *
 * Promises:
 * - The file holds 64 hex digits (32 bytes; whitespace around them is
 *   ignored); anything else is an error naming the file, and the key is
 *   never logged.
 * - Sealed text is base64 of a random nonce followed by
 *   crypto_secretbox_easy (XSalsa20-Poly1305) of the plain text: a row
 *   changed or sealed under another key does not open.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "store/store_secret.h"
#include "util/util.h"

#define SECRET_FILE_MAX 256

/* The key of the file at path into key; 0, or -1 and *err. */
static int secret_read(const char *path, unsigned char key[STORE_SECRET_LEN], char **err)
{
	char text[SECRET_FILE_MAX + 1];
	size_t n, hex_len;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return store_fail(
		    err,
		    "cannot read %s: %s (make one with: openssl rand -hex 32 > %s; chmod 600 %s)",
		    path, strerror(errno), path, path);
	n = fread(text, 1, SECRET_FILE_MAX, f);
	fclose(f);
	text[n] = '\0';
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	if (n != 2 * STORE_SECRET_LEN ||
	    sodium_hex2bin(key, STORE_SECRET_LEN, text, n, NULL, &hex_len, NULL) != 0 ||
	    hex_len != STORE_SECRET_LEN) {
		sodium_memzero(text, sizeof text);
		return store_fail(err, "%s: expected 64 hex digits (openssl rand -hex 32)", path);
	}
	sodium_memzero(text, sizeof text);
	return 0;
}

int store_secret_load(struct store *st, const char *path, char **err)
{
	if (secret_read(path, st->secret, err) < 0)
		return -1;
	st->has_secret = 1;
	return 0;
}

int store_secret_check(const char *path, char **err)
{
	unsigned char key[STORE_SECRET_LEN];
	int rc = secret_read(path, key, err);

	sodium_memzero(key, sizeof key);
	return rc;
}

char *store_secret_seal(const struct store *st, const char *plain)
{
	size_t n = strlen(plain);
	size_t box_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
	unsigned char *box = xmalloc(box_len);
	size_t b64_len = sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(b64_len);

	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, n,
	                      box, st->secret);
	sodium_bin2base64(out, b64_len, box, box_len, sodium_base64_VARIANT_ORIGINAL);
	free(box);
	return out;
}

char *store_secret_open(const struct store *st, const char *sealed)
{
	size_t cap = strlen(sealed), len = 0;
	unsigned char *box = xmalloc(cap + 1);
	char *plain = NULL;

	if (sodium_base642bin(box, cap, sealed, cap, NULL, &len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    len >= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
		size_t n = len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;

		plain = xmalloc(n + 1);
		if (crypto_secretbox_open_easy(
		        (unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
		        len - crypto_secretbox_NONCEBYTES, box, st->secret) != 0) {
			free(plain);
			plain = NULL;
		} else {
			plain[n] = '\0';
		}
	}
	free(box);
	return plain;
}
