/*
 * events_hook_util: what the webhook dispatcher decides without a socket:
 * the retry delay, the signature SPEC 6 pins, and which URLs a webhook may
 * use. Unit-tested in tests/unit/test_events_hook.c (the signature against
 * Python's hmac in tests/e2e/test_webhooks.py as well).
 *
 * URLs are parsed by libcurl's own URL parser (curl_url), the one that
 * will also make the request: a second parser could disagree with it on
 * what the host is, and the host is what the destination check is about.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "events/events.h"
#include "log/log.h"
#include "util/util.h"

#define DELAY_MAX_MS (3600 * 1000)

int64_t events_hook_delay_ms(uint64_t backoff, int64_t failures)
{
	int64_t ms = (int64_t)(backoff ? backoff : 1) * 1000;

	for (int64_t i = 1; i < failures && ms < DELAY_MAX_MS; i++)
		ms *= 2;
	return ms > DELAY_MAX_MS ? DELAY_MAX_MS : ms;
}

void events_hook_sign(const char *secret, int64_t timestamp, const char *body, size_t len,
                      char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t n = 0;
	char ts[32], digest[] = "SHA256";
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
	                       OSSL_PARAM_construct_end()};
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;

	snprintf(ts, sizeof(ts), "%lld.", (long long)timestamp);
	if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)body, len) ||
	    !EVP_MAC_final(ctx, mac, &n, sizeof(mac)) || n != 32)
		fatal("event=hmac_error");
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[64] = '\0';
}

/* The URL's scheme and host (without IPv6 brackets) as libcurl sees them. */
static int url_parts(const char *url, char *scheme, size_t scap, char *host, size_t hcap)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL;
	int ok;

	ok = u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && h && *h;
	if (ok) {
		size_t n = strlen(h);
		int bracket = h[0] == '[' && n > 2 && h[n - 1] == ']';
		snprintf(scheme, scap, "%s", s);
		snprintf(host, hcap, "%.*s", (int)(bracket ? n - 2 : n), h + bracket);
	}
	curl_free(s);
	curl_free(h);
	curl_url_cleanup(u);
	return ok ? 0 : -1;
}

int events_hook_url_ok(const char *url, const char **why)
{
	char scheme[16], host[WEBHOOK_URL_MAX];

	if (!url || strlen(url) > WEBHOOK_URL_MAX) {
		*why = "expected a URL of at most 2048 bytes";
		return 0;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			*why =
			    "spaces and control characters are not allowed (percent-encode them)";
			return 0;
		}
	}
	/* libcurl reads "https:///x" as the host x; a person meant something else. */
	if (!strstr(url, "://") || strstr(url, "://")[3] == '/' ||
	    url_parts(url, scheme, sizeof(scheme), host, sizeof(host)) < 0) {
		*why = "not a URL with a host";
		return 0;
	}
	if (ascii_casecmp(scheme, "http") != 0 && ascii_casecmp(scheme, "https") != 0) {
		*why = "expected an http:// or https:// URL";
		return 0;
	}
	return 1;
}

/* sa inside one of the nets (an IPv4-mapped IPv6 address counts as IPv4). */
int events_hook_addr_blocked(const struct sockaddr *sa, const struct conf_net *nets, size_t n)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in v4;

	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memset(&v4, 0, sizeof(v4));
		v4.sin_family = AF_INET;
		memcpy(&v4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
		sa = (const struct sockaddr *)&v4;
	}
	for (size_t i = 0; i < n; i++)
		if (conf_net_contains(&nets[i], sa))
			return 1;
	return 0;
}

int events_hook_url_blocked(const char *url, const struct conf_net *nets, size_t n)
{
	char scheme[16], host[WEBHOOK_URL_MAX];
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	if (n == 0 || url_parts(url, scheme, sizeof(scheme), host, sizeof(host)) < 0)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return 0; /* a name: checked on every connection, after DNS */
	return events_hook_addr_blocked((struct sockaddr *)&ss, nets, n);
}
