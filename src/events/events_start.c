/*
 * events_start: the daemon's events from its configuration: the writer
 * ([events] retention, stats_retention) and the webhook dispatcher
 * ([events] webhook_*, [tls] ca_file), the writer waking the dispatcher
 * after each batch. main.c calls this and events_stop(), nothing else.
 *
 * On PostgreSQL the writer has a connection of its own. Its batch
 * transaction waits for the other nodes' event writers (the events'
 * advisory lock, docs/events.md "More than one node"); on the node's one
 * shared connection that wait held up every other store call of the node
 * behind the store's lock, such as the suppression check of each RCPT.
 * SQLite keeps the one connection: a second would wait for the same file
 * lock. If the second connection cannot be opened, the writer shares.
 */
#include <stdlib.h>

#include "conf/conf.h"
#include "events/events.h"
#include "log/log.h"

static struct store *writer_store(struct store *st, const struct conf *c, int *own)
{
	struct store *w;
	char *err = NULL;

	*own = 0;
	if (!c->cluster_postgres || !*c->cluster_postgres)
		return st;
	if (!(w = store_open_url(c->data_dir, c->cluster_postgres, NULL, &err))) {
		log_warn("event=events_connection_error error=%s shared=1", log_q(err));
		free(err);
		return st;
	}
	*own = 1;
	return w;
}

struct events *events_start(struct store *st, const struct conf *c, const char *node_id,
                            struct events_hooks **hooks)
{
	struct events_hooks_opts ho = {
	    .timeout = c->webhook_timeout,
	    .backoff = c->webhook_backoff,
	    .retry_for = c->webhook_retry_for,
	    .blocked = c->webhook_blocked,
	    .n_blocked = c->n_webhook_blocked,
	    .ca_file = c->tls_ca_file,
	    .node_id = node_id,
	};
	struct events_opts eo = {
	    .retention = c->events_retention,
	    .stats_retention = c->events_stats_retention,
	    .written = events_hooks_wake,
	    .node_id = node_id,
	};

	*hooks = events_hooks_new(st, &ho);
	eo.written_arg = *hooks;
	return events_new(writer_store(st, c, &eo.own_store), &eo);
}

void events_stop(struct events *ev, struct events_hooks *hooks)
{
	events_free(ev); /* writes what is queued; may wake the dispatcher */
	events_hooks_free(hooks);
}
