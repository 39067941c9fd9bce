/*
 * http_handlers: the handlers of the routes in http_routes.c that live in
 * src/http/ (operators' routes and the key's own resources). Routes of
 * other modules declare their handlers in their own headers.
 */
#ifndef POSTHORN_HTTP_HANDLERS_H
#define POSTHORN_HTTP_HANDLERS_H

#include "http/http_api.h"

/* http_ops.c */
void http_h_healthz(struct http_req *r);
void http_h_metrics(struct http_req *r);
void http_h_openapi(struct http_req *r);

/* http_keys.c */
void http_h_account(struct http_req *r);
void http_h_apikeys_list(struct http_req *r);
void http_h_apikey_patch(struct http_req *r);
void http_h_apikey_revoke(struct http_req *r);

/* http_static.c: the dashboard */
void http_h_dashboard(struct http_req *r);
void http_h_asset(struct http_req *r);

#endif
