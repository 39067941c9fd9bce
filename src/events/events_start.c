/*
 * events_start: the daemon's events from its configuration: the writer
 * ([events] retention, stats_retention) and the webhook dispatcher
 * ([events] webhook_*, [tls] ca_file), the writer waking the dispatcher
 * after each batch. main.c calls this and events_stop(), nothing else.
 */
#include "conf/conf.h"
#include "events/events.h"

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
	};

	*hooks = events_hooks_new(st, &ho);
	eo.written_arg = *hooks;
	return events_new(st, &eo);
}

void events_stop(struct events *ev, struct events_hooks *hooks)
{
	events_free(ev); /* writes what is queued; may wake the dispatcher */
	events_hooks_free(hooks);
}
