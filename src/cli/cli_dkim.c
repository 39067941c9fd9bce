/*
 * cli_dkim: `posthorn dkim ...`, the DKIM signing keys. The work is done
 * by dkim/ (keys, records, lookups, rotation rules) and store/; this file
 * parses arguments, runs the DNS lookups of `check` on an event loop of
 * its own, and prints.
 *
 *   dkim keygen DOMAIN [--selector S] [--algo rsa2048|ed25519]
 *        a new active key; its record, in zone-file form, to stdout
 *   dkim list [--json]
 *        DOMAIN SELECTOR ALGORITHM STATE CREATED KEEP_RECORD_UNTIL, tab-
 *        separated, one key a line (times UTC, RFC 3339; "-" when none);
 *        --json: one JSON object a line
 *   dkim check DOMAIN
 *        SELECTOR ALGORITHM STATE VERDICT per key (match, missing,
 *        different, error); a pending key whose record is seen becomes
 *        active (rotation); exit 1 when an active key's record is
 *        missing or different, or DNS fails
 *   dkim rotate DOMAIN [--algo A]
 *        a pending key per algorithm in use; its record to stdout
 *
 * Exit codes: 0 ok, 1 runtime error (unknown domain, DNS, store), 2 usage
 * error (bad option, domain, selector or algorithm); messages on stderr
 * as "posthorn: ...".
 */
#include "cli/cli.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "store/store.h"
#include "util/util.h"

/* The longest `check` may wait for DNS in all (c-ares has its own
 * per-query timeouts; this bounds the whole). */
#define CHECK_DEADLINE_S 30

enum { OPT_SELECTOR = 1, OPT_ALGO = 2, OPT_JSON = 4 };

struct dkim_args {
	const char *domain;
	const char *selector;
	int algo; /* -1: not given */
	int json;
};

struct verb {
	const char *name;
	int (*run)(const struct dkim_args *a, const struct conf *c);
	int needs_domain;
	unsigned opts;
};

#define say(code, ...) cli_say((code), __VA_ARGS__)

/* ---- arguments ---------------------------------------------------------------- */

/* The value of --name V or --name=V at argv[*i]; NULL if argv[*i] is not it. */
static const char *opt_value(const char *name, int argc, char **argv, int *i, int *missing)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (strcmp(argv[*i], name) != 0)
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int parse_opt(struct dkim_args *a, unsigned allowed, int argc, char **argv, int *i)
{
	const char *v;
	int missing = 0;

	if ((allowed & OPT_JSON) && strcmp(argv[*i], "--json") == 0) {
		a->json = 1;
	} else if ((allowed & OPT_SELECTOR) &&
	           (v = opt_value("--selector", argc, argv, i, &missing))) {
		a->selector = v;
	} else if ((allowed & OPT_ALGO) && (v = opt_value("--algo", argc, argv, i, &missing))) {
		if ((a->algo = dkim_algo_parse(v)) < 0)
			return say(CLI_USAGE, "unknown algorithm '%s' (rsa2048 or ed25519)", v);
	} else if (missing) {
		return say(CLI_USAGE, "%s needs a value", argv[*i]);
	} else {
		return say(CLI_USAGE, "unknown option '%s'", argv[*i]);
	}
	return 0;
}

static int parse_args(struct dkim_args *a, const struct verb *v, int argc, char **argv)
{
	int options = 1, n_pos = 0;

	memset(a, 0, sizeof *a);
	a->algo = -1;
	for (int i = 1; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0)
			options = 0;
		else if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
			if (parse_opt(a, v->opts, argc, argv, &i) != 0)
				return CLI_USAGE;
		} else if (n_pos++ == 0 && v->needs_domain)
			a->domain = argv[i];
		else
			return say(CLI_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (v->needs_domain && a->domain == NULL)
		return say(CLI_USAGE, "dkim %s needs a DOMAIN", v->name);
	if (a->domain && !store_domain_valid(a->domain))
		return say(CLI_USAGE, "invalid domain '%s'", a->domain);
	if (a->selector && !dkim_selector_valid(a->selector, a->domain))
		return say(CLI_USAGE,
		           "invalid selector '%s' (letters, digits and inner '-', in labels "
		           "joined by '.')",
		           a->selector);
	return 0;
}

/* ---- shared -------------------------------------------------------------------------- */

/* "2026-11-28T10:00:00Z", or "-" for 0. */
static const char *utc(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static struct store *open_store(const struct conf *c, int *rc)
{
	char *err = NULL;
	struct store *st =
	    store_open_url(c->data_dir, c->cluster_postgres, c->cluster_secret_key_file, &err);

	if (st == NULL) {
		*rc = say(CLI_RUNTIME, "%s", err);
		free(err);
	}
	return st;
}

/* A domain's keys; an unknown domain is an error (exit 1). */
static int load_domain(struct store *st, const struct conf *c, const char *domain,
                       struct dkim_key_info **keys, size_t *n)
{
	char *err = NULL;

	if (dkim_keys_load(st, c->data_dir, domain, keys, n, &err) < 0) {
		int rc = say(CLI_RUNTIME, "%s", err);
		free(err);
		return rc;
	}
	if (*n == 0)
		return say(CLI_RUNTIME,
		           "no DKIM keys for %s (make one with: posthorn dkim keygen %s)", domain,
		           domain);
	return 0;
}

static void print_record(const struct dkim_key_info *k)
{
	char *line = dkim_record_zone_line(k->selector, k->domain, k->record);

	puts(line);
	free(line);
}

static int flush_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return say(CLI_RUNTIME, "cannot write to stdout: %s", strerror(errno));
	return rc;
}

/* ---- keygen -------------------------------------------------------------------------- */

static void warn_active(const struct dkim_key_info *keys, size_t n, enum dkim_algo a)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].state == DKIM_STATE_ACTIVE && keys[i].algo == a)
			fprintf(stderr,
			        "posthorn: %s already signs with %s key '%s': both will sign "
			        "(`posthorn dkim rotate` replaces a key)\n",
			        keys[i].domain, dkim_algo_name(a), keys[i].selector);
}

static int cmd_keygen(const struct dkim_args *a, const struct conf *c)
{
	enum dkim_algo algo = a->algo < 0 ? DKIM_ALGO_RSA2048 : (enum dkim_algo)a->algo;
	struct dkim_key_info k, *old = NULL;
	size_t n_old = 0;
	char *err = NULL;
	int rc = CLI_OK;
	struct store *st = open_store(c, &rc);

	if (st == NULL)
		return rc;
	if (dkim_keys_load(st, c->data_dir, a->domain, &old, &n_old, &err) < 0 ||
	    dkim_keygen(st, c->data_dir, a->domain, a->selector, algo, DKIM_STATE_ACTIVE, &k,
	                &err) < 0) {
		rc = say(CLI_RUNTIME, "%s", err);
		free(err);
	} else {
		print_record(&k);
		fprintf(stderr,
		        "posthorn: %s key '%s' for %s made and active: it signs from now on; "
		        "publish the record above, then run `posthorn dkim check %s`\n",
		        dkim_algo_name(algo), k.selector, k.domain, k.domain);
		warn_active(old, n_old, algo);
		dkim_key_info_clear(&k);
	}
	dkim_key_info_free(old, n_old);
	store_close(st);
	return flush_stdout(rc);
}

/* ---- list ------------------------------------------------------------------------------ */

static int64_t keep_until(const struct dkim_key_info *k, const struct conf *c)
{
	struct dkim_key_state s = {k->selector, k->algo, k->state, k->retired};

	return dkim_publish_until(&s, c->dkim_rotation_grace);
}

static void json_time(json_t *o, const char *key, int64_t t)
{
	char b[32];

	json_object_set_new(o, key, t > 0 ? json_string(utc(t, b)) : json_null());
}

static void list_json(const struct dkim_key_info *k, const struct conf *c)
{
	json_t *o = json_object();

	json_object_set_new(o, "domain", json_string(k->domain));
	json_object_set_new(o, "selector", json_string(k->selector));
	json_object_set_new(o, "algorithm", json_string(dkim_algo_name(k->algo)));
	json_object_set_new(o, "state", json_string(dkim_state_name(k->state)));
	json_time(o, "created", k->created);
	json_time(o, "activated", k->activated);
	json_time(o, "retired", k->retired);
	json_time(o, "keep_record_until", keep_until(k, c));
	json_object_set_new(o, "record", k->record ? json_string(k->record) : json_null());
	if (k->error)
		json_object_set_new(o, "error", json_string(k->error));
	json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	putchar('\n');
	json_decref(o);
}

static int cmd_list(const struct dkim_args *a, const struct conf *c)
{
	struct dkim_key_info *keys = NULL;
	size_t n = 0;
	char *err = NULL, t1[32], t2[32];
	int rc = CLI_OK;
	struct store *st = open_store(c, &rc);

	if (st == NULL)
		return rc;
	if (dkim_keys_load(st, c->data_dir, NULL, &keys, &n, &err) < 0) {
		rc = say(CLI_RUNTIME, "%s", err);
		free(err);
	}
	for (size_t i = 0; i < n; i++) {
		const struct dkim_key_info *k = &keys[i];
		if (a->json)
			list_json(k, c);
		else
			printf("%s\t%s\t%s\t%s\t%s\t%s\n", k->domain, k->selector,
			       dkim_algo_name(k->algo), dkim_state_name(k->state),
			       utc(k->created, t1), utc(keep_until(k, c), t2));
	}
	dkim_key_info_free(keys, n);
	store_close(st);
	return flush_stdout(rc);
}

/* ---- check ------------------------------------------------------------------------------ */

struct lookups {
	struct event_base *base;
	struct dkim_lookup *res; /* a copy, n entries */
	size_t n;
	int done;
};

static void on_lookups(void *arg, const struct dkim_lookup *res)
{
	struct lookups *l = arg;

	memcpy(l->res, res, l->n * sizeof *res);
	l->done = 1;
	event_base_loopbreak(l->base);
}

static struct dns *open_dns(struct event_base *base, const struct conf *c, char **err)
{
	struct dns_opts o;
	struct buf servers;
	struct dns *d;

	buf_init(&servers);
	buf_puts(&servers, "");
	for (size_t i = 0; i < c->n_dns_servers; i++)
		buf_printf(&servers, "%s%s", i ? "," : "", c->dns_servers[i].text);
	memset(&o, 0, sizeof o);
	o.servers = servers.data;
	d = dns_new(base, &o, err);
	buf_free(&servers);
	return d;
}

/* Looks every key up; 0, or the exit code of a failure (said). */
static int look_up(const struct conf *c, const struct dkim_key_info *keys, size_t n,
                   struct dkim_lookup *res)
{
	struct lookups l = {event_base_new(), res, n, 0};
	char *err = NULL;
	struct dns *d = l.base ? open_dns(l.base, c, &err) : NULL;
	struct timeval deadline = {CHECK_DEADLINE_S, 0};
	int rc = CLI_OK;

	if (d == NULL) {
		rc = say(CLI_RUNTIME, "cannot start DNS: %s", err ? err : "no event base");
	} else {
		dkim_lookup_records(l.base, d, keys, n, NULL, on_lookups, &l);
		event_base_loopexit(l.base, &deadline);
		event_base_dispatch(l.base);
		if (!l.done)
			rc = say(CLI_RUNTIME, "DNS lookups timed out after %ds", CHECK_DEADLINE_S);
	}
	dns_free(d); /* runs on_lookups with cancelled lookups if still pending */
	if (l.base)
		event_base_free(l.base);
	free(err);
	return rc;
}

static const char *grace_text(uint64_t s, char out[32])
{
	if (s % 86400 == 0)
		snprintf(out, 32, "%llud", (unsigned long long)(s / 86400));
	else if (s % 3600 == 0)
		snprintf(out, 32, "%lluh", (unsigned long long)(s / 3600));
	else
		snprintf(out, 32, "%llus", (unsigned long long)s);
	return out;
}

static void say_activation(const struct dkim_key_info *k, const struct conf *c)
{
	char t[32], g[32];

	if (k->state == DKIM_STATE_ACTIVE)
		fprintf(stderr, "posthorn: %s key '%s' of %s is active now: it signs from now on\n",
		        dkim_algo_name(k->algo), k->selector, k->domain);
	else
		fprintf(stderr,
		        "posthorn: %s key '%s' of %s is retired: it no longer signs; keep its "
		        "record published until %s ([dkim] rotation_grace %s)\n",
		        dkim_algo_name(k->algo), k->selector, k->domain, utc(keep_until(k, c), t),
		        grace_text(c->dkim_rotation_grace, g));
}

static const char *verdict_text(const struct dkim_lookup *r)
{
	return r->status == DKIM_LOOKUP_ANSWERED ? dkim_verdict_name(r->verdict) : "error";
}

/* What the operator should know of one key beyond its line on stdout. */
static void say_key(const struct dkim_key_info *k, const struct dkim_lookup *r,
                    const struct conf *c, int64_t now)
{
	char t[32];
	int64_t until = keep_until(k, c);

	if (r->status != DKIM_LOOKUP_ANSWERED)
		fprintf(stderr, "posthorn: %s._domainkey.%s: cannot check: %s\n", k->selector,
		        k->domain, r->why);
	else if (r->verdict != DKIM_VERDICT_MATCH)
		fprintf(stderr, "posthorn: %s._domainkey.%s: %s%s%s%s\n", k->selector, k->domain,
		        dkim_verdict_name(r->verdict), r->why ? " (" : "", r->why ? r->why : "",
		        r->why ? ")" : "");
	if (k->state == DKIM_STATE_PENDING)
		fprintf(stderr,
		        "posthorn: key '%s' is pending: it becomes active once its record is "
		        "seen in DNS\n",
		        k->selector);
	else if (k->state == DKIM_STATE_RETIRED && now < until)
		fprintf(stderr,
		        "posthorn: key '%s' is retired: keep its record published until %s\n",
		        k->selector, utc(until, t));
	else if (k->state == DKIM_STATE_RETIRED)
		fprintf(stderr,
		        "posthorn: key '%s' is retired since %s: its record may be removed\n",
		        k->selector, utc(k->retired, t));
}

/* Prints every key's line; returns the exit code. */
static int report(const struct dkim_key_info *keys, size_t n, const struct dkim_lookup *res,
                  const struct conf *c, int64_t now)
{
	size_t failed = 0, bad = 0;

	for (size_t i = 0; i < n; i++) {
		const struct dkim_key_info *k = &keys[i];
		printf("%s\t%s\t%s\t%s\n", k->selector, dkim_algo_name(k->algo),
		       dkim_state_name(k->state), verdict_text(&res[i]));
		say_key(k, &res[i], c, now);
		failed += res[i].status != DKIM_LOOKUP_ANSWERED;
		bad += res[i].status == DKIM_LOOKUP_ANSWERED && k->state == DKIM_STATE_ACTIVE &&
		       res[i].verdict != DKIM_VERDICT_MATCH;
	}
	if (bad)
		fprintf(stderr,
		        "posthorn: %s: %zu active key(s) without their record in DNS: verifiers "
		        "will fail their signatures\n",
		        keys[0].domain, bad);
	if (failed)
		fprintf(stderr, "posthorn: %s: %zu record(s) could not be looked up\n",
		        keys[0].domain, failed);
	return bad || failed ? CLI_RUNTIME : CLI_OK;
}

/* Rotation: pending keys whose record matched become active. */
static int activate(struct store *st, struct dkim_key_info *keys, size_t n,
                    const struct dkim_lookup *res, const struct conf *c, int64_t now)
{
	struct dkim_activation *acts = NULL;
	size_t n_acts = 0;
	char *err = NULL;

	if (dkim_activate_visible(st, keys, n, res, now, &acts, &n_acts, &err) < 0) {
		int rc = say(CLI_RUNTIME, "%s", err);
		free(err);
		return rc;
	}
	for (size_t i = 0; i < n_acts; i++)
		say_activation(&keys[acts[i].key], c);
	free(acts);
	return CLI_OK;
}

static int cmd_check(const struct dkim_args *a, const struct conf *c)
{
	struct dkim_key_info *keys = NULL;
	struct dkim_lookup *res = NULL;
	int64_t now = clock_now_s();
	size_t n = 0;
	int rc = CLI_OK;
	struct store *st = open_store(c, &rc);

	if (st == NULL)
		return rc;
	rc = load_domain(st, c, a->domain, &keys, &n);
	if (rc == CLI_OK) {
		res = xcalloc(n, sizeof *res);
		rc = look_up(c, keys, n, res);
	}
	if (rc == CLI_OK)
		rc = activate(st, keys, n, res, c, now);
	if (rc == CLI_OK)
		rc = report(keys, n, res, c, now);
	free(res);
	dkim_key_info_free(keys, n);
	store_close(st);
	return flush_stdout(rc);
}

/* ---- rotate ------------------------------------------------------------------------------ */

static int rotate_blocked(const struct dkim_key_info *keys, const char *why, size_t blocker,
                          const char *domain)
{
	if (strcmp(why, "a rotation is pending") == 0)
		return say(CLI_RUNTIME,
		           "%s: a rotation is pending already (%s key '%s'): publish its record, "
		           "then run `posthorn dkim check %s`",
		           domain, dkim_algo_name(keys[blocker].algo), keys[blocker].selector,
		           domain);
	return say(CLI_RUNTIME, "%s: %s to rotate (`posthorn dkim keygen` makes one)", domain, why);
}

static void say_pending(const struct dkim_key_info *k, const struct dkim_key_info *keys, size_t n,
                        const struct conf *c)
{
	char g[32];

	fprintf(stderr,
	        "posthorn: %s key '%s' for %s made, pending: publish the record above; it starts "
	        "signing once `posthorn dkim check %s` (or the server) sees it in DNS\n",
	        dkim_algo_name(k->algo), k->selector, k->domain, k->domain);
	for (size_t i = 0; i < n; i++)
		if (keys[i].state == DKIM_STATE_ACTIVE && keys[i].algo == k->algo)
			fprintf(stderr,
			        "posthorn: key '%s' is retired then; keep its record published for "
			        "%s after that\n",
			        keys[i].selector, grace_text(c->dkim_rotation_grace, g));
}

static int rotate_algos(struct store *st, const struct conf *c, const struct dkim_key_info *keys,
                        size_t n, const enum dkim_algo *algos, int n_algos)
{
	for (int i = 0; i < n_algos; i++) {
		struct dkim_key_info k;
		char *err = NULL;

		if (dkim_keygen(st, c->data_dir, keys[0].domain, NULL, algos[i], DKIM_STATE_PENDING,
		                &k, &err) < 0) {
			int rc = say(CLI_RUNTIME, "%s", err);
			free(err);
			return rc;
		}
		print_record(&k);
		say_pending(&k, keys, n, c);
		dkim_key_info_clear(&k);
	}
	return CLI_OK;
}

static int cmd_rotate(const struct dkim_args *a, const struct conf *c)
{
	struct dkim_key_info *keys = NULL;
	struct dkim_key_state *ks;
	enum dkim_algo algos[DKIM_ALGO__COUNT];
	const char *why = NULL;
	size_t n = 0, blocker = 0;
	int rc = CLI_OK, n_algos;
	struct store *st = open_store(c, &rc);

	if (st == NULL)
		return rc;
	if ((rc = load_domain(st, c, a->domain, &keys, &n)) == CLI_OK) {
		ks = xcalloc(n, sizeof *ks);
		for (size_t i = 0; i < n; i++)
			ks[i] = (struct dkim_key_state){keys[i].selector, keys[i].algo,
			                                keys[i].state, keys[i].retired};
		n_algos = dkim_rotation_algos(ks, n, a->algo, algos, &why, &blocker);
		free(ks);
		rc = n_algos < 0 ? rotate_blocked(keys, why, blocker, a->domain)
		                 : rotate_algos(st, c, keys, n, algos, n_algos);
	}
	dkim_key_info_free(keys, n);
	store_close(st);
	return flush_stdout(rc);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static const struct verb verbs[] = {
    {"keygen", cmd_keygen, 1, OPT_SELECTOR | OPT_ALGO},
    {"list", cmd_list, 0, OPT_JSON},
    {"check", cmd_check, 1, 0},
    {"rotate", cmd_rotate, 1, OPT_ALGO},
};

/* Every leaf below: argv[0] names the verb. */
static int run_verb(int argc, char **argv, const struct conf *c)
{
	struct dkim_args a;

	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strcmp(argv[0], verbs[i].name) == 0)
			return parse_args(&a, &verbs[i], argc, argv) ? CLI_USAGE
			                                             : verbs[i].run(&a, c);
	return say(CLI_USAGE, "unknown dkim command '%s'", argv[0]);
}

static const struct cli_cmd keygen_cmd = {
    .path = "dkim keygen",
    .args = "DOMAIN [--selector S] [--algo rsa2048|ed25519]",
    .about = "Makes a signing key for DOMAIN, active at once, and prints the DNS TXT record\n"
             "to publish. Default selector: ph + YYYYMM (+ -N when taken); default algo: "
             "rsa2048.",
    .run = run_verb,
};

static const struct cli_cmd list_cmd = {
    .path = "dkim list",
    .args = "[--json]",
    .about = "Every key: DOMAIN SELECTOR ALGORITHM STATE CREATED KEEP_RECORD_UNTIL "
             "(tab-separated,\nUTC); --json: one object a line.",
    .run = run_verb,
};

static const struct cli_cmd check_cmd = {
    .path = "dkim check",
    .args = "DOMAIN",
    .about = "Looks up each key's record in DNS: SELECTOR ALGORITHM STATE "
             "match|missing|different|error.\n"
             "A pending key whose record is seen becomes active, and the key it replaces is "
             "retired.\nExit 1 when an active key's record is missing or different, or DNS "
             "fails.",
    .run = run_verb,
};

static const struct cli_cmd rotate_cmd = {
    .path = "dkim rotate",
    .args = "DOMAIN [--algo rsa2048|ed25519]",
    .about = "Makes a pending key (a new selector) for each algorithm DOMAIN signs with (or "
             "the one\ngiven) and prints its record; it replaces the active key once `dkim "
             "check` sees it.",
    .run = run_verb,
};

static const struct cli_cmd *const dkim_cmds[] = {&keygen_cmd, &list_cmd, &check_cmd, &rotate_cmd,
                                                  NULL};

const struct cli_cmd cli_dkim_cmd = {
    .path = "dkim",
    .about = "DKIM signing keys: make, list, check in DNS, rotate.",
    .subs = dkim_cmds,
    .flags = CLI_AS_USER,
};
