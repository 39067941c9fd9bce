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

/* A string slot of r as a JSON string (cleaned to UTF-8), or NULL. */
static json_t *slot_string(const struct evrec *r, int slot)
{
	char *clean;
	json_t *v;

	if (!r->s[slot])
		return NULL;
	clean = events_utf8_clean(r->s[slot], r->len[slot]);
	v = json_string(clean);
	free(clean);
	return v;
}

static void set_slot(json_t *d, const char *name, const struct evrec *r, int slot)
{
	json_t *v = slot_string(r, slot);

	if (v)
		json_object_set_new(d, name, v);
}

static json_t *detail_object(const struct evrec *r)
{
	json_t *d = json_object();
	char t[32];

	set_slot(d, "mx", r, RS_MX);
	set_slot(d, "reply", r, RS_REPLY);
	set_slot(d, "status", r, RS_STATUS);
	if (r->num > 0)
		json_object_set_new(d, "attempt", json_integer(r->num));
	set_slot(d, "reason", r, RS_REASON);
	set_slot(d, "url", r, RS_URL);
	set_slot(d, "user_agent", r, RS_AGENT);
	if (r->type == EVENT_OPENED || r->type == EVENT_CLICKED) {
		/* The first of possibly many: the store counts repeats into it. */
		events_time_format(r->time_ms, t, sizeof(t));
		json_object_set_new(d, "first", json_string(t));
		json_object_set_new(d, "last", json_string(t));
		json_object_set_new(d, "count", json_integer(1));
	}
	if (r->type == EVENT_OPENED)
		json_object_set_new(d, "machine", json_boolean(r->machine));
	return d;
}

char *events_detail(const struct evrec *r)
{
	json_t *d = detail_object(r);
	char *s = json_dumps(d, JSON_COMPACT);

	json_decref(d);
	/* Escaped control characters can make a capped field six times longer. */
	if (!s || strlen(s) > EVENT_DETAIL_MAX) {
		free(s);
		s = xstrdup("{\"truncated\":true}");
	}
	return s;
}

/* JSON text from the database, or `fallback` when it does not parse. */
static json_t *stored_json(const char *text, json_t *fallback)
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
	                 "tags", stored_json(e->tags, json_array()), "detail",
	                 stored_json(e->detail, json_object()));
}
