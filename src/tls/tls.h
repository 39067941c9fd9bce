/*
 * tls: OpenSSL contexts. Server side: TLS 1.2 and newer only, the
 * certificate chain and key from [tls]. A struct tls_server may be
 * reloaded (SIGHUP): sessions already running keep the SSL_CTX they
 * started with (OpenSSL reference counts it).
 */
#ifndef POSTHORN_TLS_H
#define POSTHORN_TLS_H

#include <openssl/ssl.h>

#include "tls/tls_policy.h"

/* NULL with a malloc'd *err when the files cannot be used. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err);

/*
 * Client context for outbound STARTTLS: TLS 1.2+, trusting the system's
 * CA store and the PEM anchors in ca_file (NULL: none). Every handshake
 * checks the peer's chain and name, but none fails for it: opportunistic
 * delivery goes on with any certificate (RFC 7435), and the policies that
 * need more (smarthost_tls = verify; later MTA-STS, DANE) ask
 * tls_peer_verified() once the handshake is done. DANE is enabled on
 * it (SSL_CTX_dane_enable), for tls_client_dane(). NULL with *err.
 */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char **err);

/* Before the handshake: the name (SNI, and the certificate's DNS names) or
 * IP address (IP SANs, no SNI) that host's certificate must match.
 * 0 ok, -1 when OpenSSL refuses it. */
int tls_client_expect(SSL *ssl, const char *host);

/*
 * Before the handshake, instead of tls_client_expect(), for an MX host
 * with usable TLSA records (DANE, RFC 7672): SNI and the reference name
 * are host, the certificate must match one of t[0..n) (DANE-TA(2) anchors
 * a chain whose leaf must match host; DANE-EE(3) matches the leaf alone,
 * whatever its names and dates, as RFC 7672 3.1.1 says). Returns the
 * number of records OpenSSL took (0: none usable), or -1 on error.
 */
int tls_client_dane(SSL *ssl, const char *host, const struct tls_tlsa *t, size_t n);

/* After the handshake: the TLS-RPT result type of the verification
 * (TLSRPT_OK when it verified). */
enum tlsrpt_result tls_verify_result_type(const SSL *ssl);

/* After the handshake: 1 when the peer's certificate chains to a trusted
 * anchor and matches the name given to tls_client_expect(); else 0 with
 * *why saying why in words ("certificate has expired", "hostname
 * mismatch", "self-signed certificate" ...). */
int tls_peer_verified(const SSL *ssl, const char **why);

/* A new SSL for one inbound connection, or NULL (logged). */
SSL *tls_server_ssl_new(SSL_CTX *ctx);

/* "TLSv1.3 cipher=TLS_AES_256_GCM_SHA384" style description for logs. */
const char *tls_version(const SSL *ssl);
const char *tls_cipher(const SSL *ssl);

#endif
