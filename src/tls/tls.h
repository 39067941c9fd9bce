/*
 * tls: OpenSSL contexts. Server side: TLS 1.2 and newer only, the
 * certificate chain and key from [tls]. A struct tls_server may be
 * reloaded (SIGHUP): sessions already running keep the SSL_CTX they
 * started with (OpenSSL reference counts it).
 */
#ifndef POSTHORN_TLS_H
#define POSTHORN_TLS_H

#include <openssl/ssl.h>

/* NULL with a malloc'd *err when the files cannot be used. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err);

/* Client context for outbound STARTTLS: TLS 1.2+, no certificate
 * verification (opportunistic and "required" both mean encryption here;
 * MTA-STS and DANE bring verification). NULL with *err on failure. */
SSL_CTX *tls_client_ctx_new(char **err);

/* A new SSL for one inbound connection, or NULL (logged). */
SSL *tls_server_ssl_new(SSL_CTX *ctx);

/* "TLSv1.3 cipher=TLS_AES_256_GCM_SHA384" style description for logs. */
const char *tls_version(const SSL *ssl);
const char *tls_cipher(const SSL *ssl);

#endif
