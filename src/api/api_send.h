/*
 * api_send: POST /v1/messages, shared between its files.
 *
 *   api_send_parse.c  the request's JSON -> struct send_req (400s name the field)
 *   api_send.c        the route: checks (sender domain, suppressions) and
 *                     rendering on a worker, build then commit, the answer
 *
 * The accept step is two functions so that signing and quota hooks can
 * go between them: send_build() makes one message's bytes (a struct buf),
 * send_write() puts them in a spool file; the commit itself runs on the
 * loop (spool_msg_commit), and the answer goes out once every commit of
 * the request has reported.
 */
#ifndef POSTHORN_API_SEND_H
#define POSTHORN_API_SEND_H

#include <jansson.h>

#include "api/api.h"
#include "mime/mime.h"
#include "store/store.h"

#define SEND_MAX_RCPTS    1000 /* to + cc + bcc of one message; recipients of a batch */
#define SEND_MAX_PARTS    64
#define SEND_MAX_HEADERS  64
#define SEND_FILENAME_MAX 255
#define SEND_CID_MAX      250
#define SEND_SUBJECT_MAX  998

/* One recipient of a batch. */
struct send_batch_rcpt {
	struct mime_addr to;
	json_t *vars; /* borrowed from the body; NULL: none */
};

/* A parsed request. Strings and JSON are borrowed from body (kept alive
 * by the job); what is malloc'd is freed by send_req_free(). */
struct send_req {
	json_t *body;
	struct mime_addr from, reply_to;
	int has_reply_to;
	struct mime_addr *to, *cc, *bcc;
	size_t n_to, n_cc, n_bcc;
	const char *subject, *text, *html;
	struct mime_header *headers;
	size_t n_headers;
	struct mime_part *parts; /* data malloc'd */
	size_t n_parts;
	const char **tags;
	size_t n_tags;
	char *metadata; /* JSON text or NULL */
	const char *tmpl;
	json_t *vars;
	struct send_batch_rcpt *batch;
	size_t n_batch; /* 0: a single message */
	int track_opens, track_clicks, unsubscribe;
};

#define SEND_IDEM_TTL 86400 /* seconds an Idempotency-Key answers the same */

struct send_idem {
	char key[STORE_IDEM_KEY_MAX + 1];
	char account[COUNTER_ACCOUNT_MAX + 1];
	int claimed;  /* this request holds the key: send_idem_end() it */
	int replayed; /* the answer in hand is the first request's */
};

/* api_send_idem.c, on a worker, once the body has parsed: 0 go on (the
 * key claimed, or no key), -1 with the answer in *a (the first answer
 * again, 409, 422, 400 or 500). */
int send_idem_begin(struct http_req *r, const char *account, struct send_idem *k,
                    struct api_answer *a);
/* On a worker, before a is sent: records it, or gives the key up. */
void send_idem_end(struct http_req *r, struct send_idem *k, const struct api_answer *a);

/* api_track.c: the tracking key (DATA_DIR/tracking.key, made once; on a
 * worker: it may read or write the file), and a tracked URL on
 * [http] public_url (malloc'd). */
struct track_ref;
int api_track_key(const struct conf *c, unsigned char key[32]);
char *api_track_url(const struct conf *c, const unsigned char key[32], const struct track_ref *r);

/* 0, or -1 with p set (400, naming the field). */
int send_req_parse(json_t *body, struct send_req *q, struct http_problem *p);
void send_req_free(struct send_req *q);

#endif
