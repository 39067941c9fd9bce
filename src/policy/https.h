/*
 * https: small HTTPS requests on the server's event loop (libcurl's multi
 * interface driven by libevent), for MTA-STS policy fetches (GET) and
 * TLS-RPT reports (POST). Nothing here blocks the loop.
 *
 * Every request:
 *   - is https only, TLS 1.2 or newer, with the server's certificate
 *     verified against the system's CA store plus [tls] ca_file, and its
 *     name checked against the URL's host;
 *   - resolves the host with Posthorn's own resolver (dns_host: A/AAAA
 *     through [relay] dns_servers), and refuses addresses inside the
 *     blocked networks given (blocked_destinations), so a domain cannot
 *     point a policy fetch at the relay's own network;
 *   - follows no redirect, uses no proxy, reads at most max_bytes of
 *     answer (more fails the request), and ends within timeout_ms.
 * The callback runs once, from the event loop, never from inside
 * https_start(); a cancelled request gets none. The result is valid during
 * the callback only, which must not cancel its own request.
 */
#ifndef POSTHORN_POLICY_HTTPS_H
#define POSTHORN_POLICY_HTTPS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns;
struct conf_net;
struct https;

/* ca_file: extra PEM trust anchors (NULL: none); blocked[0..n) must
 * outlive the struct. NULL with *err when libcurl cannot start. */
struct https *https_new(struct event_base *base, struct dns *dns, const char *ca_file,
                        const struct conf_net *blocked, size_t n_blocked, char **err);
/* Drops every request in flight without calling back. Before dns_free(). */
void https_free(struct https *h);

struct https_req {
	const char *url;          /* https://host[:port]/path */
	const char *content_type; /* POST: the body's type; NULL: GET */
	const void *body;         /* POST body (copied) */
	size_t body_len;
	size_t max_bytes;    /* answer bytes accepted */
	unsigned timeout_ms; /* whole request, DNS included */
};

struct https_result {
	int ok;           /* the exchange completed (any status) */
	long status;      /* HTTP status when ok */
	const char *body; /* the answer (NUL-terminated), len bytes */
	size_t len;
	int cert_failed;   /* not ok because the certificate did not verify */
	const char *error; /* why not ok, in words */
};

typedef void (*https_cb)(void *arg, const struct https_result *r);
/* The request's ID (never 0). */
uint64_t https_start(struct https *h, const struct https_req *req, https_cb cb, void *arg);
/* Forget a request: its callback will not run. Unknown IDs are ignored. */
void https_cancel(struct https *h, uint64_t id);

#endif
