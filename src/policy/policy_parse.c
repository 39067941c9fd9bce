/*
 * policy_parse: MTA-STS and TLS-RPT records and policies, and the
 * TLS-Required header. PURE; the contract is in policy_parse.h.
 *
 * The records share one shape, "v=VERSION; key=value; ...": split_fields()
 * cuts it at ';' with the white space around each field trimmed, and each
 * format checks its own fields. Nothing here allocates except the mx
 * patterns a policy keeps.
 */
#include "policy/policy_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define TXT_FIELDS_MAX 16 /* fields read from one record; more is not a record we use */

struct span {
	const char *p;
	size_t n;
};

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static struct span trim(struct span s)
{
	while (s.n && is_wsp(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_wsp(s.p[s.n - 1]))
		s.n--;
	return s;
}

static int span_is(struct span s, const char *word)
{
	return s.n == strlen(word) && memcmp(s.p, word, s.n) == 0;
}

static int span_starts(struct span s, const char *prefix)
{
	size_t n = strlen(prefix);

	return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

/*
 * "a; b ;c;" -> a, b, c (white space around each trimmed). An empty field
 * is allowed only after the last separator. Returns the count, or -1 for
 * an empty record, an empty inner field or more than max fields.
 */
static int split_fields(const char *rec, struct span *f, int max)
{
	const char *p = rec;
	int n = 0;

	for (;;) {
		const char *semi = strchr(p, ';');
		struct span s = trim((struct span){p, semi ? (size_t)(semi - p) : strlen(p)});

		if (s.n == 0)
			return !semi && n > 0 ? n : -1;
		if (n == max)
			return -1;
		f[n++] = s;
		if (!semi)
			return n;
		p = semi + 1;
	}
}

/* A record "starts with" v=VERSION when its first field is exactly that. */
static int record_has_version(const char *rec, const char *version)
{
	struct span s = {rec, strcspn(rec, ";")};

	return span_is(trim(s), version);
}

/* RFC 8461 3.1 sts-ext-name / sts-ext-value, and the same shape in RFC 8460. */
static int extension_ok(struct span f)
{
	const char *eq = memchr(f.p, '=', f.n);
	size_t name = eq ? (size_t)(eq - f.p) : 0, i;

	if (!eq || name == 0 || name > 32 || !is_alnum(f.p[0]) || name + 1 == f.n)
		return 0;
	for (i = 1; i < name; i++)
		if (!is_alnum(f.p[i]) && f.p[i] != '_' && f.p[i] != '-' && f.p[i] != '.')
			return 0;
	for (i = name + 1; i < f.n; i++)
		if ((unsigned char)f.p[i] <= ' ' || f.p[i] == '=' || f.p[i] == 0x7f)
			return 0;
	return 1;
}

/* ---------- _mta-sts TXT ---------- */

static int sts_id_ok(struct span v)
{
	if (v.n == 0 || v.n > STS_ID_MAX)
		return 0;
	for (size_t i = 0; i < v.n; i++)
		if (!is_alnum(v.p[i]))
			return 0;
	return 1;
}

/* One record already known to start with v=STSv1: 1 and the id if valid. */
static int sts_txt_parse(const char *rec, char *id)
{
	struct span f[TXT_FIELDS_MAX];
	int n = split_fields(rec, f, TXT_FIELDS_MAX), have_id = 0;

	for (int i = 1; i < n; i++) {
		if (span_starts(f[i], "id=")) {
			struct span v = {f[i].p + 3, f[i].n - 3};
			if (have_id || !sts_id_ok(v))
				return 0;
			memcpy(id, v.p, v.n);
			id[v.n] = '\0';
			have_id = 1;
		} else if (!extension_ok(f[i])) {
			return 0;
		}
	}
	return n > 0 && have_id;
}

int sts_txt_pick(const char *const *records, size_t n, char *id)
{
	const char *rec = NULL;
	size_t found = 0;

	for (size_t i = 0; i < n; i++) {
		if (record_has_version(records[i], "v=STSv1")) {
			rec = records[i];
			found++;
		}
	}
	return found == 1 && sts_txt_parse(rec, id);
}

/* ---------- the policy body ---------- */

const char *sts_mode_name(enum sts_mode m)
{
	static const char *const names[] = {"none", "testing", "enforce"};
	return (unsigned)m < ARRAY_LEN(names) ? names[m] : "unknown";
}

void sts_policy_clear(struct sts_policy *p)
{
	for (size_t i = 0; i < p->n_mx; i++)
		free(p->mx[i]);
	memset(p, 0, sizeof(*p));
}

/* A host name, or "*." and one: labels of letters, digits, '-' and '_'. */
static int mx_pattern_ok(struct span v)
{
	size_t i = 0, label = 0;

	if (v.n >= 2 && v.p[0] == '*' && v.p[1] == '.')
		i = 2;
	if (v.n == i || v.n > 253)
		return 0;
	for (; i < v.n; i++) {
		char c = v.p[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (is_alnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

struct policy_seen {
	int version, mode, max_age;
};

static int set_max_age(struct sts_policy *p, struct span v)
{
	uint64_t age = 0;

	if (v.n == 0 || v.n > 10)
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		age = age * 10 + (uint64_t)(v.p[i] - '0');
	}
	if (age > STS_MAX_AGE_LIMIT)
		return -1;
	p->max_age = (uint32_t)age;
	return 0;
}

static int set_mode(struct sts_policy *p, struct span v)
{
	static const char *const names[] = {"none", "testing", "enforce"};

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (span_is(v, names[i])) {
			p->mode = (enum sts_mode)i;
			return 0;
		}
	}
	return -1;
}

static int add_mx(struct sts_policy *p, struct span v)
{
	char *mx;

	if (!mx_pattern_ok(v))
		return -1;
	if (p->n_mx == STS_MX_MAX)
		return 0; /* bounded: the first ones count */
	mx = xstrndup(v.p, v.n);
	ascii_lower(mx);
	p->mx[p->n_mx++] = mx;
	return 0;
}

/* One "key: value" line; 0 or -1 with *why. */
static int policy_line(struct span line, struct sts_policy *p, struct policy_seen *seen,
                       const char **why)
{
	const char *colon = memchr(line.p, ':', line.n);
	struct span key, val;

	if (!colon)
		return *why = "a line without ':'", -1;
	key = (struct span){line.p, (size_t)(colon - line.p)};
	val = trim((struct span){colon + 1, line.n - key.n - 1});
	if (span_is(key, "version")) {
		if (!seen->version++ && !span_is(val, "STSv1"))
			return *why = "version is not STSv1", -1;
	} else if (span_is(key, "mode")) {
		if (!seen->mode++ && set_mode(p, val) < 0)
			return *why = "mode is not enforce, testing or none", -1;
	} else if (span_is(key, "max_age")) {
		if (!seen->max_age++ && set_max_age(p, val) < 0)
			return *why = "max_age is not a number of seconds up to 31557600", -1;
	} else if (span_is(key, "mx")) {
		if (add_mx(p, val) < 0)
			return *why = "an mx value is not a host name or *.domain", -1;
	}
	return 0; /* unknown keys are ignored (RFC 8461 3.2) */
}

static int policy_lines(const char *text, size_t n, struct sts_policy *p, struct policy_seen *seen,
                        const char **why)
{
	const char *pos = text, *end = text + n;

	while (pos < end) {
		const char *nl = memchr(pos, '\n', (size_t)(end - pos));
		struct span line = {pos, nl ? (size_t)(nl - pos) : (size_t)(end - pos)};

		pos = nl ? nl + 1 : end;
		if (line.n && line.p[line.n - 1] == '\r')
			line.n--;
		if (memchr(line.p, '\0', line.n))
			return *why = "a NUL byte", -1;
		if (trim(line).n == 0)
			continue;
		if (policy_line(line, p, seen, why) < 0)
			return -1;
	}
	return 0;
}

int sts_policy_parse(const char *text, size_t n, struct sts_policy *p, const char **why)
{
	struct policy_seen seen = {0, 0, 0};

	memset(p, 0, sizeof(*p));
	*why = NULL;
	if (n > STS_POLICY_MAX)
		*why = "larger than 64 KiB";
	else if (policy_lines(text, n, p, &seen, why) < 0)
		;
	else if (!seen.version || !seen.mode || !seen.max_age)
		*why = "version, mode or max_age missing";
	else if (p->mode != STS_MODE_NONE && p->n_mx == 0)
		*why = "no mx in a policy that is not mode none";
	if (!*why)
		return 0;
	sts_policy_clear(p);
	return -1;
}

int sts_mx_match(const char *pattern, const char *host)
{
	const char *dot;

	if (pattern[0] != '*')
		return ascii_casecmp(pattern, host) == 0;
	/* "*.example.com": exactly one label in front of example.com */
	dot = strchr(host, '.');
	return dot && dot != host && pattern[1] == '.' && ascii_casecmp(pattern + 2, dot + 1) == 0;
}

int sts_policy_allows(const struct sts_policy *p, const char *host)
{
	for (size_t i = 0; i < p->n_mx; i++)
		if (sts_mx_match(p->mx[i], host))
			return 1;
	return 0;
}

/* ---------- _smtp._tls TXT ---------- */

/* One URI of a rua list; 1 when Posthorn can send to it. */
static int rua_take(struct span u, struct tlsrpt_rua *out)
{
	size_t i;

	if (u.n == 0 || u.n >= TLSRPT_RUA_LEN)
		return 0;
	for (i = 0; i < u.n; i++)
		if ((unsigned char)u.p[i] <= ' ' || (unsigned char)u.p[i] >= 0x7f)
			return 0;
	memcpy(out->uri, u.p, u.n);
	out->uri[u.n] = '\0';
	if (ascii_startswith(out->uri, "https://") && u.n > 8) {
		out->kind = TLSRPT_RUA_HTTPS;
		out->addr[0] = '\0';
		return 1;
	}
	if (!ascii_startswith(out->uri, "mailto:"))
		return 0;
	out->kind = TLSRPT_RUA_MAILTO;
	snprintf(out->addr, sizeof(out->addr), "%.*s", (int)strcspn(out->uri + 7, "?"),
	         out->uri + 7);
	/* an address of one '@' with text on both sides */
	return strchr(out->addr, '@') && strchr(out->addr, '@') == strrchr(out->addr, '@') &&
	       out->addr[0] != '@' && out->addr[strlen(out->addr) - 1] != '@';
}

static void rua_list(struct span v, struct tlsrpt_record *out)
{
	const char *p = v.p, *end = v.p + v.n;

	while (p < end && out->n_rua < TLSRPT_RUA_MAX) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		struct span u =
		    trim((struct span){p, comma ? (size_t)(comma - p) : (size_t)(end - p)});

		if (rua_take(u, &out->rua[out->n_rua]))
			out->n_rua++;
		p = comma ? comma + 1 : end;
	}
}

static int tlsrpt_txt_parse(const char *rec, struct tlsrpt_record *out)
{
	struct span f[TXT_FIELDS_MAX];
	int n = split_fields(rec, f, TXT_FIELDS_MAX), have_rua = 0;

	memset(out, 0, sizeof(*out));
	for (int i = 1; i < n; i++) {
		if (span_starts(f[i], "rua=")) {
			if (have_rua++)
				return 0;
			rua_list((struct span){f[i].p + 4, f[i].n - 4}, out);
		} else if (!extension_ok(f[i])) {
			return 0;
		}
	}
	return n > 0 && out->n_rua > 0;
}

int tlsrpt_txt_pick(const char *const *records, size_t n, struct tlsrpt_record *out)
{
	const char *rec = NULL;
	size_t found = 0;

	for (size_t i = 0; i < n; i++) {
		if (record_has_version(records[i], "v=TLSRPTv1")) {
			rec = records[i];
			found++;
		}
	}
	return found == 1 && tlsrpt_txt_parse(rec, out);
}

/* ---------- TLS-Required: No ---------- */

/* The field's value up to the end of the field (folded lines included),
 * checked to be "No" with white space around. */
static int value_is_no(const char *v, const char *end)
{
	int seen_no = 0;

	while (v < end) {
		if (*v == '\r' || *v == '\n' || is_wsp(*v)) {
			if (*v == '\n' && !(v + 1 < end && is_wsp(v[1])))
				break; /* the field ends: no folded line follows */
			v++;
			continue;
		}
		if (seen_no || end - v < 2 || ascii_ncasecmp(v, "no", 2) != 0)
			return 0;
		seen_no = 1;
		v += 2;
	}
	return seen_no;
}

int tls_required_no(const char *hdr, size_t n)
{
	static const char name[] = "TLS-Required";
	const char *pos = hdr, *end = hdr + n;

	while (pos < end) {
		const char *nl = memchr(pos, '\n', (size_t)(end - pos));
		const char *eol = nl ? nl : end, *p = pos + sizeof(name) - 1;

		if (eol == pos || (eol == pos + 1 && *pos == '\r'))
			return 0; /* the empty line: the headers end */
		if (eol - pos >= (long)sizeof(name) &&
		    ascii_ncasecmp(pos, name, sizeof(name) - 1) == 0) {
			while (p < eol && is_wsp(*p))
				p++;
			if (p < eol && *p == ':' && value_is_no(p + 1, end))
				return 1;
		}
		pos = nl ? nl + 1 : end;
	}
	return 0;
}
