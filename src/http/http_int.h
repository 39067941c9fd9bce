/*
 * http_int.h: what the files of src/http/ share with each other and with
 * nobody else: the server, its connections and the request a handler sees.
 * Everything here lives on the event loop thread.
 */
#ifndef POSTHORN_HTTP_INT_H
#define POSTHORN_HTTP_INT_H

#include <stdint.h>
#include <sys/queue.h>

#include "http/http.h"
#include "http/http_api.h"
#include "http/http_parse.h"
#include "http/http_route.h"
#include "util/util.h"

struct bufferevent;
struct event;
struct evconnlistener;
struct http_keys;

/* How long a closing connection keeps reading (and dropping) what the
 * client still sends, so that our reply is not lost to a reset. */
#define HTTP_LINGER_MS 2000
/* A request's whole body must arrive within this many times [http] timeout. */
#define HTTP_BODY_TIMEOUT_FACTOR 10

enum http_conn_state {
	CS_READ,    /* waiting for or reading a request */
	CS_AUTH,    /* head read; the key is being checked */
	CS_HANDLER, /* the route's handler has the request */
	CS_WRITE,   /* the reply is being written */
	CS_LINGER,  /* reply sent, write side shut: dropping input until EOF */
};

struct http_req {
	struct http_conn *conn;
	struct http_request *msg; /* the parser's */
	char *path;               /* malloc'd; the query after it, split off */
	const char *query;        /* into path's allocation, or NULL */
	struct http_match match;
	struct http_auth auth;
	int authed;
	char **kept; /* decoded query values handed out, freed with the request */
	size_t n_kept;
	struct buf extra_headers;
	uint64_t start_ms;
	int replied;
};

struct http_conn {
	struct http *h;
	struct bufferevent *bev;
	struct event *timer;
	char id[ID_LEN + 1];
	char ip[48];
	enum http_conn_state state;
	struct http_parser parser;
	struct http_req req;
	uint64_t body_deadline_ms;
	int close_after; /* the reply says Connection: close, then we close */
	int busy;        /* jobs on workers that will come back to this connection */
	int dead;        /* the socket is gone; freed when busy drops to 0 */
	TAILQ_ENTRY(http_conn) next;
};

struct http {
	struct event_base *base;
	const struct conf *conf;
	struct http_deps deps;
	struct evconnlistener *evl;
	int started, paused, draining;
	TAILQ_HEAD(, http_conn) conns;
	size_t n_conns;
	struct event *ev_drained;
	void (*drained)(void *arg);
	void *drained_arg;
	struct http_keys *keys; /* http_auth.c */
};

/* http_conn.c */
void http_conn_accept(struct http *h, int fd, const char *ip);
void http_conn_close(struct http_conn *c);
void http_conn_close_idle(struct http *h); /* drain: idle keep-alive connections */
/* 1 if the reply being made must end the connection (Connection: close):
 * the client asked, the server drains, or request bytes are still unread. */
int http_conn_closing(struct http_conn *c);
/* Sends a whole response (head and body) and ends the request. */
void http_conn_send(struct http_conn *c, int status, struct buf *response);
/* Runs work on a worker and done on the loop; the connection outlives it. */
void http_conn_defer(struct http_conn *c, void (*work)(void *arg), void (*done)(void *arg),
                     void *arg);
/* The key check of a request in CS_AUTH ended (http_auth.c). */
void http_conn_authed(struct http_conn *c, int ok);

/* http_reply.c */
const char *http_status_text(int status);

/* http_auth.c: checks r's Authorization against the keys. Either decides at
 * once (returns 1 ok, 0 refused: the 401/403 is sent) or returns -1 and
 * calls http_conn_authed() later. */
int http_auth_check(struct http_req *r);
struct http_keys *http_keys_new(struct http *h);
void http_keys_free(struct http_keys *k); /* writes pending last-used times */

#endif
