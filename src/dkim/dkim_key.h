/*
 * dkim_key: private keys: making them (OpenSSL), their files under
 * DATA_DIR/dkim/, their public half for the DNS record, and the form
 * libopendkim is given. Private to src/dkim/ (the CLI goes through dkim.h).
 *
 * Files: DATA_DIR/dkim/SELECTOR._domainkey.DOMAIN.pem, PKCS#8 PEM, mode
 * 0600 in a 0700 directory. Written once, durably (temporary name, fsync,
 * link to the final name, which never replaces an existing file, fsync of
 * the directory), then never changed. The database keeps the path relative
 * to DATA_DIR, so a data directory can be moved; an absolute stored path
 * is used as it is.
 *
 * Every buffer that held a private key is wiped before it is freed
 * (dkim_key_wipe). Errors: -1 with a malloc'd *err.
 */
#ifndef POSTHORN_DKIM_KEY_H
#define POSTHORN_DKIM_KEY_H

#include <stddef.h>

#include "dkim/dkim_rotate.h"

/* Largest key file read (an RSA-4096 PEM is about 3.3 KB). */
#define DKIM_KEY_FILE_MAX (64 * 1024)

/* A new private key of algorithm a, as PEM (malloc'd). */
int dkim_key_generate(enum dkim_algo a, char **pem, char **err);

/*
 * Checks that pem is a private key of algorithm a (RSA of at least 1024
 * bits for rsa2048; Ed25519) and gives what is derived from it, each
 * optional (NULL: not wanted), malloc'd:
 *   *pub    the record's p= value: base64 of the SubjectPublicKeyInfo
 *           (RSA) or of the 32-byte public key (Ed25519, RFC 8463)
 *   *signer what dkim_sign() of libopendkim is given: the PEM, checked
 *           (libopendkim parses it again for each message; measured, PEM
 *           costs it less than the base64 DER it also takes, and Ed25519
 *           keys it reads only as PEM)
 */
int dkim_key_derive(const char *pem, enum dkim_algo a, char **pub, char **signer, char **err);

/* The absolute path of a stored key path (malloc'd). */
char *dkim_key_path(const char *data_dir, const char *stored);

/* Reads a key file (at most DKIM_KEY_FILE_MAX bytes) into *pem. */
int dkim_key_read(const char *path, char **pem, char **err);

/*
 * Writes pem as the key file of (domain, selector), creating DATA_DIR/dkim
 * if needed; *stored gets the path to keep in the database. An existing
 * file is an error and is left alone.
 */
int dkim_key_write(const char *data_dir, const char *domain, const char *selector, const char *pem,
                   char **stored, char **err);

/* Removes a key file written by dkim_key_write (its database row failed). */
void dkim_key_unlink(const char *data_dir, const char *stored);

/* Wipes and frees a string that held key material. NULL is fine. */
void dkim_key_wipe(char *s);

#endif
