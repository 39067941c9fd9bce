/*
 * track: PURE (libc, util, libsodium's HMAC) pieces of open and click
 * tracking (docs/api.md "Tracking").
 *
 * track_html() rewrites a message's HTML at accept time: the href of every
 * <a> that is an http(s) URL becomes a link of the caller's making (a
 * signed redirect), and an open pixel goes before the last </body> (or at
 * the end). Nothing else in the HTML changes, byte for byte.
 *
 * Tokens carry what they stand for (kind, account, message, recipient,
 * link) in base64url, followed by an HMAC-SHA256 of it under a key only
 * the server has: a token cannot be made or changed without the key, so
 * the redirect never goes anywhere a message did not link to, and events
 * cannot be forged.
 */
#ifndef POSTHORN_TRACK_H
#define POSTHORN_TRACK_H

#include <stddef.h>

#include "util/util.h"

#define TRACK_KEY_LEN 32
#define TRACK_URL_MAX 4096 /* longer links are left as they are */

/* Makes the tracked URL for the link url (decoded); malloc'd. */
typedef char *(*track_link_fn)(void *arg, const char *url);

/* Appends html[0..n) rewritten to out; link NULL: links untouched; pixel
 * NULL: no pixel. */
void track_html(const char *html, size_t n, track_link_fn link, void *arg, const char *pixel,
                struct buf *out);

/* The HTML character references of an attribute value decoded: &amp;
 * &lt; &gt; &quot; &apos; &#N; &#xH; (others stay as they are). malloc'd. */
char *track_entity_decode(const char *s, size_t n);

struct track_ref {
	char kind; /* 'o' open, 'c' click */
	const char *account, *message_id, *recipient;
	const char *url; /* clicks */
};

/* A token for ref (URL-safe, malloc'd). */
char *track_token_make(const unsigned char key[TRACK_KEY_LEN], const struct track_ref *ref);

/* What a token says, once its HMAC checks out. */
struct track_parsed {
	char kind;
	char *account, *message_id, *recipient, *url; /* in one malloc'd block: track_parsed_free */
};

/* 0 and *out, or -1: not a token, or not one made with key (forged or
 * changed), or not of kind. */
int track_token_parse(const unsigned char key[TRACK_KEY_LEN], const char *token, char kind,
                      struct track_parsed *out);
void track_parsed_free(struct track_parsed *p);

/* 1 if a pixel fetch with this User-Agent comes from a machine that
 * fetches images ahead of any reader (security scanners, link checkers,
 * prefetching proxies). */
int track_machine_ua(const char *ua);

#endif
