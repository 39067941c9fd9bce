/*
 * cli_check: `posthorn check-config`. main.c has loaded the file by then
 * (every syntax and value error was printed with file:line, exit 2); this
 * file adds the checks that need more than the file itself, each reported
 * as "FILE:LINE: message" (errors, exit 2) or "FILE:LINE: warning:
 * message" (exit 0):
 *
 * - [tls]: cert must hold a certificate and key its private key (error);
 *   a certificate past its end date is an error, one that ends within
 *   CERT_WARN_DAYS a warning.
 * - When run as root with [server] user set: the server rereads cert and
 *   key on SIGHUP after it dropped to that user, so that user (its uid and
 *   groups) must be able to read them (error).
 * - A listener that can never accept mail (error): no client may relay
 *   through it. See listener_dead() for the cases.
 * - A tls = none listener with AUTH that trusted clients on other machines
 *   can reach (warning): their passwords would cross the network in clear.
 * - [cluster] secret_key_file: read as the server reads it at start (a file
 *   missing or not 64 hex digits is an error); readable by other users is
 *   a warning.
 */
#include <errno.h>
#include <grp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "store/store_secret.h"
#include "tls/tls.h"
#include "util/util.h"

#define CERT_WARN_DAYS 14

struct report {
	const struct conf *c;
	int errors, warnings;
};

static void say_at(struct report *r, int warning, const char *sec, const char *name,
                   const char *key, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void say_at(struct report *r, int warning, const char *sec, const char *name,
                   const char *key, const char *fmt, ...)
{
	const char *file;
	int line = conf_line(r->c, sec, name, key, &file);
	va_list ap;

	if (line > 0)
		fprintf(stderr, "%s:%d: %s", file, line, warning ? "warning: " : "");
	else
		fprintf(stderr, "%s: %s", file, warning ? "warning: " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	*(warning ? &r->warnings : &r->errors) += 1;
}

/* ---- listeners ---- */

static void net_start(const struct conf_net *n, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)n->family;
	if (n->family == AF_INET)
		memcpy(&((struct sockaddr_in *)ss)->sin_addr, n->addr, 4);
	else
		memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr, n->addr, 16);
}

/* Two blocks meet when the one with the shorter prefix holds the other's start. */
static int nets_meet(const struct conf_net *a, const struct conf_net *b)
{
	const struct conf_net *outer = a->prefix <= b->prefix ? a : b;
	struct sockaddr_storage ss;

	if (a->family != b->family)
		return 0;
	net_start(outer == a ? b : a, &ss);
	return conf_net_contains(outer, (struct sockaddr *)&ss);
}

/* The blocks clients of l can come from: loopback only for a loopback
 * address, else anything of its family (of both for [::]). Returns how many. */
static size_t client_blocks(const struct conf_listener *l, struct conf_net out[2])
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->address.ss;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	const struct in_addr *a4 = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;

	memset(out, 0, 2 * sizeof(*out));
	out[0].family = sa->sa_family;
	if (sa->sa_family == AF_INET && (ntohl(a4->s_addr) >> 24) == 127) {
		out[0].addr[0] = 127;
		out[0].prefix = 8;
	} else if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(a6)) {
		out[0].addr[15] = 1;
		out[0].prefix = 128;
	} else if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(a6)) {
		out[1].family = AF_INET; /* IPv4 clients arrive as ::ffff:a.b.c.d */
		return 2;
	}
	return 1;
}

/* 1 if every address of n is a loopback one (127/8, ::1, ::ffff:127/104). */
static int net_is_loopback(const struct conf_net *n)
{
	static const unsigned char v6_loop[16] = {[15] = 1},
	                           mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (n->family == AF_INET)
		return n->prefix >= 8 && n->addr[0] == 127;
	if (n->prefix == 128 && !memcmp(n->addr, v6_loop, 16))
		return 1;
	return n->prefix >= 104 && !memcmp(n->addr, mapped, 12) && n->addr[12] == 127;
}

/* The first trusted network that can reach l (beyond loopback only, with
 * beyond_loopback), or NULL. */
static const struct conf_net *trusted_reaching(const struct conf *c, const struct conf_listener *l,
                                               int beyond_loopback)
{
	struct conf_net blocks[2];
	size_t n = client_blocks(l, blocks);

	for (size_t i = 0; i < c->n_trusted_networks; i++) {
		const struct conf_net *t = &c->trusted_networks[i];
		if (beyond_loopback && net_is_loopback(t))
			continue;
		for (size_t j = 0; j < n; j++)
			if (nets_meet(t, &blocks[j]))
				return t;
	}
	return NULL;
}

static int trusted_can_reach(const struct conf *c, const struct conf_listener *l)
{
	return trusted_reaching(c, l, 0) != NULL;
}

/*
 * Why no client can ever relay through l, or NULL. A client relays when it
 * is trusted (unless auth = required) or authenticated; AUTH is offered
 * unless auth = off, and on tls = none only to trusted clients (SPEC §3).
 * Mail for [bounces] domain is taken from anyone on any listener.
 */
static const char *listener_dead(const struct conf *c, const struct conf_listener *l)
{
	int trusted = trusted_can_reach(c, l);
	int by_trust = trusted && l->auth != CONF_AUTH_REQUIRED;
	int by_auth = l->auth != CONF_AUTH_OFF && (l->tls != CONF_TLS_NONE || trusted);

	if (by_trust || by_auth || c->bounces_domain)
		return NULL;
	if (l->auth == CONF_AUTH_OFF)
		return "auth = off and no trusted network can reach it, so nobody may relay";
	return "tls = none and no trusted network can reach it, so AUTH is never offered and "
	       "nobody may relay";
}

/*
 * A tls = none listener offers AUTH to trusted clients in clear (SPEC §3);
 * a warning when such a client can be on another machine, since its
 * password then crosses the network unencrypted.
 */
static void check_cleartext_auth(struct report *r, const struct conf_listener *l)
{
	const struct conf_net *t;
	char text[INET6_ADDRSTRLEN];

	if (l->tls != CONF_TLS_NONE || l->auth == CONF_AUTH_OFF ||
	    !(t = trusted_reaching(r->c, l, 1)))
		return;
	if (!inet_ntop(t->family, t->addr, text, sizeof(text)))
		snprintf(text, sizeof(text), "?");
	say_at(r, 1, "listener", l->name, "auth",
	       "[listener.%s] takes AUTH passwords in clear text from trusted_networks beyond "
	       "this machine (%s/%d reaches it, tls = none): use tls = starttls or implicit, "
	       "or auth = off",
	       l->name, text, t->prefix);
}

static void check_listeners(struct report *r)
{
	for (size_t i = 0; i < r->c->n_listeners; i++) {
		const struct conf_listener *l = &r->c->listeners[i];
		const char *why = listener_dead(r->c, l);
		if (why)
			say_at(
			    r, 0, "listener", l->name, "auth",
			    "[listener.%s] can never accept mail: %s (trusted_networks in [relay])",
			    l->name, why);
		else
			check_cleartext_auth(r, l);
	}
}

/* ---- TLS files ---- */

static void check_dates(struct report *r, X509 *x)
{
	time_t now = time(NULL), soon = now + CERT_WARN_DAYS * 86400;
	const ASN1_TIME *end = X509_get0_notAfter(x);
	struct tm tm;
	char when[32] = "?";

	if (ASN1_TIME_to_tm(end, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
	if (X509_cmp_time(end, &now) < 0)
		say_at(r, 0, "tls", NULL, "cert", "the certificate in '%s' expired on %s",
		       r->c->tls_cert, when);
	else if (X509_cmp_time(end, &soon) < 0)
		say_at(r, 1, "tls", NULL, "cert",
		       "the certificate in '%s' expires on %s, within %d days", r->c->tls_cert,
		       when, CERT_WARN_DAYS);
}

static void *read_pem(const char *path, int key)
{
	FILE *f = fopen(path, "r");
	void *v;

	if (!f)
		return NULL;
	v = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
	        : (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return v;
}

static void check_pair(struct report *r, X509 *x, EVP_PKEY *k)
{
	char *err = NULL;
	SSL_CTX *ctx;

	if (X509_check_private_key(x, k) != 1) {
		say_at(r, 0, "tls", NULL, "key",
		       "the key in '%s' does not belong to the certificate in '%s'", r->c->tls_key,
		       r->c->tls_cert);
		return;
	}
	/* What the server will do with them; catches the rest (the chain). */
	if (!(ctx = tls_server_ctx_new(r->c->tls_cert, r->c->tls_key, &err))) {
		say_at(r, 0, "tls", NULL, "cert", "cannot use '%s': %s", r->c->tls_cert, err);
		free(err);
		return;
	}
	SSL_CTX_free(ctx);
}

static void check_tls_files(struct report *r)
{
	const struct conf *c = r->c;
	X509 *x;
	EVP_PKEY *k;

	if (!c->tls_cert || !c->tls_key)
		return;
	x = read_pem(c->tls_cert, 0);
	k = read_pem(c->tls_key, 1);
	if (!x)
		say_at(r, 0, "tls", NULL, "cert", "'%s' holds no PEM certificate", c->tls_cert);
	if (!k)
		say_at(r, 0, "tls", NULL, "key", "'%s' holds no PEM private key", c->tls_key);
	if (x)
		check_dates(r, x);
	if (x && k)
		check_pair(r, x, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* ---- files the server user must read ---- */

/* 0 if pw can open path for reading, else its errno. A child becomes the
 * user (uid, gid, supplementary groups) and tries; the parent stays root. */
static int user_can_read(const struct passwd *pw, const char *path)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0) {
		FILE *f = NULL;
		if (initgroups(pw->pw_name, pw->pw_gid) == 0 && setgid(pw->pw_gid) == 0 &&
		    setuid(pw->pw_uid) == 0)
			f = fopen(path, "r");
		_exit(f ? 0 : errno ? (errno & 0xff) : EACCES);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return EIO;
	return WEXITSTATUS(status);
}

static void check_user_reads(struct report *r)
{
	const struct conf *c = r->c;
	const char *keys[] = {"cert", "key"}, *paths[] = {c->tls_cert, c->tls_key};
	struct passwd *pw;

	if (geteuid() != 0 || !c->user || !(pw = getpwnam(c->user)))
		return;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		int e = paths[i] ? user_can_read(pw, paths[i]) : 0;
		if (e)
			say_at(r, 0, "tls", NULL, keys[i],
			       "user %s ([server] user) cannot read '%s': %s; the server reads it "
			       "again on SIGHUP, as that user",
			       c->user, paths[i], strerror(e));
	}
}

/* ---- [cluster] secret_key_file ---- */

/* Read as the server will read it at start (an error there stops it), and
 * kept from other users: it opens every DKIM key and node key. */
static void check_secret_file(struct report *r)
{
	const char *path = r->c->cluster_secret_key_file;
	struct stat st;
	char *err = NULL;

	if (!path || !*path)
		return;
	if (store_secret_check(path, &err) < 0) {
		say_at(r, 0, "cluster", NULL, "secret_key_file", "%s", err);
		free(err);
		return;
	}
	if (stat(path, &st) == 0 && (st.st_mode & 077))
		say_at(r, 1, "cluster", NULL, "secret_key_file",
		       "'%s' can be read by other users (mode %04o): chmod 600 %s", path,
		       (unsigned)(st.st_mode & 07777), path);
}

static int check_config(int argc, char **argv, const struct conf *c)
{
	struct report r = {c, 0, 0};
	size_t n;

	if (cli_parse(argc, argv, NULL, 0, NULL, &n, 0) != CLI_OK)
		return CLI_USAGE;
	check_tls_files(&r);
	check_user_reads(&r);
	check_listeners(&r);
	check_secret_file(&r);
	if (r.errors)
		return CLI_USAGE;
	fprintf(stderr, "%s: ok%s\n", c->file ? c->file : "embedded default",
	        r.warnings ? " (with warnings)" : "");
	return CLI_OK;
}

const struct cli_cmd cli_check_cmd = {
    .path = "check-config",
    .about = "Checks the configuration: every error with FILE:LINE, exit 2 if any.\n"
             "Beyond the file: the TLS certificate and key (a pair, not expired; a warning\n"
             "within 14 days of the end), that [server] user can read them (when run as\n"
             "root), that each listener can accept mail from someone, and (a warning) that\n"
             "no AUTH password crosses the network in clear text (tls = none).",
    .run = check_config,
};
