/*
 * api_send_idem: the Idempotency-Key of POST /v1/messages (Stripe's
 * convention; docs/api.md "Idempotency"). On workers only: they touch
 * the store.
 *
 * begin (after the body has parsed, so a 400 never holds a key): a
 * request with a key claims it for its account. A key answered within
 * SEND_IDEM_TTL gets the first answer again (status and body, with
 * Idempotent-Replayed: true) and sends nothing; with another body, 422;
 * while the first request has not answered yet, 409.
 * end: the answer is recorded before it is sent when it is final (200 or
 * 422: what was queued stays queued); any other answer (403, a template
 * error, a database or spool failure: nothing queued) gives the key up,
 * so that the client may retry with it.
 *
 * After a crash. Before its first commit a request records its plan in
 * the claim (plan: each recipient with its message's queue ID, or its
 * refusal); the messages are handed to delivery only once the answer is
 * recorded (api_send.c, finish). So a claim without an answer at the
 * next start (api_send_idem_recover, before delivery starts) is one of:
 * no plan: nothing was committed, the key is given up (a retry sends); a
 * plan none of whose messages is in the spool nor has its accepted record
 * (the messages table: a message that was handed to delivery although its
 * answer could not be recorded, and has left the spool since): nothing
 * was committed either (what was committed stays queued until the answer
 * is recorded), the key is given up; some committed: those were, and the
 * answer is made from what is known (those recipients queued, the others
 * refused: never committed) and recorded, so a retry gets it instead of a
 * second copy. A spool that cannot be read leaves the claim (409 until
 * it expires, never a second copy).
 */
#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_send.h"
#include "log/log.h"
#include "spool/spool.h"
#include "store/store.h"

#define SEND_IDEM_PRUNE_EVERY 600 /* seconds between two prunes */

static int key_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > STORE_IDEM_KEY_MAX)
		return 0;
	for (; *s; s++)
		if (*s < 33 || *s > 126)
			return 0;
	return 1;
}

static void body_hash(struct http_req *r, char hex[65])
{
	unsigned char h[32];
	size_t len;
	const char *body = http_req_body(r, &len);

	crypto_generichash(h, sizeof(h), (const unsigned char *)body, len, NULL, 0);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

/* The first answer, as it was. */
static void replay(struct send_idem *k, int status, char *answer, struct api_answer *a)
{
	free(a->body);
	a->status = status;
	a->len = strlen(answer);
	a->body = answer;
	k->replayed = 1;
}

static int claimed(struct http_req *r, struct send_idem *k, int rc, int status, char *answer,
                   const char *err, struct api_answer *a)
{
	switch (rc) {
	case STORE_IDEM_NEW:
		k->claimed = 1;
		return 0;
	case STORE_IDEM_DONE:
		replay(k, status, answer, a);
		return -1;
	case STORE_IDEM_BUSY:
		api_answer_error(a, 409, "idempotency_key_in_use",
		                 "a request with this Idempotency-Key has not been answered yet");
		return -1;
	case STORE_IDEM_MISMATCH:
		api_answer_error(a, 422, "idempotency_key_reused",
		                 "this Idempotency-Key came with another request body");
		return -1;
	default:
		api_answer_store_error(r, a, err);
		return -1;
	}
}

int send_idem_begin(struct http_req *r, const char *account, struct send_idem *k,
                    struct api_answer *a)
{
	const char *key = http_req_header(r, "Idempotency-Key");
	char hash[65], *answer = NULL, *err = NULL;
	int status = 0, rc;

	memset(k, 0, sizeof(*k));
	if (!key)
		return 0;
	if (!key_ok(key)) {
		struct http_problem p = {400, "invalid_field", "Idempotency-Key", ""};
		snprintf(p.message, sizeof(p.message),
		         "Idempotency-Key: 1 to %d printable ASCII characters", STORE_IDEM_KEY_MAX);
		api_answer_problem(a, &p, NULL);
		return -1;
	}
	snprintf(k->key, sizeof(k->key), "%s", key);
	snprintf(k->account, sizeof(k->account), "%s", account);
	body_hash(r, hash);
	rc =
	    store_idem_claim(http_req_deps(r)->store,
	                     &(struct store_idem){account, key, hash, clock_now_s(), SEND_IDEM_TTL},
	                     &status, &answer, &err);
	rc = claimed(r, k, rc, status, answer, err, a);
	free(err);
	return rc;
}

static void prune(struct store *st, int64_t now)
{
	static _Atomic int64_t last;
	int64_t was = atomic_load(&last);
	char *err = NULL;

	if (now - was < SEND_IDEM_PRUNE_EVERY || !atomic_compare_exchange_strong(&last, &was, now))
		return;
	if (store_idem_prune(st, now - SEND_IDEM_TTL, &err) < 0) {
		log_warn("event=idempotency_prune_error error=%s", log_q(err));
		free(err);
	}
}

void send_idem_end(struct http_req *r, struct send_idem *k, const struct api_answer *a)
{
	struct store *st = http_req_deps(r)->store;
	char *err = NULL;
	int rc;

	if (!k->claimed)
		return;
	k->claimed = 0;
	if (a->body && (a->status == 200 || a->status == 422))
		rc = store_idem_finish(st, k->account, k->key, a->status, a->body, &err);
	else
		rc = store_idem_release(st, k->account, k->key, &err);
	if (rc < 0) {
		log_warn("http=%s event=idempotency_error key=%s error=%s", http_req_id(r),
		         log_q(k->key), log_q(err));
		free(err);
	}
	prune(st, clock_now_s());
}

int send_idem_plan(struct http_req *r, const struct send_idem *k, const char *planned)
{
	char *err = NULL;

	if (store_idem_plan(http_req_deps(r)->store, k->account, k->key, planned, &err) == 0)
		return 0;
	log_err("http=%s event=idempotency_error key=%s error=%s", http_req_id(r), log_q(k->key),
	        log_q(err));
	free(err);
	return -1;
}

/* ---- at start: claims left by a crash ---- */

/* 1 when message id is in the spool, 0 when not, -1 when that is unknown. */
static int in_spool(struct spool *sp, const char *id)
{
	struct envelope *e = NULL;
	char *err = NULL;

	if (spool_load(sp, id, &e, &err) == 0) {
		envelope_free(e);
		return 1;
	}
	if (errno == ENOENT) {
		free(err);
		return 0;
	}
	log_warn("event=idempotency_recover_error id=%s error=%s", id, log_q(err));
	free(err);
	return -1;
}

/* 1 when message id has its accepted record (written once it was
 * committed, whatever became of it since: delivered, deleted), 0 when not,
 * -1 when that is unknown. */
static int was_accepted(struct store *st, const char *id)
{
	struct store_message_row m;
	char *err = NULL;
	int rc = store_message_get(st, NULL, id, &m, &err);

	if (rc > 0)
		store_message_row_free(&m);
	if (rc < 0) {
		log_warn("event=idempotency_recover_error id=%s error=%s", id, log_q(err));
		free(err);
	}
	return rc;
}

/* 1 when message id was committed: in the spool, or out of it already. */
static int committed(struct store *st, struct spool *sp, const char *id)
{
	int in = in_spool(sp, id);

	return in == 0 ? was_accepted(st, id) : in;
}

/* The answer a plan's request would have had: each planned message queued
 * when it was committed, else refused; NULL when that is unknown. */
static json_t *known_answer(struct store *st, struct spool *sp, json_t *plan, size_t *queued)
{
	json_t *list = json_array(), *m;
	size_t i;

	*queued = 0;
	json_array_foreach(json_object_get(plan, "messages"), i, m)
	{
		const char *id = json_string_value(json_object_get(m, "id"));
		const char *to = json_string_value(json_object_get(m, "to"));
		const char *why = json_string_value(json_object_get(m, "reason"));
		int in = id ? committed(st, sp, id) : 0;
		if (in < 0 || !to) {
			json_decref(list);
			return NULL;
		}
		*queued += in;
		json_array_append_new(
		    list, in ? json_pack("{s:s,s:s,s:s}", "id", id, "to", to, "status", "queued")
		             : json_pack("{s:n,s:s,s:s,s:s}", "id", "to", to, "status", "refused",
		                         "reason",
		                         id    ? "not queued: the server stopped before its commit"
		                         : why ? why
		                               : "queue error"));
	}
	return json_pack("{s:o}", "messages", list);
}

struct recover {
	struct store *st;
	struct spool *sp;
};

static void recover_one(void *arg, const struct store_idem_open *o)
{
	struct recover *rv = arg;
	json_t *plan = o->planned ? json_loads(o->planned, 0, NULL) : NULL, *ans = NULL;
	size_t queued = 0;
	char *err = NULL, *text = NULL;
	int rc;

	if (o->planned && !(plan && (ans = known_answer(rv->st, rv->sp, plan, &queued)))) {
		log_warn("event=idempotency_unresolved account=%s key=%s", log_q(o->account),
		         log_q(o->key));
		json_decref(plan);
		return; /* unknown: the claim stays (409 until it expires) */
	}
	if (queued && (text = json_dumps(ans, JSON_COMPACT | JSON_ENSURE_ASCII)))
		rc = store_idem_finish(rv->st, o->account, o->key, 200, text, &err);
	else
		rc = store_idem_release(rv->st, o->account, o->key, &err);
	if (rc < 0)
		log_warn("event=idempotency_recover_error key=%s error=%s", log_q(o->key),
		         log_q(err));
	else
		log_info("event=idempotency_recovered account=%s key=%s queued=%zu result=%s",
		         log_q(o->account), log_q(o->key), queued,
		         queued ? "answered" : "released");
	free(text);
	free(err);
	json_decref(ans);
	json_decref(plan);
}

int api_send_idem_recover(struct store *st, struct spool *sp, char **err)
{
	struct recover rv = {st, sp};

	return store_idem_open_list(st, recover_one, &rv, err);
}
