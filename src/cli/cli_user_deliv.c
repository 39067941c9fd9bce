/*
 * cli_user_deliv: the deliverability verbs and options of `posthorn user`
 * (docs/deliverability.md):
 *
 *   user add NAME ... [--quota-hour N] [--quota-day N]
 *   user set NAME [--quota-hour N|default] [--quota-day N|default]
 *                                   (cli_user.c takes the options,
 *                                   cli_quota_opt/parse() read the values,
 *                                   cli_quota_apply() stores them)
 *   user resume NAME                lifts a reputation-guard pause
 *
 * N is a whole number of messages (recipients) per clock hour or UTC day,
 * 0 for unlimited; "default" goes back to [quota] hour / day. A running
 * server sees the change within a second (it reads the settings back when
 * the database changes). Nothing is printed on stdout; what was done goes
 * to stderr. Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "deliv/deliv_policy.h"
#include "store/store.h"
#include "util/util.h"

static int quota_value(const char *opt, const char *v, int64_t *out)
{
	uint64_t n;

	if (strcmp(v, "default") == 0) {
		*out = STORE_QUOTA_DEFAULT;
		return CLI_OK;
	}
	if (parse_u64(v, &n) < 0 || n > (uint64_t)INT64_MAX)
		return cli_say(CLI_USAGE, "%s takes a whole number or 'default', not '%s'", opt, v);
	*out = (int64_t)n;
	return CLI_OK;
}

int cli_quota_parse(const char *hour, const char *day, struct cli_quota *q)
{
	static const char *const names[2] = {"--quota-hour", "--quota-day"};
	const char *v[2] = {hour, day};

	for (int p = 0; p < 2; p++) {
		if (!v[p])
			continue;
		if (quota_value(names[p], v[p], &q->value[p]) != CLI_OK)
			return CLI_USAGE;
		q->set[p] = 1;
	}
	return CLI_OK;
}

int cli_quota_opt(int argc, char **argv, int *i, struct cli_quota *q)
{
	static const char *const names[2] = {"--quota-hour", "--quota-day"};

	for (int p = 0; p < 2; p++) {
		size_t n = strlen(names[p]);
		const char *v[2] = {NULL, NULL};

		if (strncmp(argv[*i], names[p], n) != 0 || (argv[*i][n] && argv[*i][n] != '='))
			continue;
		if (argv[*i][n] == '=')
			v[p] = argv[*i] + n + 1;
		else if (*i + 1 < argc)
			v[p] = argv[++*i];
		else
			return cli_say(CLI_USAGE, "%s needs a value", names[p]), -1;
		return cli_quota_parse(v[0], v[1], q) == CLI_OK ? 1 : -1;
	}
	return 0;
}

/* "100 per hour", "unlimited per day", "5 per hour ([quota] default)" */
static void describe(char *out, size_t cap, const struct conf *c, int p, int64_t v)
{
	uint64_t dflt = p ? c->quota_day : c->quota_hour;
	uint64_t eff = v == STORE_QUOTA_DEFAULT ? dflt : (uint64_t)v;
	char n[32];

	snprintf(n, sizeof(n), "%llu", (unsigned long long)eff);
	snprintf(out, cap, "%s per %s%s", eff ? n : "unlimited", p ? "day" : "hour",
	         v == STORE_QUOTA_DEFAULT ? " ([quota] default)" : "");
}

int cli_quota_apply(struct store *st, const struct conf *c, const char *name,
                    const struct cli_quota *q)
{
	char *err = NULL, h[64], d[64];
	struct store_account_deliv a;

	if (!q->set[0] && !q->set[1])
		return CLI_OK;
	if (store_user_set_quota(st, name, q->set, q->value, &err) != 0 ||
	    store_account_deliv_get(st, name, &a, &err) != 1)
		return cli_fail(err ? err : xstrdup("cannot read the account back"));
	describe(h, sizeof(h), c, 0, a.quota[0]);
	describe(d, sizeof(d), c, 1, a.quota[1]);
	fprintf(stderr, "posthorn: account '%s': quota %s, %s\n", name, h, d);
	return CLI_OK;
}

/* user resume NAME */
static int user_resume(int argc, char **argv, const struct conf *c)
{
	struct store_account_deliv was;
	struct store *st;
	char *err = NULL, since[32], *name[1];
	size_t n;
	int rc = cli_parse(argc, argv, NULL, 0, name, &n, 1);

	if (rc == CLI_OK && n != 1)
		rc = cli_say(CLI_USAGE, "user resume takes one account name");
	if (rc != CLI_OK)
		return rc;
	if (!(st = cli_open_store(c)))
		return CLI_RUNTIME;
	rc = store_user_resume(st, name[0], clock_now_s(), &was, &err);
	store_close(st);
	if (rc < 0)
		return cli_fail(err);
	if (rc == 0) {
		fprintf(stderr, "posthorn: account '%s' is not paused\n", name[0]);
		return CLI_OK;
	}
	deliv_time_text(since, sizeof(since), was.paused_at);
	fprintf(stderr, "posthorn: account '%s' resumed (paused since %s: %s)\n", name[0], since,
	        was.paused_reason);
	return CLI_OK;
}

const struct cli_cmd cli_user_resume_cmd = {
    .path = "user resume",
    .args = "NAME",
    .about = "Lifts the reputation guard's pause of account NAME; the mail it kept back\n"
             "is due again.",
    .run = user_resume};
