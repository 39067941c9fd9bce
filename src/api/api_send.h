/*
 * api_send: POST /v1/messages, shared between its files.
 *
 *   api_send_parse.c  the request's JSON -> struct send_req (400s name the field)
 *   api_send.c        the route: checks (sender domain, suppressions) and
 *                     rendering on a worker, the plan of its messages; the
 *                     policy (pause, quota) on the loop; the commits, the answer
 *   api_send_build.c  on a worker, once the policy let a message through:
 *                     its bytes built (send_build), checked against
 *                     max_message_size, signed and written (send_write)
 *   api_send_idem.c   Idempotency-Key
 *
 * The commit itself runs on the loop (spool_msg_commit), and the answer
 * goes out once every commit of the request has reported.
 */
#ifndef POSTHORN_API_SEND_H
#define POSTHORN_API_SEND_H

#include <jansson.h>

#include "api/api.h"
#include "mime/mime.h"
#include "dkim/dkim.h"
#include "spool/spool.h"
#include "store/store.h"
#include "track/track.h"

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

struct send_job;

#define SEND_DEFAULT_MAX_SIZE (25ULL * 1024 * 1024) /* as [listener] max_message_size */

/* The parts one message is built from (given or rendered). */
struct send_content {
	const char *subject, *text, *html;
};

/* One message: planned on the worker (its recipients and content), its
 * quota reserved on the loop, then built, signed and written on a worker
 * (spool file, ID), committed on the loop. */
struct send_msg {
	struct send_job *job;
	struct spool_msg *sm; /* written, not yet committed */
	char id[ID_LEN + 1];
	char *subject;
	struct rcpt *rcpts;
	const char **addrs;
	size_t *idx; /* its results in job->res */
	size_t n_rcpts;
	const struct mime_addr *to; /* its To: field */
	size_t n_to;
	struct send_content c;
	struct buf rendered[API_PARTS]; /* c's bytes, when its own rendering made them */
	uint64_t size;
	int64_t created; /* unix seconds, as committed (the envelope handed on) */
	int smtputf8;
	int state;    /* 0 pending, 1 queued, -1 failed, -2 refused (quota, pause, size) */
	int reserved; /* its recipients are reserved against the account's quota */
	/* What the worker's signing did, logged on the loop at the commit. */
	enum dkim_result dkim;
	int unsub_missing; /* unsubscribe asked, no List-Unsubscribe made */
	char dkim_domain[256];
};

/* Why a recipient was refused, for the answer's status (SPEC 6). */
enum send_refusal { REFUSED_OTHER, REFUSED_QUOTA, REFUSED_SIZE };

struct send_result {
	const char *to;
	struct send_msg *msg; /* NULL: refused */
	char reason[SUPP_REASON_MAX + 64];
	int suppressed;
	enum send_refusal why;
};

struct send_job {
	struct http_req *r;
	struct api_answer ans; /* made on the worker when the request is refused whole */
	char account[COUNTER_ACCOUNT_MAX + 1];
	json_t *body;
	struct send_req q;
	struct send_result *res;
	size_t n_res;
	struct send_msg *msgs;
	size_t n_msgs, pending;
	size_t next_build, building, slices_left; /* a batch built in slices (api_send.c) */
	struct send_idem idem;
	int tracking;                /* track.opens or track.clicks: one message per recipient */
	int per_rcpt;                /* tracking or unsubscribe: links name one recipient */
	int built;                   /* built on the first worker (not a batch) */
	uint64_t max_size;           /* the largest message accepted (bytes, as SMTP's SIZE) */
	int64_t retry_at;            /* unix seconds, for Retry-After (quota reset, disk) */
	struct api_rendered *single; /* the rendering of a templated single message */
	json_t *warnings;            /* the renderings' warnings (NULL: none), for the answer */
	int warnings_truncated;
	unsigned char track_key[TRACK_KEY_LEN];
};

/* api_send_build.c. On a worker: every message still pending (state 0)
 * built, signed and written, or refused (size) or failed. */
void send_build_all(void *arg);
/* On a worker: the pending messages of msgs[from..to) built and written
 * (a slice of a batch without an Idempotency-Key: no plan to record). */
void send_build_range(struct send_job *j, size_t from, size_t to);
/* A message refused before its commit: its spool file (if any) dropped,
 * its recipients refused with why. */
void send_msg_refuse(struct send_job *j, struct send_msg *m, const char *why,
                     enum send_refusal kind);

/* api_send_idem.c, on a worker, once the body has parsed: 0 go on (the
 * key claimed, or no key), -1 with the answer in *a (the first answer
 * again, 409, 422, 400 or 500). */
int send_idem_begin(struct http_req *r, const char *account, struct send_idem *k,
                    struct api_answer *a);
/* On a worker, before a is sent: records it, or gives the key up. */
void send_idem_end(struct http_req *r, struct send_idem *k, const struct api_answer *a);
/* On a worker, before the first commit: the request's plan recorded in
 * its claim; -1 (logged) when it could not be: nothing may be committed. */
int send_idem_plan(struct http_req *r, const struct send_idem *k, const char *planned);

/* api_track.c: the tracking key (DATA_DIR/tracking.key, made once; on a
 * worker: it may read or write the file), and a tracked URL on
 * [http] public_url (malloc'd). */
struct track_ref;
int api_track_key(const struct conf *c, unsigned char key[32]);
/* With a cluster database, the cluster's key from now on (store_keys.h): 0,
 * or -1 with *err. At start, blocking. */
struct store;
int api_track_key_share(const struct conf *c, struct store *st, char **err);
char *api_track_url(const struct conf *c, const unsigned char key[32], const struct track_ref *r);

/* 0, or -1 with p set (400, naming the field). */
int send_req_parse(json_t *body, struct send_req *q, struct http_problem *p);
void send_req_free(struct send_req *q);

#endif
