/*
 * cluster_status: the nodes table as JSON, one form for `posthorn cluster
 * status --json` and GET /v1/cluster/nodes (docs/cli.md, docs/api.md).
 *
 * {"nodes": [{"id", "hostname", "version", "state", "messages",
 * "recipients", "started", "heartbeat", "heartbeat_age", "postgres_ms",
 * "redis_ms", "tag", "tag_lost", "tag_holder", "id_clash", "clash_host"}...],
 * "stale": N, "tag_lost": N, "id_clash": N}: times as RFC 3339 UTC, ages in seconds, round trips in
 * milliseconds (null: no such link, or not measured); tag_holder is the
 * node ID holding the node's queue-ID tag (null: no claim), tag_lost true
 * when the node is up and another node holds it; id_clash true when the
 * node is up and two live processes write its row (clash_host: the host
 * of the other, as the last writer saw it; null when not).
 * Text that is not UTF-8 (a hostname) has each byte above 0x7F as "?".
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "store/store.h"
#include "store/store_nodes.h"
#include "util/util.h"

static json_t *text(const char *s)
{
	json_t *v = json_string(s);
	char *c;

	if (v)
		return v;
	c = xstrdup(s);
	for (char *p = c; *p; p++)
		if ((unsigned char)*p > 0x7F)
			*p = '?';
	v = json_string(c);
	free(c);
	return v;
}

static json_t *utc(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[32];

	gmtime_r(&tt, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

static json_t *ms(int64_t us)
{
	return us < 0 ? json_null() : json_real((double)us / 1000.0);
}

json_t *cluster_node_json(const struct store_node *n, int64_t now)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", text(n->id));
	json_object_set_new(o, "hostname", text(n->hostname));
	json_object_set_new(o, "version", text(n->version));
	json_object_set_new(o, "state", json_string(store_node_state(n, now)));
	json_object_set_new(o, "messages", json_integer((json_int_t)n->messages));
	json_object_set_new(o, "recipients", json_integer((json_int_t)n->recipients));
	json_object_set_new(o, "started", utc(n->started_at));
	json_object_set_new(o, "heartbeat", utc(n->beat_at));
	json_object_set_new(o, "heartbeat_age", json_integer((json_int_t)(now - n->beat_at)));
	json_object_set_new(o, "postgres_ms", ms(n->pg_us));
	json_object_set_new(o, "redis_ms", ms(n->redis_us));
	json_object_set_new(o, "tag", json_stringn(n->id, strnlen(n->id, 3)));
	json_object_set_new(o, "tag_lost", json_boolean(store_node_tag_lost(n, now)));
	json_object_set_new(o, "tag_holder", n->tag_holder ? text(n->tag_holder) : json_null());
	json_object_set_new(o, "id_clash", json_boolean(store_node_id_clash(n, now)));
	json_object_set_new(o, "clash_host",
	                    store_node_id_clash(n, now) ? text(n->clash_host) : json_null());
	return o;
}

json_t *cluster_nodes_json(const struct store_node *v, size_t n, int64_t now, size_t *stale,
                           size_t *lost)
{
	json_t *arr = json_array();
	json_int_t clash = 0;

	*stale = *lost = 0;
	for (size_t i = 0; i < n; i++) {
		*stale += strcmp(store_node_state(&v[i], now), "stale") == 0;
		*lost += (size_t)store_node_tag_lost(&v[i], now);
		clash += store_node_id_clash(&v[i], now);
		json_array_append_new(arr, cluster_node_json(&v[i], now));
	}
	return json_pack("{s:o, s:I, s:I, s:I}", "nodes", arr, "stale", (json_int_t)*stale,
	                 "tag_lost", (json_int_t)*lost, "id_clash", clash);
}
