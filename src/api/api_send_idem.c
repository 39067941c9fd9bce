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
 * so that the client may retry with it. A crash between the spool commit
 * and end leaves the key claimed without an answer: retries get 409
 * until it expires, never a second copy.
 */
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_send.h"
#include "log/log.h"
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
