/*
 * tls: server SSL_CTX set-up. Errors are reported with OpenSSL's own text
 * so an operator sees why a certificate was refused.
 */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

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

SSL_CTX *tls_client_ctx_new(const char *ca_file, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		*err = ssl_error("cannot create TLS client context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* The chain and name are checked on every handshake, which goes on
	 * whatever the outcome: the caller's policy reads the result
	 * (tls_peer_verified) and decides. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error(); /* no system store: only ca_file can verify */
	if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		*err = ssl_error("cannot load trust anchors from", ca_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		*err = ssl_error("cannot enable DANE on the TLS client context", "");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tls_client_dane(SSL *ssl, const char *host, const struct tls_tlsa *t, size_t n)
{
	int added = 0;

	/* SNI, the reference name for DANE-TA, and the TLSA base domain */
	if (SSL_dane_enable(ssl, host) <= 0 || SSL_set_tlsext_host_name(ssl, host) != 1) {
		ERR_clear_error();
		return -1;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* RFC 7672 3.1.1: DANE-EE(3) binds the key, not the names */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (size_t i = 0; i < n; i++) {
		int rc = SSL_dane_tlsa_add(ssl, t[i].usage, t[i].selector, t[i].mtype, t[i].data,
		                           t[i].len);
		if (rc < 0) {
			ERR_clear_error();
			return -1;
		}
		added += rc > 0;
	}
	return added;
}

enum tlsrpt_result tls_verify_result_type(const SSL *ssl)
{
	long rc = SSL_get_verify_result(ssl);

	if (!SSL_get0_peer_certificate(ssl))
		return TLSRPT_VALIDATION_FAILURE;
	switch (rc) {
	case X509_V_OK:
		return TLSRPT_OK;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return TLSRPT_CERT_HOST_MISMATCH;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TLSRPT_CERT_EXPIRED;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return TLSRPT_CERT_NOT_TRUSTED;
	default: /* a DANE mismatch among them */
		return TLSRPT_VALIDATION_FAILURE;
	}
}

int tls_client_expect(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	unsigned char a[16];
	int is_ip = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;

	/* An IP address is matched against the certificate's IP SANs (a name
	 * check never matches them) and is not sent as SNI (RFC 6066 3). */
	if (is_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : -1;
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)
		return -1;
	return 0;
}

int tls_peer_verified(const SSL *ssl, const char **why)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	long rc = SSL_get_verify_result(ssl);

	if (!peer) {
		*why = "no certificate presented";
		return 0;
	}
	if (rc != X509_V_OK) {
		*why = X509_verify_cert_error_string(rc);
		return 0;
	}
	*why = NULL;
	return 1;
}

SSL *tls_server_ssl_new(SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		log_err("event=tls_error what=SSL_new");
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
