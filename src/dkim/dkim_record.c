/*
 * dkim_record: key records, their zone-file form, and what DNS publishes
 * compared with a key. PURE (libc + util). The rules are in dkim_record.h.
 */
#include "dkim/dkim_record.h"

#include <string.h>

#include "util/util.h"

char *dkim_record_name(const char *selector, const char *domain)
{
	return xasprintf("%s._domainkey.%s", selector, domain);
}

char *dkim_record_text(enum dkim_algo a, const char *p)
{
	return xasprintf("v=DKIM1; k=%s; p=%s", dkim_algo_k(a), p);
}

char *dkim_record_zone_line(const char *selector, const char *domain, const char *text)
{
	struct buf b;
	size_t len = strlen(text), off = 0;

	buf_init(&b);
	buf_printf(&b, "%s._domainkey.%s. IN TXT", selector, domain);
	do {
		size_t k = len - off > DKIM_TXT_STRING_MAX ? DKIM_TXT_STRING_MAX : len - off;
		buf_puts(&b, " \"");
		buf_append(&b, text + off, k);
		buf_puts(&b, "\"");
		off += k;
	} while (off < len);
	return b.data;
}

const char *dkim_verdict_name(enum dkim_verdict v)
{
	switch (v) {
	case DKIM_VERDICT_MATCH:
		return "match";
	case DKIM_VERDICT_MISSING:
		return "missing";
	case DKIM_VERDICT_DIFFERENT:
		return "different";
	}
	return "unknown";
}

/* ---- tag lists (RFC 6376 3.2) ----------------------------------------------- */

struct tag {
	const char *name, *val;
	size_t name_len, val_len;
};

#define TAGS_MAX 16

static int is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum_(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* One tag-spec p[0..n): [FWS] name [FWS] "=" [FWS] value [FWS]. */
static int tag_spec(const char *p, size_t n, struct tag *t)
{
	size_t i = 0, j;

	while (i < n && is_fws(p[i]))
		i++;
	if (i == n || !is_alpha(p[i]))
		return -1;
	t->name = p + i;
	while (i < n && is_alnum_(p[i]))
		i++;
	t->name_len = (size_t)(p + i - t->name);
	while (i < n && is_fws(p[i]))
		i++;
	if (i == n || p[i++] != '=')
		return -1;
	while (i < n && is_fws(p[i]))
		i++;
	for (j = n; j > i && is_fws(p[j - 1]);)
		j--;
	for (size_t k = i; k < j; k++)
		if (!is_fws(p[k]) && ((unsigned char)p[k] < 0x21 || (unsigned char)p[k] > 0x7e))
			return -1;
	t->val = p + i;
	t->val_len = j - i;
	return 0;
}

static int tag_dup(const struct tag *t, size_t n, const struct tag *x)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].name_len == x->name_len && memcmp(t[i].name, x->name, x->name_len) == 0)
			return 1;
	return 0;
}

/* Splits s into tags; -1 when it is not a tag list. */
static int tag_list(const char *s, struct tag *t, size_t *n)
{
	const char *end = s + strlen(s);

	*n = 0;
	for (;;) {
		const char *semi = memchr(s, ';', (size_t)(end - s));
		const char *stop = semi ? semi : end;
		const char *q = s;

		while (q < stop && is_fws(*q))
			q++;
		if (q == stop && !semi && *n > 0)
			return 0; /* a trailing ';' */
		if (*n == TAGS_MAX || tag_spec(s, (size_t)(stop - s), &t[*n]) < 0 ||
		    tag_dup(t, *n, &t[*n]))
			return -1;
		(*n)++;
		if (!semi)
			return 0;
		s = semi + 1;
	}
}

static const struct tag *tag_get(const struct tag *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].name_len == strlen(name) && memcmp(t[i].name, name, t[i].name_len) == 0)
			return &t[i];
	return NULL;
}

/* ---- comparing ---------------------------------------------------------------- */

/* 1 if v[0..n), blanks left out, is exactly s. */
static int eq_noblanks(const char *v, size_t n, const char *s)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (is_fws(v[i]))
			continue;
		if (s[k] == '\0' || v[i] != s[k])
			return 0;
		k++;
	}
	return s[k] == '\0';
}

enum rec { REC_NONE, REC_MATCH, REC_DIFF };

/* One TXT record against the key. */
static enum rec record_check(const char *txt, enum dkim_algo a, const char *p, const char **why)
{
	struct tag t[TAGS_MAX];
	const struct tag *v, *k, *pk;
	size_t n;
	int looks = strncmp(txt, "v=DKIM1", 7) == 0;

	if (tag_list(txt, t, &n) < 0) {
		*why = "malformed record";
		return looks ? REC_DIFF : REC_NONE;
	}
	v = tag_get(t, n, "v");
	pk = tag_get(t, n, "p");
	if ((v && (v != &t[0] || !eq_noblanks(v->val, v->val_len, "DKIM1"))) || (!v && !pk))
		return REC_NONE;
	k = tag_get(t, n, "k");
	if (pk == NULL)
		*why = "malformed record";
	else if (!eq_noblanks(k ? k->val : "rsa", k ? k->val_len : 3, dkim_algo_k(a)))
		*why = "wrong key type";
	else if (eq_noblanks(pk->val, pk->val_len, ""))
		*why = "revoked (empty p=)";
	else if (!eq_noblanks(pk->val, pk->val_len, p))
		*why = "another public key";
	else
		return REC_MATCH;
	return REC_DIFF;
}

enum dkim_verdict dkim_record_compare(const char *const *txt, size_t n, enum dkim_algo a,
                                      const char *p, const char **why)
{
	const char *w = NULL, *first_diff = NULL;
	int matches = 0, diffs = 0;

	for (size_t i = 0; i < n; i++) {
		enum rec r = record_check(txt[i], a, p, &w);
		matches += r == REC_MATCH;
		if (r == REC_DIFF && diffs++ == 0)
			first_diff = w;
	}
	*why = first_diff;
	if (diffs)
		return DKIM_VERDICT_DIFFERENT;
	*why = NULL;
	return matches ? DKIM_VERDICT_MATCH : DKIM_VERDICT_MISSING;
}
