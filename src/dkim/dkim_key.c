/*
 * dkim_key: making, deriving, reading and writing private keys. The
 * promises (file layout, durability, wiping) are in dkim_key.h.
 */
#include "dkim/dkim_key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define KEY_DIR "dkim"

static int fail(char **err, char *msg)
{
	if (err)
		*err = msg;
	else
		free(msg);
	return -1;
}

/* The message of OpenSSL's last error, for *err. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown error";
}

void dkim_key_wipe(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* ---- PEM and derivations --------------------------------------------------- */

static char *bio_string(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	return n > 0 ? xstrndup(data, (size_t)n) : NULL;
}

int dkim_key_generate(enum dkim_algo a, char **pem, char **err)
{
	EVP_PKEY *pk = a == DKIM_ALGO_RSA2048 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
	                                      : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *b = BIO_new(BIO_s_mem());

	*pem = NULL;
	if (pk && b && PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) == 1)
		*pem = bio_string(b);
	BIO_free(b); /* BIO_s_mem frees and clears its buffer */
	EVP_PKEY_free(pk);
	if (*pem == NULL)
		return fail(err,
		            xasprintf("cannot make a %s key: %s", dkim_algo_name(a), ssl_reason()));
	return 0;
}

static char *b64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(base64_encoded_len(n) + 1);

	base64_encode(p, n, out);
	return out;
}

/* p= of the key: SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519). */
static char *public_b64(EVP_PKEY *pk, enum dkim_algo a)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof raw;
	int n;
	char *out;

	if (a == DKIM_ALGO_ED25519)
		return EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) == 1 ? b64(raw, rawlen) : NULL;
	if ((n = i2d_PUBKEY(pk, &der)) <= 0)
		return NULL;
	out = b64(der, (size_t)n);
	OPENSSL_free(der);
	return out;
}

static int algo_check(EVP_PKEY *pk, enum dkim_algo a, char **err)
{
	if (a == DKIM_ALGO_ED25519 && !EVP_PKEY_is_a(pk, "ED25519"))
		return fail(err, xstrdup("not an Ed25519 key"));
	if (a == DKIM_ALGO_RSA2048 && !EVP_PKEY_is_a(pk, "RSA"))
		return fail(err, xstrdup("not an RSA key"));
	if (a == DKIM_ALGO_RSA2048 && EVP_PKEY_get_bits(pk) < 1024)
		return fail(err, xasprintf("RSA key of %d bits (at least 1024 needed)",
		                           EVP_PKEY_get_bits(pk)));
	return 0;
}

int dkim_key_derive(const char *pem, enum dkim_algo a, char **pub, char **signer, char **err)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	int rc = 0;

	BIO_free(b);
	if (pk == NULL)
		return fail(err, xasprintf("not a PEM private key: %s", ssl_reason()));
	if (algo_check(pk, a, err) < 0)
		rc = -1;
	if (rc == 0 && pub && (*pub = public_b64(pk, a)) == NULL)
		rc = fail(err, xasprintf("cannot derive the public key: %s", ssl_reason()));
	if (rc == 0 && signer)
		*signer = xstrdup(pem);
	EVP_PKEY_free(pk);
	return rc;
}

/* ---- files ------------------------------------------------------------------- */

char *dkim_key_path(const char *data_dir, const char *stored)
{
	if (stored[0] == '/')
		return xstrdup(stored);
	return xasprintf("%s/%s", data_dir, stored);
}

int dkim_key_read(const char *path, char **pem, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	ssize_t n;

	if (fd < 0)
		return fail(err, xasprintf("cannot open %s: %s", path, strerror(errno)));
	buf = xmalloc(DKIM_KEY_FILE_MAX + 1);
	n = read(fd, buf, DKIM_KEY_FILE_MAX + 1);
	close(fd);
	if (n < 0 || n > DKIM_KEY_FILE_MAX) {
		int e = errno;
		OPENSSL_cleanse(buf, DKIM_KEY_FILE_MAX + 1);
		free(buf);
		return fail(err,
		            n < 0 ? xasprintf("cannot read %s: %s", path, strerror(e))
		                  : xasprintf("%s: larger than %d bytes", path, DKIM_KEY_FILE_MAX));
	}
	buf[n] = '\0';
	*pem = buf;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* tmp: written, synced, closed; or removed and -1 with errno. */
static int write_tmp(const char *tmp, const char *pem)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), e;

	if (fd < 0)
		return -1;
	if (write_all(fd, pem, strlen(pem)) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* DATA_DIR/dkim: created 0700 when missing. */
static char *key_dir(const char *data_dir, char **err)
{
	char *dir = xasprintf("%s/" KEY_DIR, data_dir);

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fail(err, xasprintf("cannot create %s: %s", dir, strerror(errno)));
		free(dir);
		return NULL;
	}
	return dir;
}

int dkim_key_write(const char *data_dir, const char *domain, const char *selector, const char *pem,
                   char **stored, char **err)
{
	char *dir = key_dir(data_dir, err), *name, *path, *tmp;
	int rc = -1;

	if (dir == NULL)
		return -1;
	name = xasprintf("%s._domainkey.%s.pem", selector, domain);
	path = xasprintf("%s/%s", dir, name);
	tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
	/* link() never replaces a file, as rename() would; the temporary name
	 * goes before the directory is synced, so no second copy survives. */
	if (write_tmp(tmp, pem) < 0) {
		fail(err, xasprintf("cannot write %s: %s", tmp, strerror(errno)));
	} else if (link(tmp, path) < 0) {
		fail(err, xasprintf("cannot create %s: %s", path, strerror(errno)));
		unlink(tmp);
	} else if (unlink(tmp), fsync_dir(dir) < 0) {
		fail(err, xasprintf("cannot sync %s: %s", dir, strerror(errno)));
		unlink(path);
	} else {
		rc = 0;
	}
	if (rc == 0)
		*stored = xasprintf(KEY_DIR "/%s", name);
	free(tmp);
	free(path);
	free(name);
	free(dir);
	return rc;
}

void dkim_key_unlink(const char *data_dir, const char *stored)
{
	char *path = dkim_key_path(data_dir, stored);

	unlink(path);
	free(path);
}
