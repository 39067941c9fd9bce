/*
 * smtp_parse: SMTP command lines, MAIL/RCPT arguments, BDAT sizes and SASL
 * PLAIN responses. PURE: libc and util only; no I/O, no allocation.
 *
 * Promises:
 * - Every function accepts any bytes and never reads outside what it is
 *   given: these run on text straight from the network (and the fuzzer).
 * - Addresses are checked against the RFC 5321 Mailbox grammar (RFC 6531
 *   UTF-8 only when the transaction allows it); what passes can be put in
 *   an envelope, a header or a log line without escaping CR, LF or NUL.
 * - Decoded ESMTP values (ENVID, ORCPT, AUTH) never contain control bytes,
 *   so they cannot inject header lines into a later DSN.
 */
#include "smtpd/smtp_parse.h"

#include <string.h>

#include "util/util.h"

/* The DSN NOTIFY bits are those of spool.h (DSN_NOTIFY_*); a PURE file may
 * not include it, so the header repeats them: pin the values here (the
 * unit test compares them with spool.h). */
_Static_assert(SMTP_NOTIFY_NEVER == 1 && SMTP_NOTIFY_SUCCESS == 2 && SMTP_NOTIFY_FAILURE == 4 &&
                   SMTP_NOTIFY_DELAY == 8,
               "SMTP_NOTIFY_* must equal spool.h DSN_NOTIFY_*");

/* RFC 5321 4.5.3.1: path with <> 256, local part 64, domain 255. */
#define PATH_MAX_LEN    256
#define MAILBOX_MAX_LEN (PATH_MAX_LEN - 2)
#define LOCAL_MAX_LEN   64
#define DOMAIN_MAX_LEN  255
#define LABEL_MAX_LEN   63
/* RFC 3461 4.4 and 4.2: ENVID at most 100 characters, ORCPT 500. */
#define ENVID_MAX_LEN 100
#define ORCPT_MAX_LEN 500

/* ---------- line scanner ---------- */

/* Content length of the line ending at the LF at buf[lf] (drops a CR). */
static size_t content_len(const char *buf, size_t lf)
{
	return lf > 0 && buf[lf - 1] == '\r' ? lf - 1 : lf;
}

/* Skipping the tail of an overlong line: drop up to and including its LF.
 * NEED with *consumed > 0 tells the caller to drop bytes and call again. */
static enum smtp_scan scan_skip(const char *buf, size_t len, int *in_overlong, size_t *consumed)
{
	const char *lf = memchr(buf, '\n', len);

	if (lf) {
		*in_overlong = 0;
		*consumed = (size_t)(lf - buf) + 1;
	} else {
		*consumed = len;
	}
	return SMTP_SCAN_NEED;
}

/* The line is over the limit: report it once. If its end is already here,
 * drop it whole; otherwise drop what we have and skip the rest later. */
static enum smtp_scan scan_too_long(const char *buf, size_t len, int *in_overlong, size_t *consumed)
{
	const char *lf = memchr(buf, '\n', len);

	if (lf) {
		*consumed = (size_t)(lf - buf) + 1;
	} else {
		*consumed = len;
		*in_overlong = 1;
	}
	return SMTP_SCAN_TOO_LONG;
}

enum smtp_scan smtp_scan_line(const char *buf, size_t len, size_t max, int *in_overlong,
                              size_t *line_len, size_t *consumed)
{
	/* max counts a CRLF; a bare-LF line gets the same content limit */
	size_t limit = max > 2 ? max - 2 : 0, window = len < max ? len : max;
	const char *lf;

	*line_len = 0;
	*consumed = 0;
	if (len == 0)
		return SMTP_SCAN_NEED;
	if (*in_overlong)
		return scan_skip(buf, len, in_overlong, consumed);
	lf = memchr(buf, '\n', window);
	if (!lf)
		return len >= max ? scan_too_long(buf, len, in_overlong, consumed) : SMTP_SCAN_NEED;
	if (content_len(buf, (size_t)(lf - buf)) > limit)
		return scan_too_long(buf, len, in_overlong, consumed);
	*line_len = content_len(buf, (size_t)(lf - buf));
	*consumed = (size_t)(lf - buf) + 1;
	return SMTP_SCAN_LINE;
}

/* ---------- command line ---------- */

struct verb_def {
	const char *name;
	enum smtp_verb verb;
	const char *prefix; /* required start of the argument, or NULL */
};

static const struct verb_def verbs[] = {
    {"HELO", SMTP_VERB_HELO, NULL},         {"EHLO", SMTP_VERB_EHLO, NULL},
    {"MAIL", SMTP_VERB_MAIL, "FROM:"},      {"RCPT", SMTP_VERB_RCPT, "TO:"},
    {"DATA", SMTP_VERB_DATA, NULL},         {"BDAT", SMTP_VERB_BDAT, NULL},
    {"RSET", SMTP_VERB_RSET, NULL},         {"NOOP", SMTP_VERB_NOOP, NULL},
    {"QUIT", SMTP_VERB_QUIT, NULL},         {"VRFY", SMTP_VERB_VRFY, NULL},
    {"EXPN", SMTP_VERB_EXPN, NULL},         {"HELP", SMTP_VERB_HELP, NULL},
    {"STARTTLS", SMTP_VERB_STARTTLS, NULL}, {"AUTH", SMTP_VERB_AUTH, NULL},
};

static const struct verb_def *verb_find(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(verbs); i++)
		if (strlen(verbs[i].name) == n && ascii_ncasecmp(s, verbs[i].name, n) == 0)
			return &verbs[i];
	return NULL;
}

static int is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static char *skip_sp(char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

int smtp_parse_cmd(char *line, size_t len, struct smtp_cmd *out)
{
	const struct verb_def *v;
	size_t i, vlen;
	char *rest;

	line[len] = '\0';
	out->verb = SMTP_VERB_UNKNOWN;
	out->arg = line + len;
	for (i = 0; i < len; i++)
		if (is_ctl((unsigned char)line[i]))
			return -1;
	/* Clients often send "DATA " or "RSET  ": trailing spaces mean nothing. */
	while (len > 0 && line[len - 1] == ' ')
		line[--len] = '\0';
	vlen = strcspn(line, " ");
	rest = skip_sp(line + vlen);
	v = verb_find(line, vlen);
	if (v)
		out->verb = v->verb;
	if (v && v->prefix) {
		/* "MAIL x" without FROM: gets an empty argument, which
		 * smtp_parse_mail/rcpt refuse as a syntax error. */
		if (!ascii_startswith(rest, v->prefix))
			return 0;
		rest = skip_sp(rest + strlen(v->prefix));
	}
	out->arg = rest;
	return 0;
}

/* ---------- UTF-8 and character classes ---------- */

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0.
 * RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0; /* also stops at the NUL */
	return n;
}

/* 1 if s[0..n) is valid UTF-8 (ASCII included). */
static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	size_t k;

	while (p < e) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		k = utf8_len(p);
		if (k == 0 || k > (size_t)(e - p))
			return 0;
		p += k;
	}
	return 1;
}

static int is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 atext. */
static int is_atext(unsigned char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Length of one character of class ok() at p, or a UTF-8 sequence when
 * allowed; 0 if neither. Stops at the end of the string. */
static size_t char_len(const char *p, const char *end, int (*ok)(unsigned char), int utf8)
{
	unsigned char c = (unsigned char)*p;
	size_t k;

	if (c < 0x80)
		return ok(c) ? 1 : 0;
	if (!utf8)
		return 0;
	k = utf8_len((const unsigned char *)p);
	return k && k <= (size_t)(end - p) ? k : 0;
}

/* ---------- local part ---------- */

/* RFC 5321 Dot-string: atoms separated by single dots. */
static int dot_string_ok(const char *p, const char *end, int utf8)
{
	int atom = 0;
	size_t k;

	for (; p < end; p += k) {
		if (*p == '.') {
			if (!atom)
				return 0;
			atom = 0;
			k = 1;
			continue;
		}
		if ((k = char_len(p, end, is_atext, utf8)) == 0)
			return 0;
		atom = 1;
	}
	return atom;
}

/* RFC 5321 qtextSMTP: printable ASCII but '"' and '\'. */
static int is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* RFC 5321 Quoted-string spanning exactly p..end. */
static int quoted_string_ok(const char *p, const char *end, int utf8)
{
	size_t k;

	if (end - p < 2 || *p != '"' || end[-1] != '"')
		return 0;
	for (p++, end--; p < end; p += k) {
		if (*p == '\\') {
			/* quoted-pairSMTP: backslash and a printable ASCII */
			if (end - p < 2 || p[1] < 32 || p[1] > 126)
				return 0;
			k = 2;
		} else if ((k = char_len(p, end, is_qtext, utf8)) == 0) {
			return 0;
		}
	}
	return 1;
}

static int local_part_ok(const char *p, const char *end, int utf8)
{
	if (end - p < 1 || end - p > LOCAL_MAX_LEN)
		return 0;
	if (*p == '"')
		return quoted_string_ok(p, end, utf8);
	return dot_string_ok(p, end, utf8);
}

/* ---------- domain ---------- */

static int is_ldh(unsigned char c)
{
	return is_alnum(c) || c == '-';
}

/* sub-domain: letters, digits, hyphens (U-label characters when utf8),
 * no hyphen at either end, 1..63 octets. */
static int label_ok(const char *p, const char *end, int utf8)
{
	size_t k;

	if (end - p < 1 || end - p > LABEL_MAX_LEN || *p == '-' || end[-1] == '-')
		return 0;
	for (; p < end; p += k)
		if ((k = char_len(p, end, is_ldh, utf8)) == 0)
			return 0;
	return 1;
}

static int domain_name_ok(const char *p, const char *end, int utf8)
{
	const char *dot;

	for (;;) {
		dot = memchr(p, '.', (size_t)(end - p));
		if (!dot)
			return label_ok(p, end, utf8);
		if (!label_ok(p, dot, utf8))
			return 0;
		p = dot + 1;
	}
}

/* IPv4-address-literal: four Snum of 1-3 digits, each <= 255. */
static int ipv4_ok(const char *p, const char *end)
{
	int part, digits, v;

	for (part = 0; part < 4; part++) {
		if (part > 0 && (p >= end || *p++ != '.'))
			return 0;
		/* a fourth digit stops the loop and fails below */
		for (digits = 0, v = 0; p < end && *p >= '0' && *p <= '9' && digits < 4;
		     p++, digits++)
			v = v * 10 + (*p - '0');
		if (digits < 1 || digits > 3 || v > 255)
			return 0;
	}
	return p == end;
}

/* Groups of IPv6-hex separated by single colons, p..end possibly empty.
 * The last may be an IPv4 literal (two groups) when v4_last. Returns the
 * number of 16-bit groups, or -1. */
static int ipv6_groups(const char *p, const char *end, int v4_last)
{
	const char *c;
	int n = 0;

	if (p == end)
		return 0;
	for (;;) {
		c = memchr(p, ':', (size_t)(end - p));
		if (!c && v4_last && memchr(p, '.', (size_t)(end - p)))
			return ipv4_ok(p, end) ? n + 2 : -1;
		if (!c)
			c = end;
		if (c - p < 1 || c - p > 4)
			return -1;
		for (; p < c; p++)
			if (!is_hex((unsigned char)*p))
				return -1;
		n++;
		if (c == end)
			return n;
		p = c + 1;
	}
}

/* RFC 5321 IPv6-addr: full (8 groups) or compressed with one "::" and at
 * most 6 groups besides it (IPv4 tail counted as two). */
static int ipv6_ok(const char *p, const char *end)
{
	const char *dc = NULL, *q;
	int left, right;

	for (q = p; q + 1 < end; q++)
		if (q[0] == ':' && q[1] == ':') {
			dc = q;
			break;
		}
	if (!dc)
		return ipv6_groups(p, end, 1) == 8;
	left = ipv6_groups(p, dc, 0);
	right = ipv6_groups(dc + 2, end, 1);
	return left >= 0 && right >= 0 && left + right <= 6;
}

/* address-literal: [1.2.3.4] or [IPv6:...]; general literals are refused
 * (no mail can be routed to them). */
static int literal_ok(const char *p, const char *end)
{
	if (end - p < 3 || *p != '[' || end[-1] != ']')
		return 0;
	p++;
	end--;
	if (end - p > 5 && ascii_ncasecmp(p, "IPv6:", 5) == 0)
		return ipv6_ok(p + 5, end);
	return ipv4_ok(p, end);
}

static int domain_ok(const char *p, const char *end, int utf8)
{
	if (end - p < 1 || end - p > DOMAIN_MAX_LEN)
		return 0;
	if (*p == '[')
		return literal_ok(p, end);
	return domain_name_ok(p, end, utf8);
}

int smtp_helo_valid(const char *name)
{
	return domain_ok(name, name + strlen(name), 0);
}

/* ---------- addresses ---------- */

int smtp_address_valid(const char *addr, int utf8)
{
	size_t n = strlen(addr);
	const char *at;

	if (n < 3 || n > MAILBOX_MAX_LEN)
		return 0;
	/* A domain never holds '@', so the last one separates the parts even
	 * when a quoted local part contains another. */
	at = strrchr(addr, '@');
	return at && local_part_ok(addr, at, utf8) && domain_ok(at + 1, addr + n, utf8);
}

const char *smtp_address_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr + strlen(addr);
}

static int has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* Valid mailbox → OK; valid only as UTF-8 while UTF-8 is not allowed →
 * NEEDS_UTF8 (a different reply: the client may retry with SMTPUTF8). */
static enum smtp_arg_err address_check(const char *addr, int utf8)
{
	if (!smtp_address_valid(addr, 1))
		return SMTP_ARG_BAD_ADDRESS;
	if (!utf8 && has_8bit(addr))
		return SMTP_ARG_NEEDS_UTF8;
	return SMTP_ARG_OK;
}

/* Finds the '>' that closes the path starting at p ('<'), skipping over a
 * quoted local part (which may contain '>'). NULL if there is none. */
static char *path_close(char *p)
{
	int quoted = 0;

	for (p++; *p; p++) {
		if (quoted && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p;
	}
	return NULL;
}

/* A-d-l (source route) "@a,@b:" before the mailbox: checked, then dropped
 * (RFC 5321 C: servers must accept and ignore it). Returns the mailbox
 * start, or NULL if the route is malformed. */
static char *skip_route(char *p, char *end)
{
	char *q;

	if (*p != '@')
		return p;
	for (;;) {
		p++;
		q = p;
		while (q < end && *q != ',' && *q != ':')
			q++;
		/* an IPv6 literal holds colons: take the whole [...] */
		if (*p == '[') {
			q = memchr(p, ']', (size_t)(end - p));
			q = q ? q + 1 : end;
		}
		if (q >= end || !domain_ok(p, q, 1))
			return NULL;
		if (*q == ':')
			return q + 1;
		if (*q != ',' || q[1] != '@')
			return NULL;
		p = q + 1;
	}
}

/* Splits "<path> params" in place: *addr is the mailbox (NUL-terminated),
 * *params what follows. */
static enum smtp_arg_err split_path(char *arg, char **addr, char **params)
{
	char *open = skip_sp(arg), *close, *box;

	if (*open != '<' || !(close = path_close(open)))
		return SMTP_ARG_SYNTAX;
	if (close[1] != '\0' && close[1] != ' ')
		return SMTP_ARG_SYNTAX;
	if (close - open + 1 > PATH_MAX_LEN)
		return SMTP_ARG_BAD_ADDRESS;
	if (!(box = skip_route(open + 1, close)))
		return SMTP_ARG_SYNTAX;
	if (box != open + 1 && box == close)
		return SMTP_ARG_SYNTAX; /* "<@a:>": a route to nobody */
	*params = close[1] ? close + 2 : close + 1;
	*close = '\0';
	*addr = box;
	return SMTP_ARG_OK;
}

/* ---------- ESMTP parameters ---------- */

/* Decodes RFC 3461 xtext in place ("+2B" → '+'). Refuses malformed input
 * and decoded control bytes; 8-bit only as valid UTF-8 when utf8. */
static int xtext_decode(char *s, int utf8)
{
	char *r = s, *w = s, *start = s;
	unsigned char c;
	int hi, lo;

	for (; *r; r++) {
		c = (unsigned char)*r;
		if (c == '+') {
			if (!is_hex((unsigned char)r[1]) || !is_hex((unsigned char)r[2]))
				return -1;
			hi = r[1] <= '9' ? r[1] - '0' : (r[1] | 0x20) - 'a' + 10;
			lo = r[2] <= '9' ? r[2] - '0' : (r[2] | 0x20) - 'a' + 10;
			c = (unsigned char)(hi << 4 | lo);
			r += 2;
		}
		if (is_ctl(c) || (c >= 0x80 && !utf8))
			return -1;
		*w++ = (char)c;
	}
	*w = '\0';
	return w > start && utf8_valid(start, (size_t)(w - start)) ? 0 : -1;
}

/* esmtp-keyword: (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int keyword_ok(const char *k)
{
	if (!is_alnum((unsigned char)*k))
		return 0;
	for (k++; *k; k++)
		if (!is_ldh((unsigned char)*k))
			return 0;
	return 1;
}

/* esmtp-value: 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531) when utf8. */
static int value_ok(const char *v, int utf8)
{
	const char *p;

	if (!*v)
		return 0;
	for (p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c < 33 || c == '=' || c > 126) && !(c >= 0x80 && utf8))
			return 0;
	}
	return utf8_valid(v, strlen(v));
}

struct esmtp_param {
	const char *key;
	int takes_value;
	enum smtp_arg_err (*apply)(void *args, char *value, int utf8);
};

/* Value matched against a list of words, case-insensitively: 1-based index
 * of the match, or 0. */
static int word_index(const char *v, const char *const *words, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (ascii_casecmp(v, words[i]) == 0)
			return i + 1;
	return 0;
}

static enum smtp_arg_err mail_size(void *args, char *v, int utf8)
{
	struct smtp_mail_args *m = args;

	(void)utf8;
	if (parse_u64(v, &m->size) < 0)
		return SMTP_ARG_BAD_PARAM;
	m->has_size = 1;
	return SMTP_ARG_OK;
}

static enum smtp_arg_err mail_body(void *args, char *v, int utf8)
{
	static const char *const words[] = {"7BIT", "8BITMIME"};
	struct smtp_mail_args *m = args;

	(void)utf8;
	m->body = word_index(v, words, 2);
	return m->body ? SMTP_ARG_OK : SMTP_ARG_BAD_PARAM;
}

static enum smtp_arg_err mail_smtputf8(void *args, char *v, int utf8)
{
	(void)v;
	(void)utf8;
	((struct smtp_mail_args *)args)->smtputf8 = 1;
	return SMTP_ARG_OK;
}

static enum smtp_arg_err mail_ret(void *args, char *v, int utf8)
{
	static const char *const words[] = {"FULL", "HDRS"};
	struct smtp_mail_args *m = args;

	(void)utf8;
	m->ret = word_index(v, words, 2);
	return m->ret ? SMTP_ARG_OK : SMTP_ARG_BAD_PARAM;
}

static enum smtp_arg_err mail_envid(void *args, char *v, int utf8)
{
	struct smtp_mail_args *m = args;

	(void)utf8;
	if (strlen(v) > ENVID_MAX_LEN || xtext_decode(v, 0) < 0)
		return SMTP_ARG_BAD_PARAM;
	m->envid = v;
	return SMTP_ARG_OK;
}

/* RFC 4954 5: AUTH=<mailbox> in xtext, or "<>". Kept only for logs. */
static enum smtp_arg_err mail_auth(void *args, char *v, int utf8)
{
	struct smtp_mail_args *m = args;

	(void)utf8;
	if (xtext_decode(v, 0) < 0)
		return SMTP_ARG_BAD_PARAM;
	m->auth = v;
	return SMTP_ARG_OK;
}

/* RFC 8689 3: no value. Whether the session may take it (TLS) is the
 * MAIL handler's call. */
static enum smtp_arg_err mail_requiretls(void *args, char *v, int utf8)
{
	(void)v;
	(void)utf8;
	((struct smtp_mail_args *)args)->requiretls = 1;
	return SMTP_ARG_OK;
}

static const struct esmtp_param mail_params[] = {
    {"SIZE", 1, mail_size},
    {"BODY", 1, mail_body},
    {"SMTPUTF8", 0, mail_smtputf8},
    {"RET", 1, mail_ret},
    {"ENVID", 1, mail_envid},
    {"AUTH", 1, mail_auth},
    {"REQUIRETLS", 0, mail_requiretls},
};

/* NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static enum smtp_arg_err rcpt_notify(void *args, char *v, int utf8)
{
	static const char *const words[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
	struct smtp_rcpt_args *r = args;
	char *item, *comma;
	int i;

	(void)utf8;
	for (item = v;; item = comma + 1) {
		comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		if (!(i = word_index(item, words, 4)))
			return SMTP_ARG_BAD_PARAM;
		r->notify |= 1u << (i - 1);
		if (comma)
			*comma = ',';
		else
			break;
	}
	if ((r->notify & SMTP_NOTIFY_NEVER) && r->notify != SMTP_NOTIFY_NEVER)
		return SMTP_ARG_BAD_PARAM;
	return SMTP_ARG_OK;
}

/* ORCPT=addr-type;xtext with addr-type rfc822 or utf-8 (RFC 3461 4.2,
 * RFC 6533). Only the address is decoded, so an encoded ';' stays data. */
static enum smtp_arg_err rcpt_orcpt(void *args, char *v, int utf8)
{
	static const char *const types[] = {"rfc822", "utf-8"};
	struct smtp_rcpt_args *r = args;
	char *semi = strchr(v, ';');
	int type;

	if (!semi || strlen(v) > ORCPT_MAX_LEN)
		return SMTP_ARG_BAD_PARAM;
	*semi = '\0';
	type = word_index(v, types, 2);
	*semi = ';';
	/* rfc822 addresses are ASCII; utf-8 ones only in an SMTPUTF8 mail */
	if (!type || xtext_decode(semi + 1, type == 2 && utf8) < 0)
		return SMTP_ARG_BAD_PARAM;
	r->orcpt = v;
	return SMTP_ARG_OK;
}

static const struct esmtp_param rcpt_params[] = {
    {"NOTIFY", 1, rcpt_notify},
    {"ORCPT", 1, rcpt_orcpt},
};

static const struct esmtp_param *param_find(const struct esmtp_param *tab, size_t n,
                                            const char *key, size_t *idx)
{
	for (*idx = 0; *idx < n; (*idx)++)
		if (ascii_casecmp(key, tab[*idx].key) == 0)
			return &tab[*idx];
	return NULL;
}

/* One "KEY[=VALUE]" token; *seen catches duplicates. */
static enum smtp_arg_err param_one(char *tok, const struct esmtp_param *tab, size_t n,
                                   unsigned *seen, void *args, int utf8)
{
	const struct esmtp_param *p;
	char *val = strchr(tok, '=');
	size_t idx;

	if (val)
		*val++ = '\0';
	if (!keyword_ok(tok))
		return SMTP_ARG_SYNTAX;
	if (!(p = param_find(tab, n, tok, &idx)))
		return SMTP_ARG_UNKNOWN_PARAM;
	if (*seen & (1u << idx))
		return SMTP_ARG_BAD_PARAM;
	*seen |= 1u << idx;
	if (p->takes_value != (val != NULL) || (val && !value_ok(val, utf8)))
		return SMTP_ARG_BAD_PARAM;
	return p->apply(args, val, utf8);
}

/* Space-separated parameters (extra spaces tolerated). */
static enum smtp_arg_err params_parse(char *p, const struct esmtp_param *tab, size_t n, void *args,
                                      int utf8)
{
	enum smtp_arg_err e;
	unsigned seen = 0;
	char *tok;

	for (;;) {
		p = skip_sp(p);
		if (!*p)
			return SMTP_ARG_OK;
		tok = p;
		p += strcspn(p, " ");
		if (*p)
			*p++ = '\0';
		if ((e = param_one(tok, tab, n, &seen, args, utf8)) != SMTP_ARG_OK)
			return e;
	}
}

enum smtp_arg_err smtp_parse_mail(char *arg, struct smtp_mail_args *out)
{
	enum smtp_arg_err e;
	char *addr, *params;

	memset(out, 0, sizeof(*out));
	if ((e = split_path(arg, &addr, &params)) != SMTP_ARG_OK)
		return e;
	/* parameters first: SMTPUTF8 decides what the address may hold */
	e = params_parse(params, mail_params, ARRAY_LEN(mail_params), out, 0);
	if (e != SMTP_ARG_OK)
		return e;
	if (*addr && (e = address_check(addr, out->smtputf8)) != SMTP_ARG_OK)
		return e;
	out->addr = addr;
	return SMTP_ARG_OK;
}

enum smtp_arg_err smtp_parse_rcpt(char *arg, int utf8_allowed, struct smtp_rcpt_args *out)
{
	enum smtp_arg_err e;
	char *addr, *params;

	memset(out, 0, sizeof(*out));
	if ((e = split_path(arg, &addr, &params)) != SMTP_ARG_OK)
		return e;
	e = params_parse(params, rcpt_params, ARRAY_LEN(rcpt_params), out, utf8_allowed);
	if (e != SMTP_ARG_OK)
		return e;
	if ((e = address_check(addr, utf8_allowed)) != SMTP_ARG_OK)
		return e;
	out->addr = addr;
	return SMTP_ARG_OK;
}

/* ---------- BDAT ---------- */

int smtp_parse_bdat(const char *arg, uint64_t *size, int *last)
{
	char num[21]; /* UINT64_MAX has 20 digits */
	size_t n;

	while (*arg == ' ')
		arg++;
	n = strspn(arg, "0123456789");
	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, arg, n);
	num[n] = '\0';
	if (parse_u64(num, size) < 0)
		return -1;
	arg += n;
	*last = 0;
	if (*arg == '\0')
		return 0;
	if (*arg != ' ')
		return -1;
	while (*arg == ' ')
		arg++;
	if (ascii_casecmp(arg, "LAST") != 0)
		return -1;
	*last = 1;
	return 0;
}

/* ---------- SASL ---------- */

/* Decodes base64 into out, NUL-terminated; the decoded length or -1. */
static long b64_decode_str(const char *b64, char *out, size_t cap)
{
	long n;

	if (cap == 0)
		return -1;
	n = base64_decode(b64, strlen(b64), (unsigned char *)out, cap - 1);
	if (n < 0)
		return -1;
	out[n] = '\0';
	return n;
}

/* A user name goes to the store and into log lines: no control bytes. */
static int user_ok(const char *u)
{
	if (!*u)
		return 0;
	for (; *u; u++)
		if (is_ctl((unsigned char)*u))
			return 0;
	return 1;
}

int sasl_plain_decode(const char *b64, char *out, size_t cap, const char **user, const char **pass)
{
	const char *authz, *u, *p;
	long n;

	if ((n = b64_decode_str(b64, out, cap)) < 0)
		return -1;
	/* "authzid NUL user NUL pass": exactly two NULs before the end */
	authz = out;
	if (!(u = memchr(out, '\0', (size_t)n)) || ++u >= out + n)
		return -1;
	if (!(p = memchr(u, '\0', (size_t)(out + n - u))))
		return -1;
	p++;
	if (strlen(p) != (size_t)(out + n - p))
		return -1;
	if (!user_ok(u) || !*p || (*authz && strcmp(authz, u) != 0))
		return -1;
	*user = u;
	*pass = p;
	return 0;
}

int sasl_login_decode(const char *b64, char *out, size_t cap)
{
	long n = b64_decode_str(b64, out, cap);

	/* "" decodes to "": a zero-length response is valid (RFC 4954 4) */
	if (n < 0 || strlen(out) != (size_t)n)
		return -1;
	return 0;
}
