/*
 * http_routes: the route table, the one list of what the API answers.
 * Order matters only between patterns that match the same path (the first
 * wins). Every row must be in docs/openapi.json, and every path there must
 * be a row: tests/unit/test_http_routes.c checks both ways.
 *
 * To add a route: a row here, its handler (see http_api.h; http_keys.c
 * shows the pattern for handlers that need the database), its path in
 * docs/openapi.json, and its section in docs/api.md.
 */
#include "api/api.h"
#include "http/http_api.h"
#include "http/http_handlers.h"
#include "util/util.h"

const struct http_route http_routes[] = {
    /* the dashboard (http_static.c): public files; its data comes from the API */
    {"GET", "/", HTTP_AUTH_NONE, http_h_dashboard},
    {"GET", "/assets/{file}", HTTP_AUTH_NONE, http_h_asset},
    {"GET", "/healthz", HTTP_AUTH_NONE, http_h_healthz},
    /* tracking (src/api/api_track.c): signed tokens, no key */
    {"GET", "/t/o/{token}", HTTP_AUTH_NONE, api_h_track_open},
    {"GET", "/t/c/{token}", HTTP_AUTH_NONE, api_h_track_click},
    {"GET", "/metrics", HTTP_AUTH_NONE, http_h_metrics},
    {"GET", "/v1/openapi.json", HTTP_AUTH_NONE, http_h_openapi},
    {"GET", "/v1/account", HTTP_AUTH_ACCOUNT, http_h_account},
    {"GET", "/v1/apikeys", HTTP_AUTH_ACCOUNT, http_h_apikeys_list},
    {"PATCH", "/v1/apikeys/{id}", HTTP_AUTH_ACCOUNT, http_h_apikey_patch},
    {"DELETE", "/v1/apikeys/{id}", HTTP_AUTH_ACCOUNT, http_h_apikey_revoke},
    /* templates (src/api/api_templates.c) */
    {"GET", "/v1/templates", HTTP_AUTH_ACCOUNT, api_h_templates_list},
    {"POST", "/v1/templates", HTTP_AUTH_ACCOUNT, api_h_template_create},
    {"GET", "/v1/templates/{name}", HTTP_AUTH_ACCOUNT, api_h_template_get},
    {"PUT", "/v1/templates/{name}", HTTP_AUTH_ACCOUNT, api_h_template_put},
    {"DELETE", "/v1/templates/{name}", HTTP_AUTH_ACCOUNT, api_h_template_delete},
    {"POST", "/v1/templates/{name}/preview", HTTP_AUTH_ACCOUNT, api_h_template_preview},
    /* suppressions (src/api/api_suppressions.c) */
    {"GET", "/v1/suppressions", HTTP_AUTH_ACCOUNT, api_h_suppressions_list},
    {"POST", "/v1/suppressions", HTTP_AUTH_ACCOUNT, api_h_suppression_add},
    {"GET", "/v1/suppressions/{address}", HTTP_AUTH_ACCOUNT, api_h_suppression_get},
    {"DELETE", "/v1/suppressions/{address}", HTTP_AUTH_ACCOUNT, api_h_suppression_delete},
    /* events, messages, stats, webhooks (src/api/, docs/events.md) */
    {"GET", "/v1/events", HTTP_AUTH_ACCOUNT, api_h_events},
    {"GET", "/v1/messages", HTTP_AUTH_ACCOUNT, api_h_messages},
    {"POST", "/v1/messages", HTTP_AUTH_ACCOUNT, api_h_send}, /* api_send.c */
    {"GET", "/v1/messages/{id}", HTTP_AUTH_ACCOUNT, api_h_message},
    {"GET", "/v1/stats", HTTP_AUTH_ACCOUNT, api_h_stats},
    {"GET", "/v1/webhooks", HTTP_AUTH_ACCOUNT, api_h_webhooks},
    {"POST", "/v1/webhooks", HTTP_AUTH_ACCOUNT, api_h_webhook_create},
    {"GET", "/v1/webhooks/{id}", HTTP_AUTH_ACCOUNT, api_h_webhook},
    {"PATCH", "/v1/webhooks/{id}", HTTP_AUTH_ACCOUNT, api_h_webhook_update},
    {"DELETE", "/v1/webhooks/{id}", HTTP_AUTH_ACCOUNT, api_h_webhook_delete},
    /* DKIM keys and records (src/api/api_dkim.c) */
    {"GET", "/v1/dkim", HTTP_AUTH_ACCOUNT, api_h_dkim},
    /* one-click unsubscribe links, no key: the token is signed (src/api/api_unsub.c) */
    {"GET", "/u/{token}", HTTP_AUTH_NONE, api_h_unsub_page},
    {"POST", "/u/{token}", HTTP_AUTH_NONE, api_h_unsub_post},
    /* the queue, for admin keys (src/api/api_queue.c) */
    {"GET", "/v1/queue", HTTP_AUTH_ADMIN, api_h_queue_list},
    {"POST", "/v1/queue/{id}/retry", HTTP_AUTH_ADMIN, api_h_queue_retry},
    {"POST", "/v1/queue/{id}/hold", HTTP_AUTH_ADMIN, api_h_queue_hold},
    {"POST", "/v1/queue/{id}/release", HTTP_AUTH_ADMIN, api_h_queue_release},
    {"DELETE", "/v1/queue/{id}", HTTP_AUTH_ADMIN, api_h_queue_delete},
    /* the cluster's nodes, for admin keys (src/api/api_cluster.c) */
    {"GET", "/v1/cluster/nodes", HTTP_AUTH_ADMIN, api_h_cluster_nodes},
};

const size_t http_n_routes = ARRAY_LEN(http_routes);
