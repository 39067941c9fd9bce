/*
 * libFuzzer target for spool/spool_format: the decoders of a spool file's
 * header, envelope record and recipient state records, and the round trip
 * from each encoder through its decoder. A spool file is input: a disk
 * error, a restore or an operator can hand the relay any bytes.
 *
 * Byte 0 of the input picks a mode; the rest is that mode's material:
 *   0  raw envelope record: decoded as it is (the checksum rarely holds);
 *   1  envelope record body: the harness appends the "end CHECKSUM" line
 *      and takes the header's recipient count from the "rcpts" line, so
 *      the fuzzer reaches the field and recipient parsers;
 *   2  header: 128 bytes, with its checksum made right when byte 1 is odd,
 *      so the version (1 to 3), flag and length checks are reached; what
 *      decodes must decode again re-encoded, and marked version 3;
 *   3  an envelope built from the input, then state records from the rest
 *      (with each line's checksum appended when byte 1 is odd), fed whole
 *      and in pieces of a size the input picks: both must give the same
 *      envelope;
 *   4  an envelope built from the input: encode, decode, compare field by
 *      field; then a state record and a steering record per recipient,
 *      applied and compared;
 *   5  a deletion journal line: decoded; what decodes is encoded and
 *      decoded again, to the same line.
 * Every decode that succeeds is also re-encoded and decoded again, and
 * must give the same envelope (decode(encode(x)) == x). Inputs are exact-
 * size heap copies, so AddressSanitizer catches a read one byte too far.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool_format.h"
#include "fuzz_util.h"

#define ID "0123456789ABCDEF"

/* ---- taking values from the input ---- */

struct src {
	const uint8_t *p;
	size_t n;
};

static unsigned take8(struct src *s)
{
	if (s->n == 0)
		return 0;
	s->n--;
	return *s->p++;
}

static uint64_t take64(struct src *s)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | take8(s);
	return v;
}

/* A string: 255 NULL, 254 one near SPOOL_FIELD_MAX, else that many bytes
 * (a NUL becomes '%', which needs escaping too). */
static char *take_str(struct src *s)
{
	unsigned len = take8(s);
	char *out;

	if (len == 255)
		return NULL;
	if (len == 254) {
		size_t n = SPOOL_FIELD_MAX - 8 + take8(s) / 16;

		out = malloc(n + 1);
		CHECK(out != NULL);
		memset(out, 'a' + (int)(n % 26), n);
		out[n] = '\0';
		return out;
	}
	out = malloc(len + 1);
	CHECK(out != NULL);
	for (unsigned i = 0; i < len; i++) {
		unsigned c = take8(s);

		out[i] = (char)(c ? c : '%');
	}
	out[len] = '\0';
	return out;
}

static void take_rcpt(struct src *s, struct rcpt *r)
{
	r->addr = take_str(s);
	r->orcpt = take_str(s);
	r->notify = take8(s) | take8(s) << 8;
	r->state = (enum rcpt_state)(take8(s) % 4);
	r->attempts = (uint32_t)take64(s);
	r->next_attempt = (int64_t)take64(s);
	r->last_reply = take_str(s);
}

static struct envelope *take_env(struct src *s)
{
	struct envelope *e = calloc(1, sizeof(*e));

	CHECK(e != NULL);
	memcpy(e->id, ID, sizeof(e->id));
	e->mail_from = take_str(s);
	e->account = take_str(s);
	e->client_ip = take_str(s);
	e->helo = take_str(s);
	e->envid = take_str(s);
	e->created = (int64_t)take64(s);
	e->size = take64(s);
	e->body = (enum body_type)(take8(s) % 2);
	e->smtputf8 = (int)take8(s);
	e->ret = (enum dsn_ret)(take8(s) % 3);
	e->n_rcpts = take8(s) % 9;
	e->rcpts = calloc(e->n_rcpts ? e->n_rcpts : 1, sizeof(*e->rcpts));
	CHECK(e->rcpts != NULL);
	for (size_t i = 0; i < e->n_rcpts; i++)
		take_rcpt(s, &e->rcpts[i]);
	return e;
}

/* ---- comparing ---- */

static int str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* A reply is cut at SPOOL_FIELD_MAX bytes when written. */
static int reply_eq(const char *orig, const char *got)
{
	if (!orig || strlen(orig) <= SPOOL_FIELD_MAX)
		return str_eq(orig, got);
	return got && strlen(got) == SPOOL_FIELD_MAX && memcmp(orig, got, SPOOL_FIELD_MAX) == 0;
}

static void rcpt_compare(const struct rcpt *a, const struct rcpt *b)
{
	CHECK(str_eq(a->addr ? a->addr : "", b->addr));
	CHECK(str_eq(a->orcpt, b->orcpt));
	CHECK(b->notify == (a->notify & 0xFF));
	CHECK(a->state == b->state && a->attempts == b->attempts);
	CHECK(a->next_attempt == b->next_attempt);
	CHECK(reply_eq(a->last_reply, b->last_reply));
	CHECK(a->held_since == b->held_since && a->held_secs == b->held_secs);
	CHECK(a->deleted == b->deleted);
}

/* b is what decoding a's encoding gave. */
static void env_compare(const struct envelope *a, const struct envelope *b, uint64_t size)
{
	CHECK(memcmp(a->id, b->id, sizeof(a->id)) == 0);
	CHECK(str_eq(a->mail_from ? a->mail_from : "", b->mail_from));
	CHECK(str_eq(a->account, b->account) && str_eq(a->client_ip, b->client_ip));
	CHECK(str_eq(a->helo, b->helo) && str_eq(a->envid, b->envid));
	CHECK(a->created == b->created && b->size == size);
	CHECK(b->body == (a->body == BODY_8BITMIME ? BODY_8BITMIME : BODY_7BIT));
	CHECK(b->smtputf8 == (a->smtputf8 != 0));
	CHECK(a->ret == b->ret);
	CHECK(a->n_rcpts == b->n_rcpts);
	for (size_t i = 0; i < a->n_rcpts; i++)
		rcpt_compare(&a->rcpts[i], &b->rcpts[i]);
}

/* What every decoded envelope must look like. */
static void env_sane(const struct envelope *e, uint32_t n_rcpts)
{
	CHECK(e->mail_from && e->account && e->n_rcpts == n_rcpts);
	CHECK(e->body == BODY_7BIT || e->body == BODY_8BITMIME);
	CHECK(e->smtputf8 == 0 || e->smtputf8 == 1);
	CHECK(e->ret >= DSN_RET_UNSET && e->ret <= DSN_RET_HDRS);
	for (size_t i = 0; i < e->n_rcpts; i++) {
		CHECK(e->rcpts[i].addr != NULL && e->rcpts[i].notify <= 0xFF);
		CHECK(e->rcpts[i].state <= RCPT_DEFERRED);
		CHECK(!e->rcpts[i].last_reply || strlen(e->rcpts[i].last_reply) <= SPOOL_FIELD_MAX);
		CHECK(e->rcpts[i].held_since >= 0 && (e->rcpts[i].deleted & ~1) == 0);
	}
}

/* Encode e, decode it: must succeed and match. Returns the decoded copy
 * (NULL when the encoder refused e, which it may only do for a reason). */
static struct envelope *roundtrip(const struct envelope *e)
{
	struct envelope *got = NULL;
	char *reason = NULL;
	struct buf b;
	char *copy;

	buf_init(&b);
	if (spool_env_encode(e, ID, e->size, &b, &reason) < 0) {
		CHECK(reason != NULL && b.len == 0);
		free(reason);
		buf_free(&b);
		return NULL;
	}
	copy = fuzz_copy(b.data, b.len);
	CHECK(spool_env_decode(copy, b.len, ID, (uint32_t)e->n_rcpts, &got, &reason) == 0);
	env_compare(e, got, e->size);
	free(copy);
	buf_free(&b);
	return got;
}

/* ---- modes ---- */

static void decode_env(const char *p, size_t n, uint32_t n_rcpts)
{
	struct envelope *e = NULL, *again;
	char *reason = NULL;

	if (spool_env_decode(p, n, ID, n_rcpts, &e, &reason) < 0) {
		CHECK(reason != NULL && e == NULL);
		free(reason);
		return;
	}
	env_sane(e, n_rcpts);
	again = roundtrip(e);
	CHECK(again != NULL); /* what was decoded can be encoded */
	envelope_free(again);
	envelope_free(e);
}

static void mode_raw_env(struct src *s)
{
	uint32_t n_rcpts = take8(s) % 4;
	char *p = fuzz_copy(s->p, s->n);

	decode_env(p, s->n, n_rcpts);
	free(p);
}

/* The number after "\nrcpts " in p[0..n), or 0. */
static uint32_t rcpts_count(const uint8_t *p, size_t n)
{
	const uint8_t *rc = memmem(p, n, "\nrcpts ", 7), *end = p + n;
	uint32_t v = 0;

	for (rc = rc ? rc + 7 : end; rc < end && *rc >= '0' && *rc <= '9' && v < 100000000; rc++)
		v = v * 10 + (uint32_t)(*rc - '0');
	return v;
}

/* The body plus "end CHECKSUM\n"; the count from "\nrcpts N\n". */
static void mode_checked_env(struct src *s)
{
	char hex[SPOOL_CHECK_HEX + 1], *p;
	unsigned char sum[SPOOL_CHECK_LEN];
	size_t n = s->n + 4 + SPOOL_CHECK_HEX + 1;
	uint32_t n_rcpts = rcpts_count(s->p, s->n);

	spool_check(s->p, s->n, sum);
	for (int i = 0; i < SPOOL_CHECK_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", sum[i]);
	p = malloc(n);
	CHECK(p != NULL);
	memcpy(p, s->p, s->n);
	memcpy(p + s->n, "end ", 4);
	memcpy(p + s->n + 4, hex, SPOOL_CHECK_HEX);
	p[n - 1] = '\n';
	decode_env(p, n, n_rcpts);
	free(p);
}

static void hdr_eq(const struct spool_hdr *a, const struct spool_hdr *b)
{
	CHECK(a->version == b->version && a->flags == b->flags && a->n_rcpts == b->n_rcpts);
	CHECK(a->body_off == b->body_off && a->body_len == b->body_len);
	CHECK(a->env_off == b->env_off && a->env_len == b->env_len);
}

static void mode_header(struct src *s)
{
	unsigned char *raw = calloc(1, SPOOL_HDR_SIZE), again[SPOOL_HDR_SIZE];
	int fix = take8(s) & 1;
	struct spool_hdr h, h2;
	char *reason = NULL;
	uint64_t fsize = take64(s);

	CHECK(raw != NULL);
	memcpy(raw, s->p, s->n < SPOOL_HDR_SIZE ? s->n : SPOOL_HDR_SIZE);
	if (fix)
		spool_check(raw, SPOOL_HDR_SIZE - SPOOL_CHECK_LEN,
		            raw + SPOOL_HDR_SIZE - SPOOL_CHECK_LEN);
	if (spool_hdr_decode(raw, &h, &reason) < 0) {
		CHECK(reason != NULL);
		free(reason);
		free(raw);
		return;
	}
	CHECK(h.version >= SPOOL_VERSION_MIN && h.version <= SPOOL_VERSION &&
	      (h.flags & SPOOL_F_COMPLETE));
	CHECK(h.body_off >= SPOOL_HDR_SIZE && h.env_off == h.body_off + h.body_len);
	CHECK(h.body_off <=
	      (h.version >= SPOOL_VERSION_FRONT ? SPOOL_BODY_OFF_MAX : SPOOL_HDR_SIZE));
	CHECK(h.env_len > 0 && h.env_len <= SPOOL_ENV_MAX && h.n_rcpts <= SPOOL_RCPT_MAX);
	if (spool_hdr_fits(&h, fsize, &reason) == 0)
		CHECK(h.env_off + h.env_len <= fsize);
	else
		free(reason);
	spool_hdr_encode(&h, again);
	CHECK(spool_hdr_decode(again, &h2, &reason) == 0);
	hdr_eq(&h, &h2);
	/* the first steering record marks a file of any version version 3 in
	 * place (spool_read.c): every layout a reader takes stays one */
	h.version = SPOOL_VERSION_STEER;
	spool_hdr_encode(&h, again);
	CHECK(spool_hdr_decode(again, &h2, &reason) == 0);
	hdr_eq(&h, &h2);
	free(raw);
}

/* The records text, with each line's checksum appended when asked. */
static struct buf records_text(struct src *s, int fix)
{
	const char *p = (const char *)s->p, *end = p + s->n;
	struct buf b;

	buf_init(&b);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		unsigned char sum[SPOOL_CHECK_LEN];

		buf_append(&b, p, len);
		if (fix && nl) {
			spool_check(p, len, sum);
			buf_puts(&b, " ");
			for (int i = 0; i < SPOOL_CHECK_LEN; i++)
				buf_printf(&b, "%02x", sum[i]);
		}
		if (nl)
			buf_puts(&b, "\n");
		p += len + (nl ? 1 : 0);
	}
	return b;
}

static void feed(struct envelope *e, const char *p, size_t n, size_t piece, struct spool_records *r)
{
	spool_records_init(r, e);
	for (size_t off = 0; off < n;) {
		size_t k = piece && n - off > piece ? piece : n - off;
		char *copy = fuzz_copy(p + off, k);

		spool_records_feed(r, copy, k);
		free(copy);
		off += k;
	}
}

static void mode_records(struct src *s)
{
	int fix = take8(s) & 1;
	size_t piece = take8(s);
	struct envelope *e = take_env(s), *a, *b;
	struct spool_records ra, rb;
	struct buf text;

	a = roundtrip(e);
	b = a ? roundtrip(e) : NULL;
	envelope_free(e);
	if (!a)
		return;
	text = records_text(s, fix);
	feed(a, text.data, text.len, 0, &ra);
	feed(b, text.data, text.len, piece ? piece : 1, &rb);
	CHECK(ra.applied == rb.applied && ra.skipped == rb.skipped);
	CHECK(spool_records_torn(&ra) == spool_records_torn(&rb));
	env_sane(a, (uint32_t)a->n_rcpts);
	env_compare(a, b, a->size);
	spool_records_free(&ra);
	spool_records_free(&rb);
	buf_free(&text);
	envelope_free(a);
	envelope_free(b);
}

/* Each recipient's state, changed by the input, recorded and applied. */
static void mode_roundtrip(struct src *s)
{
	struct envelope *e = take_env(s), *got = roundtrip(e);
	struct buf rec;

	if (!got) {
		envelope_free(e);
		return;
	}
	buf_init(&rec);
	for (size_t i = 0; i < e->n_rcpts; i++) {
		struct rcpt *r = &e->rcpts[i];

		free(r->last_reply);
		r->last_reply = take_str(s);
		r->state = (enum rcpt_state)(take8(s) % 4);
		r->attempts = (uint32_t)take64(s);
		r->next_attempt = (int64_t)take64(s);
		r->held_since = (int64_t)(take64(s) & INT64_MAX);
		r->held_secs = take64(s);
		r->deleted = (int)(take8(s) & 1);
		buf_reset(&rec);
		spool_rcpt_encode(i, r, &rec);
		CHECK(rec.len > 2 && rec.data[0] == '\n' && rec.data[rec.len - 1] == '\n');
		CHECK(spool_rcpt_apply(rec.data + 1, rec.len - 2, got) == 0);
		buf_reset(&rec);
		spool_steering_encode(i, r, &rec);
		CHECK(rec.len > 2 && rec.data[0] == '\n' && rec.data[rec.len - 1] == '\n');
		CHECK(spool_rcpt_apply(rec.data + 1, rec.len - 2, got) == 0);
	}
	env_compare(e, got, e->size);
	buf_free(&rec);
	envelope_free(got);
	envelope_free(e);
}

static void mode_journal(struct src *s)
{
	struct spool_journal_line l, again;
	char *p = fuzz_copy(s->p, s->n);
	struct buf b;

	if (spool_journal_decode(p, s->n, &l) == 0) {
		CHECK(l.addr != NULL && id_valid(l.id) && l.idx < SPOOL_RCPT_MAX);
		buf_init(&b);
		spool_journal_encode(l.when, l.id, l.idx, l.addr, &b);
		CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
		CHECK(spool_journal_decode(b.data, b.len - 1, &again) == 0);
		CHECK(again.when == l.when && again.idx == l.idx && !strcmp(again.id, l.id));
		CHECK(!strcmp(again.addr, l.addr));
		free(again.addr);
		free(l.addr);
		buf_free(&b);
	}
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s = {data, size};

	switch (take8(&s) % 6) {
	case 0:
		mode_raw_env(&s);
		break;
	case 1:
		mode_checked_env(&s);
		break;
	case 2:
		mode_header(&s);
		break;
	case 3:
		mode_records(&s);
		break;
	case 4:
		mode_roundtrip(&s);
		break;
	default:
		mode_journal(&s);
	}
	return 0;
}
