/*
 * cli_tls: `posthorn tls status DOMAIN`, what the relay knows of a
 * destination's TLS policies, from the database (running server or not):
 *
 *   mta-sts  the cached MTA-STS policy: id, mode, max_age, mx patterns,
 *            when it was fetched and when it expires (or "none")
 *   tlsa     per MX host, the TLSA records last seen and their state
 *            (usable, unusable, failed, none)
 *   tls-rpt  the latest TLS-RPT period's counts: per policy, successful
 *            and failed sessions, then one line per kind of failure
 *
 * One item a line, key=value, on stdout. Exit codes: 0 ok, 1 runtime
 * error, 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "log/log.h"
#include "policy/policy_parse.h"
#include "store/store.h"
#include "util/util.h"

#define say(code, ...) cli_say((code), __VA_ARGS__)

static const char *when(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static int show_sts(struct store *st, const char *domain)
{
	struct store_sts p;
	struct sts_policy pol;
	const char *why;
	char *err = NULL, t1[32], t2[32];
	int rc = store_sts_get(st, domain, &p, &err);

	if (rc < 0)
		return say(CLI_RUNTIME, "%s", err), free(err), CLI_RUNTIME;
	if (rc == 0) {
		printf("mta-sts domain=%s policy=none\n", domain);
		return CLI_OK;
	}
	printf("mta-sts domain=%s id=%s mode=%s max_age=%lld fetched=%s expires=%s mx=", domain,
	       p.id, p.mode, (long long)p.max_age, when(p.fetched_at, t1, sizeof(t1)),
	       when(p.expires_at, t2, sizeof(t2)));
	if (sts_policy_parse(p.policy, strlen(p.policy), &pol, &why) == 0) {
		for (size_t i = 0; i < pol.n_mx; i++)
			printf("%s%s", i ? "," : "", pol.mx[i]);
		sts_policy_clear(&pol);
	}
	printf("\n");
	store_sts_clear(&p);
	return CLI_OK;
}

static int show_tlsa(struct store *st, const char *domain)
{
	struct store_tlsa *v;
	size_t n;
	char *err = NULL, t[32];

	if (store_tlsa_list(st, domain, &v, &n, &err) < 0)
		return say(CLI_RUNTIME, "%s", err), free(err), CLI_RUNTIME;
	for (size_t i = 0; i < n; i++) {
		for (char *p = v[i].records; *p; p++)
			if (*p == '\n')
				*p = ';';
		printf("tlsa host=%s state=%s seen=%s records=%s\n", v[i].host, v[i].state,
		       when(v[i].seen_at, t, sizeof(t)), log_q(v[i].records));
	}
	if (n == 0)
		printf("tlsa domain=%s records=none\n", domain);
	store_tlsa_free(v, n);
	return CLI_OK;
}

/* "sts", "tlsa" or "no-policy-found": the policy-type inside the text. */
static const char *policy_type(const char *json)
{
	if (strstr(json, "\"policy-type\":\"sts\""))
		return "sts";
	if (strstr(json, "\"policy-type\":\"tlsa\""))
		return "tlsa";
	return "no-policy-found";
}

static void show_rows(const struct store_tlsrpt_row *r, size_t n)
{
	char t1[32], t2[32];

	for (size_t i = 0, j; i < n; i = j) {
		uint64_t ok = 0, bad = 0;
		for (j = i; j < n && strcmp(r[j].policy, r[i].policy) == 0; j++)
			*(r[j].result[0] ? &bad : &ok) += r[j].n;
		printf("tls-rpt start=%s end=%s policy=%s successful=%llu failed=%llu\n",
		       when(r[i].start, t1, sizeof(t1)), when(r[i].end, t2, sizeof(t2)),
		       policy_type(r[i].policy), (unsigned long long)ok, (unsigned long long)bad);
		for (size_t k = i; k < j; k++)
			if (r[k].result[0])
				printf("tls-rpt-failure policy=%s result=%s mx=%s receiving_ip=%s "
				       "sending_ip=%s count=%llu\n",
				       policy_type(r[k].policy), r[k].result,
				       r[k].mx_host[0] ? r[k].mx_host : "-",
				       r[k].receiving_ip[0] ? r[k].receiving_ip : "-",
				       r[k].sending_ip[0] ? r[k].sending_ip : "-",
				       (unsigned long long)r[k].n);
	}
}

static int show_rpt(struct store *st, const char *domain)
{
	struct store_tlsrpt_row *rows;
	size_t n;
	char *err = NULL;

	if (store_tlsrpt_rows(st, domain, 0, &rows, &n, &err) < 0)
		return say(CLI_RUNTIME, "%s", err), free(err), CLI_RUNTIME;
	if (n == 0)
		printf("tls-rpt domain=%s counts=none\n", domain);
	show_rows(rows, n);
	store_tlsrpt_free(rows, n);
	return CLI_OK;
}

static int status(const struct conf *c, const char *domain)
{
	char *err = NULL, *d = xstrdup(domain);
	struct store *st =
	    store_open_url(c->data_dir, c->cluster_postgres, c->cluster_secret_key_file, &err);
	int rc;

	if (!st) {
		rc = say(CLI_RUNTIME, "%s", err);
		free(err);
		free(d);
		return rc;
	}
	ascii_lower(d);
	rc = show_sts(st, d);
	if (rc == CLI_OK)
		rc = show_tlsa(st, d);
	if (rc == CLI_OK)
		rc = show_rpt(st, d);
	store_close(st);
	free(d);
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = say(CLI_RUNTIME, "cannot write to stdout");
	return rc;
}

static int tls_status(int argc, char **argv, const struct conf *c)
{
	char *pos[1];
	size_t n;

	if (cli_parse(argc, argv, NULL, 0, pos, &n, 1) != CLI_OK)
		return CLI_USAGE;
	if (n != 1)
		return say(CLI_USAGE, "tls status takes a DOMAIN");
	if (!store_domain_valid(pos[0]))
		return say(CLI_USAGE, "invalid domain '%s'", pos[0]);
	return status(c, pos[0]);
}

static const struct cli_cmd status_cmd = {
    .path = "tls status",
    .args = "DOMAIN",
    .about = "The cached MTA-STS policy, the TLSA records seen and the TLS-RPT counts of\n"
             "DOMAIN.",
    .run = tls_status,
};

static const struct cli_cmd *const tls_cmds[] = {&status_cmd, NULL};

const struct cli_cmd cli_tls_cmd = {
    .path = "tls",
    .about = "Outbound TLS policy state per destination domain.",
    .subs = tls_cmds,
    .flags = CLI_AS_USER,
};
