/*
 * api_queue: the admin routes over the queue (SPEC 6): GET /v1/queue,
 * POST /v1/queue/{id}/retry|hold|release, DELETE /v1/queue/{id}. Their
 * rows are in src/http/http_routes.c (HTTP_AUTH_ADMIN); docs/api.md and
 * docs/openapi.json describe them.
 */
#ifndef POSTHORN_API_QUEUE_H
#define POSTHORN_API_QUEUE_H

struct http_req;

void api_h_queue_list(struct http_req *r);
void api_h_queue_retry(struct http_req *r);
void api_h_queue_hold(struct http_req *r);
void api_h_queue_release(struct http_req *r);
void api_h_queue_delete(struct http_req *r);

#endif
