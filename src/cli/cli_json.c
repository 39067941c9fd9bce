/*
 * cli_json: values that came from the network, as text lines and as JSON,
 * for the admin subcommands (see cli_int.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_int.h"

void cli_escape(struct buf *b, const char *s, int high)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || ch == '\\' || (high && ch > 0x7f))
			buf_printf(b, "\\x%02X", ch);
		else
			buf_append(b, s, 1);
	}
}

void cli_put_safe(FILE *f, const char *s)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "");
	cli_escape(&b, s ? s : "", 0);
	fputs(b.data, f);
	buf_free(&b);
}

json_t *cli_json_str(const char *s)
{
	json_t *v;
	struct buf b;

	if (!s)
		return json_null();
	if ((v = json_string(s)))
		return v;
	buf_init(&b);
	buf_puts(&b, "");
	cli_escape(&b, s, 1);
	v = json_string(b.data);
	buf_free(&b);
	return v;
}

const char *cli_time(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, cap, "%lld", (long long)t);
	return out;
}

int cli_rcpt_open(const struct rcpt *r)
{
	return rcpt_is_open(r);
}

static json_t *notify_json(unsigned notify)
{
	static const struct {
		unsigned bit;
		const char *name;
	} words[] = {{DSN_NOTIFY_NEVER, "NEVER"},
	             {DSN_NOTIFY_SUCCESS, "SUCCESS"},
	             {DSN_NOTIFY_FAILURE, "FAILURE"},
	             {DSN_NOTIFY_DELAY, "DELAY"}};
	json_t *a;

	if (!notify)
		return json_null();
	a = json_array();
	for (size_t i = 0; i < ARRAY_LEN(words); i++)
		if (notify & words[i].bit)
			json_array_append_new(a, json_string(words[i].name));
	return a;
}

json_t *cli_json_rcpt(const struct rcpt *r, int all)
{
	json_t *o = json_object();
	char t[32];

	json_object_set_new(o, "address", cli_json_str(r->addr));
	json_object_set_new(o, "state", json_string(rcpt_state_shown(r)));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "next_attempt",
	                    r->next_attempt && cli_rcpt_open(r)
	                        ? json_string(cli_time(r->next_attempt, t, sizeof(t)))
	                        : json_null());
	json_object_set_new(o, "last_reply", cli_json_str(r->last_reply));
	if (all) {
		json_object_set_new(o, "notify", notify_json(r->notify));
		json_object_set_new(o, "orcpt", cli_json_str(r->orcpt));
		json_object_set_new(o, "held_since",
		                    rcpt_is_held(r)
		                        ? json_string(cli_time(r->held_since, t, sizeof(t)))
		                        : json_null());
		json_object_set_new(o, "held_seconds", json_integer((json_int_t)r->held_secs));
	}
	return o;
}

json_t *cli_json_message(const struct envelope *e)
{
	json_t *o = json_object();
	char t[32];

	json_object_set_new(o, "id", json_string(e->id));
	json_object_set_new(o, "size", json_integer((json_int_t)e->size));
	json_object_set_new(o, "arrival", json_string(cli_time(e->created, t, sizeof(t))));
	json_object_set_new(o, "sender", cli_json_str(e->mail_from));
	json_object_set_new(o, "account", cli_json_str(e->account));
	return o;
}

int cli_json_print(json_t *v)
{
	int rc =
	    json_dumpf(v, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));

	json_decref(v);
	if (rc != 0 || putchar('\n') == EOF)
		return cli_say(CLI_RUNTIME, "cannot write JSON to stdout");
	return CLI_OK;
}
