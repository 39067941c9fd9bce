/*
 * spool_format.c: the bytes of a spool file, and nothing else (no I/O).
 *
 * Owns the encoding and the checks of the three kinds of record in a spool
 * file: the fixed binary header, the envelope record (a versioned text
 * record ending in "end CHECKSUM") and the per-recipient state records,
 * streamed. spool_format.h has the promises; docs/spool.md the layout.
 * Every string field round-trips byte for byte (any byte but NUL, which a
 * C string cannot hold), and NULL stays distinct from "".
 */
#include "spool/spool_format.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct span {
	const char *p;
	size_t n;
};

/* BLAKE2b (libsodium) truncated to 128 bits: a checksum against torn and
 * damaged records, not an authenticator; libsodium is already linked. */
void spool_check(const void *p, size_t n, unsigned char out[SPOOL_CHECK_LEN])
{
	crypto_generichash(out, SPOOL_CHECK_LEN, p, n, NULL, 0);
}

static void check_hex(const void *p, size_t n, char hex[SPOOL_CHECK_HEX + 1])
{
	unsigned char bin[SPOOL_CHECK_LEN];

	spool_check(p, n, bin);
	sodium_bin2hex(hex, SPOOL_CHECK_HEX + 1, bin, sizeof(bin));
}

static int check_ok(const void *p, size_t n, struct span want)
{
	char hex[SPOOL_CHECK_HEX + 1];

	check_hex(p, n, hex);
	return want.n == SPOOL_CHECK_HEX && memcmp(hex, want.p, SPOOL_CHECK_HEX) == 0;
}

/* ---- header ---- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define HDR_CHECK_AT (SPOOL_HDR_SIZE - SPOOL_CHECK_LEN)

void spool_hdr_encode(const struct spool_hdr *h, unsigned char out[SPOOL_HDR_SIZE])
{
	memset(out, 0, SPOOL_HDR_SIZE);
	memcpy(out, SPOOL_MAGIC, sizeof(SPOOL_MAGIC));
	put32(out + 8, h->version);
	put32(out + 12, h->flags);
	put64(out + 16, h->body_off);
	put64(out + 24, h->body_len);
	put64(out + 32, h->env_off);
	put64(out + 40, h->env_len);
	put32(out + 48, h->n_rcpts);
	spool_check(out, HDR_CHECK_AT, out + HDR_CHECK_AT);
}

/* The lengths must describe the layout of the header's version exactly,
 * so that a damaged length is caught here rather than trusted by a
 * reader. */
static int hdr_sane(const struct spool_hdr *h)
{
	uint64_t off_max = h->version >= SPOOL_VERSION_FRONT ? SPOOL_BODY_OFF_MAX : SPOOL_HDR_SIZE;

	if (h->body_off < SPOOL_HDR_SIZE || h->body_off > off_max || h->body_len > UINT64_MAX / 2)
		return 0;
	if (h->env_off != h->body_off + h->body_len)
		return 0;
	return h->env_len > 0 && h->env_len <= SPOOL_ENV_MAX && h->n_rcpts <= SPOOL_RCPT_MAX;
}

/* Checks in the order that gives the most useful reason: a foreign file,
 * then a version we cannot read (whose layout we must not guess), then
 * damage, then an unfinished commit. */
int spool_hdr_decode(const unsigned char in[SPOOL_HDR_SIZE], struct spool_hdr *h, char **reason)
{
	unsigned char sum[SPOOL_CHECK_LEN];

	if (memcmp(in, SPOOL_MAGIC, sizeof(SPOOL_MAGIC)) != 0)
		return *reason = xstrdup("bad magic"), -1;
	h->version = get32(in + 8);
	if (h->version < SPOOL_VERSION_MIN || h->version > SPOOL_VERSION)
		return *reason = xasprintf("unknown version %u", (unsigned)h->version), -1;
	spool_check(in, HDR_CHECK_AT, sum);
	if (memcmp(sum, in + HDR_CHECK_AT, SPOOL_CHECK_LEN) != 0)
		return *reason = xstrdup("bad header checksum"), -1;
	h->flags = get32(in + 12);
	h->body_off = get64(in + 16);
	h->body_len = get64(in + 24);
	h->env_off = get64(in + 32);
	h->env_len = get64(in + 40);
	h->n_rcpts = get32(in + 48);
	if (!(h->flags & SPOOL_F_COMPLETE))
		return *reason = xstrdup("incomplete (no complete marker)"), -1;
	if (!hdr_sane(h))
		return *reason = xstrdup("bad header lengths"), -1;
	return 0;
}

int spool_hdr_fits(const struct spool_hdr *h, uint64_t fsize, char **reason)
{
	if (h->env_off + h->env_len > fsize)
		return *reason = xstrdup("truncated (shorter than its header says)"), -1;
	return 0;
}

/* ---- tokens: one string field, escaped so that it holds no space, no
 * control byte and no newline. "-" is NULL, "." is "", and a value that is
 * itself "-" or "." is written escaped. ---- */

static int tok_plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '%';
}

static void tok_put(struct buf *b, const char *s)
{
	const char *p, *run;

	if (!s || !*s) {
		buf_puts(b, s ? "." : "-");
		return;
	}
	for (p = run = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		int lone = p == s && !p[1] && (c == '-' || c == '.');
		if (tok_plain(c) && !lone)
			continue;
		buf_append(b, run, (size_t)(p - run));
		buf_printf(b, "%%%02X", c);
		run = p + 1;
	}
	buf_append(b, run, (size_t)(p - run));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 0 ok (*out malloc'd, or NULL for "-"), -1 malformed. */
static int tok_get(struct span t, char **out)
{
	struct buf b;
	size_t i;

	*out = NULL;
	if (t.n == 0 || t.n > 3 * SPOOL_FIELD_MAX)
		return -1;
	if (t.n == 1 && t.p[0] == '-')
		return 0;
	if (t.n == 1 && t.p[0] == '.') {
		*out = xstrdup("");
		return 0;
	}
	buf_init(&b);
	for (i = 0; i < t.n; i++) {
		int hi, lo;
		if (t.p[i] != '%') {
			if (!tok_plain((unsigned char)t.p[i]))
				goto bad;
			buf_append(&b, &t.p[i], 1);
			continue;
		}
		if (i + 2 >= t.n)
			goto bad;
		hi = hexval(t.p[i + 1]), lo = hexval(t.p[i + 2]);
		if (hi < 0 || lo < 0 || (hi | lo) == 0) /* %00 would cut the string */
			goto bad;
		buf_append(&b, &(char){(char)(hi << 4 | lo)}, 1);
		i += 2;
	}
	if (b.len > SPOOL_FIELD_MAX)
		goto bad;
	*out = b.data;
	return 0;
bad:
	buf_free(&b);
	return -1;
}

/* ---- lines and fields ---- */

/* The next '\n'-terminated line at *pos (without the '\n'); 0 at the end. */
static int next_line(const char **pos, const char *end, struct span *line)
{
	const char *nl;

	if (*pos >= end)
		return 0;
	nl = memchr(*pos, '\n', (size_t)(end - *pos));
	if (!nl)
		return 0;
	line->p = *pos;
	line->n = (size_t)(nl - *pos);
	*pos = nl + 1;
	return 1;
}

/* Splits at single spaces into at most max fields; the count, or -1 if
 * there are more fields than max or an empty one. */
static int split(struct span line, struct span *f, int max)
{
	const char *p = line.p, *end = line.p + line.n;
	int n = 0;

	for (;;) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *stop = sp ? sp : end;
		if (n == max || stop == p)
			return -1;
		f[n].p = p, f[n].n = (size_t)(stop - p);
		n++;
		if (!sp)
			return n;
		p = sp + 1;
	}
}

static int span_is(struct span s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static int num_u64(struct span s, uint64_t *out)
{
	char tmp[24];

	if (s.n == 0 || s.n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s.p, s.n);
	tmp[s.n] = '\0';
	return parse_u64(tmp, out);
}

static int num_i64(struct span s, int64_t *out)
{
	uint64_t v;
	int neg = s.n > 1 && s.p[0] == '-';

	if (neg)
		s.p++, s.n--;
	/* "-9223372036854775808" is INT64_MIN: written by "%lld", so read too */
	if (num_u64(s, &v) < 0 || v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return -1;
	if (neg)
		*out = v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

static int num_u32(struct span s, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (num_u64(s, &v) < 0 || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* A name from a table of names, by index. */
static int name_get(struct span s, const char *const *names, int n, int *out)
{
	for (int i = 0; i < n; i++)
		if (span_is(s, names[i]))
			return *out = i, 0;
	return -1;
}

static const char *const state_names[] = {"pending", "delivered", "bounced", "deferred"};
static const char *const body_names[] = {"7bit", "8bitmime"};
static const char *const ret_names[] = {"-", "full", "hdrs"};

const char *spool_state_name(enum rcpt_state s)
{
	return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "?";
}

const char *rcpt_state_shown(const struct rcpt *r)
{
	if (rcpt_is_held(r))
		return "held";
	if (r->deleted && (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED))
		return "deleted";
	return spool_state_name(r->state);
}

/* ---- the envelope record: one "key value" line per field, in this
 * table's order, then "rcpts N", N "rcpt" lines and "end CHECKSUM". ---- */

typedef int (*field_get)(struct envelope *e, struct span v);
typedef void (*field_put)(const struct envelope *e, struct buf *b);

static int get_created(struct envelope *e, struct span v)
{
	return num_i64(v, &e->created);
}
static int get_size(struct envelope *e, struct span v)
{
	return num_u64(v, &e->size);
}
static int get_from(struct envelope *e, struct span v)
{
	return tok_get(v, &e->mail_from);
}
static int get_account(struct envelope *e, struct span v)
{
	return tok_get(v, &e->account);
}
static int get_ip(struct envelope *e, struct span v)
{
	return tok_get(v, &e->client_ip);
}
static int get_helo(struct envelope *e, struct span v)
{
	return tok_get(v, &e->helo);
}
static int get_envid(struct envelope *e, struct span v)
{
	return tok_get(v, &e->envid);
}

static int get_body(struct envelope *e, struct span v)
{
	int i;

	if (name_get(v, body_names, (int)ARRAY_LEN(body_names), &i) < 0)
		return -1;
	e->body = (enum body_type)i;
	return 0;
}

static int get_utf8(struct envelope *e, struct span v)
{
	uint32_t u;

	if (num_u32(v, 1, &u) < 0)
		return -1;
	e->smtputf8 = (int)u;
	return 0;
}

static int get_ret(struct envelope *e, struct span v)
{
	int i;

	if (name_get(v, ret_names, (int)ARRAY_LEN(ret_names), &i) < 0)
		return -1;
	e->ret = (enum dsn_ret)i;
	return 0;
}

static void put_created(const struct envelope *e, struct buf *b)
{
	buf_printf(b, "%lld", (long long)e->created);
}
static void put_size(const struct envelope *e, struct buf *b)
{
	buf_printf(b, "%llu", (unsigned long long)e->size);
}
static void put_from(const struct envelope *e, struct buf *b)
{
	tok_put(b, e->mail_from ? e->mail_from : "");
}
static void put_account(const struct envelope *e, struct buf *b)
{
	tok_put(b, e->account);
}
static void put_ip(const struct envelope *e, struct buf *b)
{
	tok_put(b, e->client_ip);
}
static void put_helo(const struct envelope *e, struct buf *b)
{
	tok_put(b, e->helo);
}
static void put_envid(const struct envelope *e, struct buf *b)
{
	tok_put(b, e->envid);
}
static void put_body(const struct envelope *e, struct buf *b)
{
	buf_puts(b, body_names[e->body == BODY_8BITMIME]);
}
static void put_utf8(const struct envelope *e, struct buf *b)
{
	buf_puts(b, e->smtputf8 ? "1" : "0");
}

static void put_ret(const struct envelope *e, struct buf *b)
{
	buf_puts(b, (unsigned)e->ret < ARRAY_LEN(ret_names) ? ret_names[e->ret] : "-");
}

static const struct env_field {
	const char *key;
	field_get get;
	field_put put;
} env_fields[] = {
    {"created", get_created, put_created},
    {"size", get_size, put_size},
    {"from", get_from, put_from},
    {"account", get_account, put_account},
    {"client_ip", get_ip, put_ip},
    {"helo", get_helo, put_helo},
    {"body", get_body, put_body},
    {"smtputf8", get_utf8, put_utf8},
    {"ret", get_ret, put_ret},
    {"envid", get_envid, put_envid},
};

#define ENV_HEAD    "PHENV 1"
#define ENV_HEAD_V2 "PHENV 2" /* version 1, and a "requiretls" line after envid */

static int too_long(const char *s)
{
	return s && strlen(s) > SPOOL_FIELD_MAX;
}

/* A reply longer than the limit is cut: it is a diagnostic, and a remote
 * server must not be able to make a record unloadable. */
static void reply_put(struct buf *b, const char *s)
{
	char *cut;

	if (!s || strlen(s) <= SPOOL_FIELD_MAX) {
		tok_put(b, s);
		return;
	}
	cut = xstrndup(s, SPOOL_FIELD_MAX);
	tok_put(b, cut);
	free(cut);
}

static void rcpt_put(struct buf *b, const struct rcpt *r)
{
	buf_puts(b, "rcpt ");
	tok_put(b, r->addr ? r->addr : "");
	buf_puts(b, " ");
	tok_put(b, r->orcpt);
	buf_printf(b, " %u %s %u %lld ", r->notify & 0xFF, spool_state_name(r->state),
	           (unsigned)r->attempts, (long long)r->next_attempt);
	reply_put(b, r->last_reply);
	buf_puts(b, "\n");
}

/* What the decoder would refuse, refused before anything is written. */
static int env_check_lengths(const struct envelope *e, char **reason)
{
	size_t i;

	if (!e->account)
		return *reason = xstrdup("envelope without account"), -1;
	if (e->n_rcpts > SPOOL_RCPT_MAX)
		return *reason = xasprintf("%zu recipients (limit %u)", e->n_rcpts, SPOOL_RCPT_MAX),
		       -1;
	if (too_long(e->mail_from) || too_long(e->account) || too_long(e->client_ip) ||
	    too_long(e->helo) || too_long(e->envid))
		return *reason = xstrdup("envelope field too long"), -1;
	for (i = 0; i < e->n_rcpts; i++)
		if (too_long(e->rcpts[i].addr) || too_long(e->rcpts[i].orcpt))
			return *reason = xasprintf("recipient %zu too long", i), -1;
	return 0;
}

int spool_env_encode(const struct envelope *e, const char *id, uint64_t size, struct buf *out,
                     char **reason)
{
	char hex[SPOOL_CHECK_HEX + 1];
	struct envelope tmp = *e;
	size_t i, start = out->len;

	if (env_check_lengths(e, reason) < 0)
		return -1;
	tmp.size = size;
	/* a message without REQUIRETLS keeps version 1, which every reader knows */
	buf_printf(out, "%s\nid %s\n", e->requiretls ? ENV_HEAD_V2 : ENV_HEAD, id);
	for (i = 0; i < ARRAY_LEN(env_fields); i++) {
		buf_printf(out, "%s ", env_fields[i].key);
		env_fields[i].put(&tmp, out);
		buf_puts(out, "\n");
	}
	if (e->requiretls)
		buf_puts(out, "requiretls 1\n");
	buf_printf(out, "rcpts %zu\n", e->n_rcpts);
	for (i = 0; i < e->n_rcpts; i++)
		rcpt_put(out, &e->rcpts[i]);
	check_hex(out->data + start, out->len - start, hex);
	buf_printf(out, "end %s\n", hex);
	return 0;
}

static int rcpt_get(struct span line, struct rcpt *r)
{
	struct span f[8];
	uint32_t notify;
	int st;

	if (split(line, f, 8) != 8 || !span_is(f[0], "rcpt"))
		return -1;
	if (tok_get(f[1], &r->addr) < 0 || !r->addr || tok_get(f[2], &r->orcpt) < 0)
		return -1;
	if (num_u32(f[3], 0xFF, &notify) < 0 ||
	    name_get(f[4], state_names, (int)ARRAY_LEN(state_names), &st) < 0)
		return -1;
	r->notify = notify;
	r->state = (enum rcpt_state)st;
	if (num_u32(f[5], UINT32_MAX, &r->attempts) < 0 || num_i64(f[6], &r->next_attempt) < 0)
		return -1;
	return tok_get(f[7], &r->last_reply);
}

/* "key value" with the expected key. */
static int field_line(const char **pos, const char *end, const char *key, struct span *v)
{
	struct span line, f[2];

	if (!next_line(pos, end, &line) || split(line, f, 2) != 2 || !span_is(f[0], key))
		return -1;
	*v = f[1];
	return 0;
}

/* A file copied or renamed under another ID must not pass for it: the
 * record names its own ID. */
static int env_fields_get(const char **pos, const char *end, const char *id, struct envelope *e,
                          char **reason)
{
	struct span v;
	size_t i;
	int v2;

	if (!next_line(pos, end, &v) || (!span_is(v, ENV_HEAD) && !span_is(v, ENV_HEAD_V2)))
		return *reason = xstrdup("unknown envelope record version"), -1;
	v2 = span_is(v, ENV_HEAD_V2);
	if (field_line(pos, end, "id", &v) < 0 || !span_is(v, id))
		return *reason = xstrdup("envelope ID does not match the file name"), -1;
	memcpy(e->id, id, ID_LEN + 1);
	for (i = 0; i < ARRAY_LEN(env_fields); i++)
		if (field_line(pos, end, env_fields[i].key, &v) < 0 || env_fields[i].get(e, v) < 0)
			return *reason =
			           xasprintf("malformed envelope field %s", env_fields[i].key),
			       -1;
	if (v2 && (field_line(pos, end, "requiretls", &v) < 0 || !span_is(v, "1")))
		return *reason = xstrdup("malformed envelope field requiretls"), -1;
	e->requiretls = v2;
	if (!e->mail_from || !e->account)
		return *reason = xstrdup("envelope without sender or account"), -1;
	return 0;
}

/* The recipient count is bounded twice: by the header's count and by the
 * record's length (a rcpt line is at least 20 bytes), so a damaged count
 * cannot make us allocate more than the record itself. */
static int env_rcpts_get(const char **pos, const char *end, uint32_t n_hdr, struct envelope *e)
{
	struct span v, line;
	uint32_t n;

	if (field_line(pos, end, "rcpts", &v) < 0 || num_u32(v, SPOOL_RCPT_MAX, &n) < 0)
		return -1;
	if (n != n_hdr || n > (size_t)(end - *pos) / 20)
		return -1;
	e->rcpts = xcalloc(n ? n : 1, sizeof(*e->rcpts));
	for (e->n_rcpts = 0; e->n_rcpts < n; e->n_rcpts++)
		if (!next_line(pos, end, &line) || rcpt_get(line, &e->rcpts[e->n_rcpts]) < 0) {
			e->n_rcpts++; /* envelope_free() frees what it got */
			return -1;
		}
	return 0;
}

/* The "end CHECKSUM" line must close the record; *body_end is where the
 * checksummed part stops. */
static int env_trailer(const char *p, size_t n, size_t *body_end)
{
	const char *last;
	struct span line, f[2];

	if (n < 2 || p[n - 1] != '\n')
		return -1;
	last = memrchr(p, '\n', n - 1);
	*body_end = last ? (size_t)(last - p) + 1 : 0;
	line.p = p + *body_end, line.n = n - 1 - *body_end;
	if (split(line, f, 2) != 2 || !span_is(f[0], "end"))
		return -1;
	return check_ok(p, *body_end, f[1]) ? 0 : -1;
}

int spool_env_decode(const char *p, size_t n, const char *id, uint32_t n_rcpts,
                     struct envelope **out, char **reason)
{
	struct envelope *e;
	const char *pos = p, *end;
	size_t body_end;

	if (env_trailer(p, n, &body_end) < 0)
		return *reason = xstrdup("bad envelope checksum"), -1;
	end = p + body_end;
	e = xcalloc(1, sizeof(*e));
	*reason = NULL;
	if (env_fields_get(&pos, end, id, e, reason) < 0 ||
	    env_rcpts_get(&pos, end, n_rcpts, e) < 0 || pos != end) {
		envelope_free(e);
		if (!*reason)
			*reason = xstrdup("malformed envelope record (recipients)");
		return -1;
	}
	*out = e;
	return 0;
}

void envelope_free(struct envelope *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->n_rcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].last_reply);
	}
	free(e->rcpts);
	free(e->mail_from);
	free(e->account);
	free(e->client_ip);
	free(e->helo);
	free(e->envid);
	free(e);
}

/* ---- recipient state records: "R IDX STATE ATTEMPTS NEXT REPLY CHECK".
 * Each is written with a '\n' before it as well as after: a torn record
 * left by a crash is then closed off by the next one instead of swallowing
 * it. ---- */

void spool_rcpt_encode(size_t idx, const struct rcpt *r, struct buf *out)
{
	char hex[SPOOL_CHECK_HEX + 1];
	size_t start;

	buf_puts(out, "\n");
	start = out->len;
	buf_printf(out, "R %zu %s %u %lld ", idx, spool_state_name(r->state), (unsigned)r->attempts,
	           (long long)r->next_attempt);
	reply_put(out, r->last_reply);
	check_hex(out->data + start, out->len - start, hex);
	buf_printf(out, " %s\n", hex);
}

void spool_steering_encode(size_t idx, const struct rcpt *r, struct buf *out)
{
	char hex[SPOOL_CHECK_HEX + 1];
	size_t start;

	buf_puts(out, "\n");
	start = out->len;
	buf_printf(out, "S %zu %lld %llu %d", idx, (long long)r->held_since,
	           (unsigned long long)r->held_secs, r->deleted ? 1 : 0);
	check_hex(out->data + start, out->len - start, hex);
	buf_printf(out, " %s\n", hex);
}

/* "S IDX HELD_SINCE HELD_SECS DELETED CHECK": the steering fields only. */
static int steering_apply(struct span *f, struct envelope *e)
{
	uint64_t idx, secs;
	uint32_t deleted;
	int64_t since;

	if (num_u64(f[1], &idx) < 0 || idx >= e->n_rcpts || num_i64(f[2], &since) < 0 ||
	    since < 0 || num_u64(f[3], &secs) < 0 || num_u32(f[4], 1, &deleted) < 0)
		return -1;
	e->rcpts[idx].held_since = since;
	e->rcpts[idx].held_secs = secs;
	e->rcpts[idx].deleted = (int)deleted;
	return 0;
}

/* Applies one record line to e. 0 applied, -1 not a valid record (torn,
 * damaged or out of range): the caller skips it. */
int spool_rcpt_apply(const char *line, size_t n, struct envelope *e)
{
	struct span f[7], l = {line, n};
	uint32_t attempts;
	uint64_t idx;
	int64_t next;
	char *reply;
	int st, nf = split(l, f, 7);

	if (nf == 6 && span_is(f[0], "S"))
		return check_ok(line, (size_t)(f[5].p - 1 - line), f[5]) ? steering_apply(f, e)
		                                                         : -1;
	if (nf != 7 || !span_is(f[0], "R"))
		return -1;
	if (!check_ok(line, (size_t)(f[6].p - 1 - line), f[6]))
		return -1;
	if (num_u64(f[1], &idx) < 0 || idx >= e->n_rcpts ||
	    name_get(f[2], state_names, (int)ARRAY_LEN(state_names), &st) < 0 ||
	    num_u32(f[3], UINT32_MAX, &attempts) < 0 || num_i64(f[4], &next) < 0 ||
	    tok_get(f[5], &reply) < 0)
		return -1;
	e->rcpts[idx].state = (enum rcpt_state)st;
	e->rcpts[idx].attempts = attempts;
	e->rcpts[idx].next_attempt = next;
	free(e->rcpts[idx].last_reply);
	e->rcpts[idx].last_reply = reply;
	return 0;
}

/* ---- state records, streamed ---- */

void spool_records_init(struct spool_records *r, struct envelope *e)
{
	memset(r, 0, sizeof(*r));
	r->e = e;
	buf_init(&r->line);
}

static void line_done(struct spool_records *r)
{
	if (r->overlong)
		r->skipped++;
	else if (r->line.len > 0 && spool_rcpt_apply(r->line.data, r->line.len, r->e) == 0)
		r->applied++;
	else if (r->line.len > 0)
		r->skipped++;
	buf_reset(&r->line);
	r->overlong = 0;
}

void spool_records_feed(struct spool_records *r, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (!r->overlong && r->line.len + take > SPOOL_LINE_MAX)
			r->overlong = 1, buf_reset(&r->line);
		if (!r->overlong)
			buf_append(&r->line, p, take);
		if (nl)
			line_done(r);
		p += take + (nl ? 1 : 0), n -= take + (nl ? 1 : 0);
	}
}

int spool_records_torn(const struct spool_records *r)
{
	return r->line.len > 0 || r->overlong;
}

void spool_records_free(struct spool_records *r)
{
	buf_free(&r->line);
}

/* ---- the deletion journal: "deleted TIME ID IDX ADDR" ---- */

void spool_journal_encode(int64_t when, const char *id, size_t idx, const char *addr,
                          struct buf *out)
{
	buf_printf(out, "deleted %lld %s %zu ", (long long)when, id, idx);
	tok_put(out, addr ? addr : "");
	buf_puts(out, "\n");
}

int spool_journal_decode(const char *line, size_t n, struct spool_journal_line *out)
{
	struct span f[5], l = {line, n};
	uint64_t idx;

	memset(out, 0, sizeof(*out));
	if (split(l, f, 5) != 5 || !span_is(f[0], "deleted") || f[2].n != ID_LEN)
		return -1;
	memcpy(out->id, f[2].p, ID_LEN);
	if (!id_valid(out->id) || num_i64(f[1], &out->when) < 0 || num_u64(f[3], &idx) < 0 ||
	    idx >= SPOOL_RCPT_MAX || tok_get(f[4], &out->addr) < 0 || !out->addr) {
		free(out->addr);
		out->addr = NULL;
		return -1;
	}
	out->idx = (size_t)idx;
	return 0;
}
