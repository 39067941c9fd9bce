/*
 * cluster_url: `[cluster] redis` URLs, and the passwords of any URL kept
 * out of messages (masked, checked, scrubbed). PURE (libc + util), fuzzed
 * (fuzz/fuzz_cluster_url.c).
 *
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT
 * 1-65535 (default 6379); DB 0-15 (default 0). USER (an ACL user, may be
 * empty: Redis's default user) and PASSWORD (not empty) are
 * percent-decoded (%XX; a decoded NUL is refused); other than %XX they are
 * printable ASCII ('/', '?', '#' percent-encoded; the last '@' ends the
 * password). A user without a password,
 * a query or a fragment is refused, and so is rediss:// (TLS): the client
 * library Posthorn builds with has none.
 */
#ifndef POSTHORN_CLUSTER_URL_H
#define POSTHORN_CLUSTER_URL_H

#include <stddef.h>

#define CLUSTER_HOST_MAX     253
#define CLUSTER_USER_MAX     128
#define CLUSTER_PASSWORD_MAX 512
#define CLUSTER_URL_SHOW_MAX (CLUSTER_USER_MAX + CLUSTER_HOST_MAX + 32)

struct cluster_url {
	char host[CLUSTER_HOST_MAX + 1]; /* without the brackets */
	int port;
	int db;
	char user[CLUSTER_USER_MAX + 1];         /* decoded; "": the default user */
	char password[CLUSTER_PASSWORD_MAX + 1]; /* decoded; "": no AUTH */
};

/* 0 parsed; -1 with the problem in *why (a static string, never a part of
 * the URL). */
int cluster_url_parse(const char *s, struct cluster_url *out, const char **why);

/*
 * Any URL s (redis://, postgresql://, ...) as a message may quote it, with
 * every part that may be a password replaced by "****" (malloc'd):
 * - with an '@' (the last one), what is between the first ':' after
 *   "://" and it (USER:****@HOST), or all of it when it has no ':'
 *   (****@HOST: a password written alone);
 * - without one, everything after the first ':' of the authority that
 *   is not followed by 1 to 5 digits (HOST:PORT, several hosts separated
 *   by ','): USER:PASSWORD with no @HOST becomes USER:**** (all that
 *   follows may be the password);
 * - the value of each "password=" (any case, a query's; the name's letters
 *   as written or %XX), up to '&' or '#'.
 * s without "://" is copied as it is, unless bare: then it is taken as
 * what follows "://" (a URL key's value written without its scheme).
 */
char *cluster_url_mask(const char *s, int bare);
/* NULL, or why s (any scheme, or none) cannot be right (a static string,
 * never a part of s): a ':' in the authority followed by something that is
 * not a port, with no '@' (a password written without its @HOST) or an '@'
 * only after a '/', '?' or '#' (a password holding one of them, which the
 * client library would quote in pieces as a port or host); or two '@' in
 * the authority (an '@' in the password). */
const char *cluster_url_userinfo_why(const char *s);

/* NULL, or why URL s cannot be handed to the PostgreSQL client library,
 * which would quote the raw piece it fails to decode (a password) in its
 * error: a '%' anywhere not followed by two hex digits, a %00, or a '%'
 * in the name of a query parameter (the library decodes names:
 * ?passw%6Frd= would be a password). A static string, never a part of s. */
const char *cluster_url_escape_why(const char *s);
/* msg (malloc'd copy) with every password of URL url replaced by "****":
 * its user part's (USER:PASSWORD@, up to the first '@' before a '/' as
 * the client library reads it, and up to the last '@' as the mask does)
 * and the value of each query parameter whose name, percent-decoded, is
 * "password" (any case), each as written and as percent-decoded. */
char *cluster_url_scrub(const char *msg, const char *url);

/* The URL for logs and messages, without its password:
 * redis://[USER@]HOST:PORT/DB (USER as decoded). */
void cluster_url_show(const struct cluster_url *u, char out[CLUSTER_URL_SHOW_MAX]);

#endif
