/*
 * events_json: the JSON of events, in one place. events_detail() builds an
 * event's detail on the writer thread (never on the loop);
 * events_row_json() gives an event the shape of GET /v1/events, which is
 * also the shape of webhook bodies, so the two can never differ.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "events/events.h"
#include "events/events_int.h"
#include "util/util.h"

/*
 * The detail is written here directly rather than through jansson: it is
 * built for every event on the writer thread, and a JSON string needs only
 * its quotes, backslashes and control characters escaped once the text is
 * valid UTF-8 (events_utf8_clean()). tests/unit/test_events.c parses what
 * it writes.
 */
static void put_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	buf_puts(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			buf_append(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, 6);
		} else {
			buf_append(b, s + i, 1);
		}
	}
	buf_puts(b, "\"");
}

/* ,"name":"value" for a present slot (cleaned to UTF-8 when it is not). */
static void put_slot(struct buf *b, const char *name, const struct evrec *r, int slot)
{
	char *clean = NULL;

	if (!r->s[slot])
		return;
	buf_printf(b, "%s\"%s\":", b->len > 1 ? "," : "", name);
	if (events_utf8_valid(r->s[slot], r->len[slot])) {
		put_string(b, r->s[slot], r->len[slot]);
		return;
	}
	clean = events_utf8_clean(r->s[slot], r->len[slot]);
	put_string(b, clean, strlen(clean));
	free(clean);
}

char *events_detail(const struct evrec *r)
{
	struct buf b;
	char t[32];

	buf_init(&b);
	buf_puts(&b, "{");
	put_slot(&b, "mx", r, RS_MX);
	put_slot(&b, "reply", r, RS_REPLY);
	put_slot(&b, "status", r, RS_STATUS);
	if (r->num > 0)
		buf_printf(&b, "%s\"attempt\":%u", b.len > 1 ? "," : "", (unsigned)r->num);
	put_slot(&b, "reason", r, RS_REASON);
	put_slot(&b, "url", r, RS_URL);
	put_slot(&b, "user_agent", r, RS_AGENT);
	if (r->type == EVENT_OPENED || r->type == EVENT_CLICKED) {
		/* The first of possibly many: the store counts repeats into it. */
		events_time_format(r->time_ms, t, sizeof(t));
		buf_printf(&b, "%s\"first\":\"%s\",\"last\":\"%s\",\"count\":1",
		           b.len > 1 ? "," : "", t, t);
	}
	if (r->type == EVENT_OPENED)
		buf_printf(&b, ",\"machine\":%s", r->machine ? "true" : "false");
	buf_puts(&b, "}");
	/* Escaped control characters can make a capped field six times longer. */
	if (b.len > EVENT_DETAIL_MAX) {
		buf_free(&b);
		return xstrdup("{\"truncated\":true}");
	}
	return b.data;
}

json_t *events_stored_json(const char *text, json_t *fallback)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;

	if (!v)
		return fallback;
	json_decref(fallback);
	return v;
}

static json_t *string_or_null(const char *s)
{
	json_t *v = s ? json_string(s) : NULL;

	return v ? v : json_null();
}

json_t *events_row_json(const struct store_event_row *e)
{
	char t[32];

	events_time_format(e->time_ms, t, sizeof(t));
	return json_pack("{s:I,s:s,s:s,s:s,s:o,s:o,s:o,s:o}", "id", (json_int_t)e->id, "type",
	                 event_type_name(e->type) ? event_type_name(e->type) : "unknown", "time", t,
	                 "account", e->account ? e->account : "", "message_id",
	                 string_or_null(e->message_id), "recipient", string_or_null(e->recipient),
	                 "tags", events_stored_json(e->tags, json_array()), "detail",
	                 events_stored_json(e->detail, json_object()));
}
