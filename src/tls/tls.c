/*
 * tls: server SSL_CTX set-up. Errors are reported with OpenSSL's own text
 * so an operator sees why a certificate was refused.
 */
#include "tls/tls.h"

#include <openssl/err.h>

#include "log/log.h"
#include "util/util.h"

static char *ssl_error(const char *what, const char *file)
{
	char text[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	return xasprintf("%s %s: %s", what, file, e ? text : "unknown error");
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		*err = ssl_error("cannot create TLS context for", cert_file);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Compression invites CRIME; renegotiation is a DoS lever. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*err = ssl_error("cannot load certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		*err = ssl_error("cannot load key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err = ssl_error("key does not match certificate", cert_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_new(char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		*err = ssl_error("cannot create TLS client context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

SSL *tls_server_ssl_new(SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		log_err("session=NOQUEUE event=tls_error what=SSL_new");
	return ssl;
}

const char *tls_version(const SSL *ssl)
{
	return ssl ? SSL_get_version(ssl) : "none";
}

const char *tls_cipher(const SSL *ssl)
{
	const char *c = ssl ? SSL_get_cipher_name(ssl) : NULL;
	return c ? c : "none";
}
