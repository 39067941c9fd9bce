/*
 * mime_build: PURE. The message of an API request as RFC 5322 + MIME
 * bytes (mime.h says what it makes), and the checks of what a caller may
 * put in it (addresses, extra header fields).
 *
 * The tree: [mixed: [alternative: text, [related: html, inline...]],
 * attachment...], each level only when it has more than one child.
 * Boundaries are "=_ph_<seed>_<n>": "=_" never appears in quoted-printable
 * or base64, and a 7bit body that holds "=_ph" goes quoted-printable, so
 * no boundary can occur inside a part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"
#include "smtpd/smtp_parse.h"

#define LINE_MAX_7BIT 998

/* ---- checks ---- */

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return 1;
	return 0;
}

static int addr_part(const char *s, size_t n, struct mime_addr *out, const char **why)
{
	if (n > MIME_ADDR_MAX) {
		*why = "address too long";
		return -1;
	}
	memcpy(out->addr, s, n);
	out->addr[n] = 0;
	if (!smtp_address_valid(out->addr, 1)) {
		*why = "not a valid address";
		return -1;
	}
	return 0;
}

static int name_part(const char *s, size_t n, struct mime_addr *out, const char **why)
{
	while (n > 0 && s[n - 1] == ' ')
		n--;
	while (n > 0 && *s == ' ')
		s++, n--;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
		s++, n -= 2;
	if (n > MIME_NAME_MAX || !mime_utf8_valid(s, n)) {
		*why = "the name is too long or not UTF-8";
		return -1;
	}
	memcpy(out->name, s, n);
	out->name[n] = 0;
	return 0;
}

int mime_addr_parse(const char *s, struct mime_addr *out, const char **why)
{
	const char *lt = strrchr(s, '<');
	size_t n = strlen(s);

	memset(out, 0, sizeof(*out));
	if (has_ctl(s) || !mime_utf8_valid(s, n)) {
		*why = "control characters or bytes that are not UTF-8";
		return -1;
	}
	if (!lt)
		return addr_part(s, n, out, why);
	if (n < 2 || s[n - 1] != '>') {
		*why = "expected \"Name <addr>\" or \"addr\"";
		return -1;
	}
	if (name_part(s, (size_t)(lt - s), out, why) < 0)
		return -1;
	return addr_part(lt + 1, (size_t)(s + n - 1 - (lt + 1)), out, why);
}

int mime_addr_utf8(const struct mime_addr *a)
{
	const char *p;

	for (p = a->addr; *p; p++)
		if ((unsigned char)*p > 127)
			return 1;
	return 0;
}

static const char *const own_fields[] = {
    "from", "to",         "cc",       "bcc",         "reply-to",     "subject",
    "date", "message-id", "received", "return-path", "mime-version", NULL,
};

static int name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > 76)
		return 0;
	for (i = 0; i < n; i++)
		if (name[i] <= 32 || name[i] >= 127 || name[i] == ':')
			return 0;
	return 1;
}

int mime_header_ok(const char *name, const char *value, const char **why)
{
	size_t i;

	if (!name_ok(name)) {
		*why = "not a header field name";
		return 0;
	}
	for (i = 0; own_fields[i]; i++)
		if (ascii_casecmp(name, own_fields[i]) == 0 || ascii_startswith(name, "content-")) {
			*why = "a field Posthorn writes itself";
			return 0;
		}
	if (strlen(value) > LINE_MAX_7BIT || has_ctl(value) ||
	    !mime_utf8_valid(value, strlen(value))) {
		*why = "the value must be one line of UTF-8 text of at most 998 bytes";
		return 0;
	}
	return 1;
}

/* ---- bodies ---- */

/* 1 if text can go as 7bit: ASCII without NUL or a lone CR, lines of at
 * most 998 bytes, and nothing that looks like our boundaries. */
static int fits_7bit(const char *s)
{
	size_t col = 0;

	if (strstr(s, "=_ph"))
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > 127 || (c == '\r' && s[1] != '\n'))
			return 0;
		col = c == '\n' ? 0 : col + 1;
		if (col > LINE_MAX_7BIT)
			return 0;
	}
	return 1;
}

/* The lines of s with CRLF ends (LF or CRLF in s). */
static void crlf_lines(const char *s, struct buf *out)
{
	const char *nl;

	while ((nl = strchr(s, '\n'))) {
		buf_append(out, s, (size_t)(nl - s) - (nl > s && nl[-1] == '\r'));
		buf_puts(out, "\r\n");
		s = nl + 1;
	}
	buf_puts(out, s);
}

static void text_part(const char *type, const char *s, struct buf *out)
{
	int plain = fits_7bit(s);

	buf_printf(out, "Content-Type: text/%s; charset=%s\r\n", type,
	           plain ? "us-ascii" : "utf-8");
	buf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
	           plain ? "7bit" : "quoted-printable");
	if (plain)
		crlf_lines(s, out);
	else
		mime_qp(s, strlen(s), out);
}

static int attr_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$&+-.^_`|~", c));
}

/* name="value", or RFC 2231 name*=UTF-8''%XX... when it is not plain ASCII. */
static void param(const char *name, const char *v, struct buf *out)
{
	const unsigned char *p;
	int plain = !has_ctl(v) && !strpbrk(v, "\"\\");

	for (p = (const unsigned char *)v; plain && *p; p++)
		plain = *p < 127;
	if (plain) {
		buf_printf(out, ";\r\n\t%s=\"%s\"", name, v);
		return;
	}
	buf_printf(out, ";\r\n\t%s*=UTF-8''", name);
	for (p = (const unsigned char *)v; *p; p++)
		if (attr_char(*p))
			buf_append(out, p, 1);
		else
			buf_printf(out, "%%%02X", *p);
}

static void file_part(const struct mime_part *a, struct buf *out)
{
	buf_printf(out, "Content-Type: %s", a->content_type);
	if (a->filename)
		param("name", a->filename, out);
	buf_printf(out, "\r\nContent-Disposition: %s", a->content_id ? "inline" : "attachment");
	if (a->filename)
		param("filename", a->filename, out);
	buf_puts(out, "\r\n");
	if (a->content_id)
		buf_printf(out, "Content-ID: <%s>\r\n", a->content_id);
	buf_puts(out, "Content-Transfer-Encoding: base64\r\n\r\n");
	mime_base64_lines(a->data, a->len, out);
}

/* ---- the tree ---- */

/* One node of the tree: a leaf (text, html, a file) or a multipart. */
struct node {
	const char *subtype; /* multipart: "mixed", ...; NULL: a leaf */
	const char *text_type, *text;
	const struct mime_part *file;
	struct node *kids;
	size_t n_kids;
};

static void node_write(const struct mime_msg *m, const struct node *nd, unsigned *seq,
                       struct buf *out)
{
	char boundary[96];
	size_t i;

	if (!nd->subtype) {
		if (nd->file)
			file_part(nd->file, out);
		else
			text_part(nd->text_type, nd->text, out);
		return;
	}
	snprintf(boundary, sizeof(boundary), "=_ph_%s_%u", m->seed, (*seq)++);
	buf_printf(out, "Content-Type: multipart/%s;\r\n\tboundary=\"%s\"\r\n\r\n", nd->subtype,
	           boundary);
	buf_puts(out, "This is a multi-part message in MIME format.\r\n");
	for (i = 0; i < nd->n_kids; i++) {
		buf_printf(out, "\r\n--%s\r\n", boundary);
		node_write(m, &nd->kids[i], seq, out);
	}
	buf_printf(out, "\r\n--%s--\r\n", boundary);
}

/* kids[0..n) under one multipart, or the only kid itself. */
static struct node group(const char *subtype, struct node *kids, size_t n)
{
	if (n == 1)
		return kids[0];
	return (struct node){.subtype = subtype, .kids = kids, .n_kids = n};
}

static struct node tree_build(const struct mime_msg *m, struct node *rel, struct node *mixed,
                              struct node *alt)
{
	size_t i, n_rel = 0, n_mixed = 0, n_alt = 0;

	if (m->html) {
		rel[n_rel++] = (struct node){.text_type = "html", .text = m->html};
		for (i = 0; i < m->n_parts; i++)
			if (m->parts[i].content_id)
				rel[n_rel++] = (struct node){.file = &m->parts[i]};
	}
	if (m->text || (!m->html && m->n_parts == 0))
		alt[n_alt++] = (struct node){.text_type = "plain", .text = m->text ? m->text : ""};
	if (m->html)
		alt[n_alt++] = group("related", rel, n_rel);
	if (n_alt)
		mixed[n_mixed++] = group("alternative", alt, n_alt);
	for (i = 0; i < m->n_parts; i++)
		if (!(m->parts[i].content_id && m->html))
			mixed[n_mixed++] = (struct node){.file = &m->parts[i]};
	return group("mixed", mixed, n_mixed);
}

static void envelope_headers(const struct mime_msg *m, struct buf *out)
{
	char date[64];
	size_t i;

	rfc5322_date(date, sizeof(date), m->date);
	buf_printf(out, "Date: %s\r\n", date);
	mime_header_addrs("From", m->from, 1, out);
	if (m->n_to)
		mime_header_addrs("To", m->to, m->n_to, out);
	if (m->n_cc)
		mime_header_addrs("Cc", m->cc, m->n_cc, out);
	if (m->reply_to)
		mime_header_addrs("Reply-To", m->reply_to, 1, out);
	mime_header_text("Subject", m->subject ? m->subject : "", out);
	buf_printf(out, "Message-ID: %s\r\n", m->message_id);
	for (i = 0; i < m->n_headers; i++)
		mime_header_text(m->headers[i].name, m->headers[i].value, out);
	buf_puts(out, "MIME-Version: 1.0\r\n");
}

void mime_build(const struct mime_msg *m, struct buf *out)
{
	size_t n = m->n_parts + 2;
	struct node *rel = xcalloc(n, sizeof(*rel)), *mixed = xcalloc(n, sizeof(*mixed)), alt[2];
	struct node root;
	unsigned seq = 0;

	envelope_headers(m, out);
	root = tree_build(m, rel, mixed, alt);
	node_write(m, &root, &seq, out);
	if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
		buf_puts(out, "\r\n");
	free(rel);
	free(mixed);
}
