/*
 * libFuzzer target for smtpc/smtpc_reply and smtpc/smtpc_policy: the
 * input is a server's byte stream. It is parsed twice, once in one piece
 * and once cut into pieces of a size the input chooses (each piece an
 * exact-size heap copy, so AddressSanitizer catches a read one byte too
 * far), and both runs must give the same replies and end the same way.
 * Every reply goes through the EHLO keyword parser, the classification for
 * a stage the input chooses, the message checks and the diagnostic.
 *
 * Input layout: byte 0 picks the piece size (0: byte by byte), byte 1 the
 * stage (low 4 bits) and flags; with flag 0x80 every "\x01 n" in the rest
 * becomes n * 64 'x' bytes, so small inputs reach the 4 KiB line and
 * 64 KiB reply limits.
 *
 * Beyond "no crash", it checks what the session relies on: codes in
 * 200..599, at most SMTPC_REPLY_LINES_MAX lines and SMTPC_REPLY_TOTAL_MAX
 * octets, text without control bytes, an enhanced code of the reply's
 * class, and verdicts whose status class matches their action.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_policy.h"
#include "smtpc/smtpc_reply.h"
#include "fuzz_util.h"

#define EXPAND_MAX (256 * 1024)

struct run {
	struct smtpc_reply *r;
	size_t n, cap;
	enum smtpc_rstatus last;
	const char *error;
};

static void check_enhanced(const struct smtpc_reply *r)
{
	const char *e = r->enhanced;
	size_t dots = 0, i;

	if (!e[0])
		return;
	CHECK(e[0] == '0' + r->code / 100);
	for (i = 1; e[i]; i++) {
		CHECK(e[i] == '.' || (e[i] >= '0' && e[i] <= '9'));
		dots += e[i] == '.';
	}
	CHECK(dots == 2 && i <= 9);
}

static void check_reply(const struct smtpc_reply *r)
{
	size_t len, lines = 1, i;

	CHECK(r->code >= 200 && r->code <= 599);
	CHECK(r->n_lines >= 1 && r->n_lines <= SMTPC_REPLY_LINES_MAX);
	CHECK(r->text != NULL);
	len = strlen(r->text);
	CHECK(len < SMTPC_REPLY_TOTAL_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)r->text[i];
		CHECK(c == '\n' || (c >= 0x20 && c != 0x7f));
		lines += c == '\n';
	}
	CHECK(lines == r->n_lines);
	check_enhanced(r);
}

static void check_verdict(const struct smtpc_verdict *v)
{
	CHECK(v->diag != NULL);
	CHECK(strlen(v->diag) < SMTPC_DIAG_TEXT_MAX + 256);
	if (v->action == SMTPC_ACT_DEFER)
		CHECK(v->status[0] == '4');
	if (v->action == SMTPC_ACT_BOUNCE)
		CHECK(v->status[0] == '5');
	CHECK(!v->hard || v->action == SMTPC_ACT_BOUNCE);
}

/* The rest of the pipeline, for one reply. */
static void use_reply(const struct smtpc_reply *r, unsigned stage)
{
	static const struct smtpc_peer peer = {.host = "mx.example.com", .addr = "192.0.2.1"};
	struct smtpc_caps caps;
	struct smtpc_msg_needs m;
	struct smtpc_verdict v;
	char *d;

	check_reply(r);
	CHECK((smtpc_caps_parse(r, &caps) == 0) == (r->code / 100 == 2));
	CHECK(caps.size || caps.size_max == 0);
	CHECK(caps.auth || (!caps.auth_plain && !caps.auth_login));
	smtpc_judge_reply(&peer, (enum smtpc_stage)stage, r, &v);
	check_verdict(&v);
	smtpc_verdict_clear(&v);
	d = smtpc_diag_reply(&peer, (enum smtpc_stage)stage, r);
	free(d);
	/* any text as a failure's detail, any failure number */
	smtpc_judge_failure(&peer, (enum smtpc_stage)stage,
	                    (enum smtpc_failure)(r->code % (SMTPC_FAIL__COUNT + 1)), r->text, &v);
	CHECK(v.diag != NULL && v.action != SMTPC_ACT_OK);
	smtpc_verdict_clear(&v);
	memset(&m, 0, sizeof(m));
	m.size = (uint64_t)r->code * 1000;
	m.eightbit = r->code & 1;
	m.smtputf8 = (r->code >> 1) & 1;
	m.requiretls = (r->code >> 2) & 1;
	if (smtpc_judge_message(&peer, &caps, &m, r->code & 8, &v) < 0) {
		check_verdict(&v);
		CHECK(v.action == SMTPC_ACT_BOUNCE);
		smtpc_verdict_clear(&v);
	}
}

static void run_add(struct run *run, const struct smtpc_reply *r, unsigned stage)
{
	use_reply(r, stage);
	if (run->n == run->cap) {
		run->cap = run->cap ? 2 * run->cap : 16;
		run->r = realloc(run->r, run->cap * sizeof(*run->r));
		CHECK(run->r != NULL);
	}
	run->r[run->n++] = *r;
}

/* Feed in[0..len) in pieces of chunk bytes (len if 0), each piece an
 * exact-size heap copy. */
static void run_feed(struct run *run, const char *in, size_t len, size_t chunk, unsigned stage)
{
	struct smtpc_rparser p;
	size_t off = 0;

	memset(run, 0, sizeof(*run));
	run->last = SMTPC_R_NEED;
	smtpc_rparser_init(&p);
	while (off < len && run->last != SMTPC_R_ERROR) {
		size_t piece = chunk && len - off > chunk ? chunk : len - off, used = 0;
		char *copy = fuzz_copy(in + off, piece);

		while (used < piece) {
			struct smtpc_reply r;
			enum smtpc_rstatus st;
			size_t n = smtpc_rparser_feed(&p, copy + used, piece - used, &r, &st);

			CHECK(n <= piece - used);
			used += n;
			if (st == SMTPC_R_REPLY) {
				CHECK(smtpc_rparser_idle(&p));
				run_add(run, &r, stage);
				continue;
			}
			CHECK(st == SMTPC_R_ERROR || used == piece);
			run->last = st;
			if (st == SMTPC_R_ERROR)
				break;
		}
		free(copy);
		off += piece;
	}
	run->error = smtpc_rparser_error(&p);
	CHECK((run->last == SMTPC_R_ERROR) == (run->error != NULL));
	smtpc_rparser_free(&p);
}

static void runs_compare(const struct run *a, const struct run *b)
{
	size_t i;

	CHECK(a->n == b->n);
	CHECK(a->last == b->last);
	CHECK(a->error == b->error || (a->error && b->error && !strcmp(a->error, b->error)));
	for (i = 0; i < a->n; i++) {
		CHECK(a->r[i].code == b->r[i].code);
		CHECK(!strcmp(a->r[i].enhanced, b->r[i].enhanced));
		CHECK(!strcmp(a->r[i].text, b->r[i].text));
		CHECK(a->r[i].n_lines == b->r[i].n_lines);
	}
}

static void run_free(struct run *run)
{
	size_t i;

	for (i = 0; i < run->n; i++)
		smtpc_reply_clear(&run->r[i]);
	free(run->r);
}

/* "\x01 n" → n * 64 'x', up to EXPAND_MAX bytes in all. */
static char *expand(const uint8_t *in, size_t n, size_t *out_len)
{
	char *out = malloc(EXPAND_MAX);
	size_t o = 0, i;

	CHECK(out != NULL);
	for (i = 0; i < n && o < EXPAND_MAX; i++) {
		if (in[i] == 1 && i + 1 < n) {
			size_t k = (size_t)in[++i] * 64;
			if (k > EXPAND_MAX - o)
				k = EXPAND_MAX - o;
			memset(out + o, 'x', k);
			o += k;
		} else {
			out[o++] = (char)in[i];
		}
	}
	*out_len = o;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, pieces;
	size_t chunk, len;
	unsigned stage;
	char *in;

	if (size < 2)
		return 0;
	chunk = data[0];
	stage = data[1] & 0x0f;
	if (data[1] & 0x80) {
		in = expand(data + 2, size - 2, &len);
	} else {
		len = size - 2;
		in = fuzz_copy(data + 2, len);
	}
	run_feed(&whole, in, len, 0, stage);
	/* chunk 0 means byte by byte: the hardest split */
	run_feed(&pieces, in, len, chunk ? chunk : 1, stage);
	runs_compare(&whole, &pieces);
	run_free(&whole);
	run_free(&pieces);
	free(in);
	return 0;
}
