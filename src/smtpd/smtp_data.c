/*
 * smtp_data: the DATA / BDAT content decoder. PURE: libc and util only.
 *
 * A byte-at-a-time state machine whose whole state lives in struct
 * smtp_data, so input may be split at any byte and gives the same output
 * and flags as when fed whole.
 *
 * Promises:
 * - DOT mode ends only at CRLF "." CRLF. Lines are delimited by CRLF alone:
 *   a bare CR or bare LF sets bad_eol, goes to the output as it came, and
 *   never starts a line, so it can neither end the data nor be taken for a
 *   line start by dot-unstuffing (SMTP smuggling).
 * - Dot-unstuffing follows RFC 5321 4.5.2: a line starting with "." loses
 *   that dot ("..x" → ".x"); a line of just "." ends the data. The very
 *   first line is a line start too. The CRLF before the final dot belongs
 *   to the message.
 * - One exception to "bare CR passes unchanged": a CR right after a line's
 *   leading dot that turns out not to be followed by LF is dropped with the
 *   dot. Such a message has bad_eol set and is refused anyway.
 * - The header watch sees the output (after unstuffing): Message-ID:,
 *   Date: and Received: at line starts (not on continuation lines),
 *   case-insensitively, and headers_end, the offset of the first empty
 *   line. Each Received field counts once however it is folded; the first
 *   Message-ID's value is kept with its continuation lines.
 * - A CR at a header line start is held back (held_cr) until the next byte
 *   decides whether it begins the empty line: the empty line's CR and LF
 *   always leave in one call, so the caller can put header lines before
 *   it. Each call produces at most one byte more than it consumes (that
 *   CR), and in total never more than it consumed.
 */
#include "smtpd/smtp_data.h"

#include <string.h>

#include "util/util.h"

/* d->state: where the decoder stands in the input. */
enum {
	D_LINE_START, /* after CRLF (or at the very start) */
	D_TEXT,       /* inside a line */
	D_CR,         /* a CR was output; LF would end the line */
	D_DOT,        /* DOT mode: a line-start "." held back */
	D_DOT_CR,     /* DOT mode: ".\r" held back; LF would end the data */
};

/* d->hdr_state: what the header watch is looking at on the current line. */
enum {
	H_NAME,     /* collecting a field name into hdr_name */
	H_SKIP,     /* rest of an uninteresting line */
	H_EMPTY_CR, /* a CR at a line start: an empty line if LF follows */
	H_MSGID,    /* the first Message-ID's value (and its continuations) */
	H_SUBJECT,  /* the first Subject's value (and its continuations) */
};

/* Output cursor of one feed call. */
struct sink {
	char *out;
	size_t len;
};

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode)
{
	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->state = D_LINE_START;
	d->in_headers = 1;
	d->hdr_state = H_SKIP;
	d->headers_end = -1;
	d->at_line_start = 1;
}

/* ---------- header watch ---------- */

/* The field name is complete: note it; returns what the rest of the line
 * is (the first Message-ID's value is kept, anything else skipped). */
static int hdr_name_end(struct smtp_data *d)
{
	size_t n = d->hdr_name_len;
	int first;

	/* obsolete syntax allows white space before the colon (RFC 5322 4.5) */
	while (n > 0 && (d->hdr_name[n - 1] == ' ' || d->hdr_name[n - 1] == '\t'))
		n--;
	if (n == 10 && ascii_ncasecmp(d->hdr_name, "message-id", n) == 0) {
		first = !d->has_message_id;
		d->has_message_id = 1;
		return first ? H_MSGID : H_SKIP;
	}
	if (n == 7 && ascii_ncasecmp(d->hdr_name, "subject", n) == 0) {
		first = !d->has_subject;
		d->has_subject = 1;
		return first ? H_SUBJECT : H_SKIP;
	}
	if (n == 4 && ascii_ncasecmp(d->hdr_name, "date", n) == 0)
		d->has_date = 1;
	else if (n == 8 && ascii_ncasecmp(d->hdr_name, "received", n) == 0)
		d->n_received++;
	return H_SKIP;
}

/* A byte of the Message-ID value: line ends and leading white space are
 * not part of it, and it is kept up to SMTP_DATA_MSGID_MAX bytes. */
static void msgid_byte(struct smtp_data *d, unsigned char c)
{
	if (c == '\r' || c == '\n' || (d->msgid_len == 0 && (c == ' ' || c == '\t')))
		return;
	if (d->msgid_len < sizeof(d->msgid))
		d->msgid[d->msgid_len++] = (char)c;
}

/* A byte of the Subject value: unfolding removes the CRLFs only (RFC 5322
 * 2.2.3), leading white space is not part of it. */
static void subject_byte(struct smtp_data *d, unsigned char c)
{
	if (c == '\r' || c == '\n' || (d->subject_len == 0 && (c == ' ' || c == '\t')))
		return;
	if (d->subject_len < sizeof(d->subject))
		d->subject[d->subject_len++] = (char)c;
}

static void hdr_name_byte(struct smtp_data *d, unsigned char c)
{
	if (c == ':') {
		d->hdr_state = hdr_name_end(d);
	} else if ((c < 0x20 && c != '\t') || c == 0x7f || d->hdr_name_len == sizeof(d->hdr_name)) {
		/* not a field we look for (ours are short and printable) */
		d->hdr_state = H_SKIP;
	} else {
		d->hdr_name[d->hdr_name_len++] = (char)c;
	}
}

/* First output byte of a line: a field name, a continuation, or maybe the
 * empty line that ends the header section. */
static void hdr_line_start(struct smtp_data *d, unsigned char c)
{
	d->hdr_name_len = 0;
	if (c == '\r')
		d->hdr_state = H_EMPTY_CR;
	else if ((c == ' ' || c == '\t') && d->hdr_state == H_MSGID)
		msgid_byte(d, c); /* the Message-ID value goes on */
	else if ((c == ' ' || c == '\t') && d->hdr_state == H_SUBJECT)
		subject_byte(d, c);
	else if (c == ' ' || c == '\t')
		d->hdr_state = H_SKIP; /* folded continuation of the previous field */
	else {
		d->hdr_state = H_NAME;
		hdr_name_byte(d, c);
	}
}

/* Called for each output byte before it is counted in out_bytes. */
static void hdr_byte(struct smtp_data *d, unsigned char c)
{
	if (!d->in_headers)
		return;
	if (d->at_line_start) {
		hdr_line_start(d, c);
		return;
	}
	if (d->hdr_state == H_NAME) {
		hdr_name_byte(d, c);
	} else if (d->hdr_state == H_MSGID) {
		msgid_byte(d, c);
	} else if (d->hdr_state == H_SUBJECT) {
		subject_byte(d, c);
	} else if (d->hdr_state == H_EMPTY_CR) {
		if (c == '\n') {
			d->headers_end = (int64_t)d->out_bytes - 1; /* the CR, just put */
			d->in_headers = 0;
		} else {
			d->hdr_state = H_SKIP;
		}
	}
}

/* ---------- decoder ---------- */

static void put(struct smtp_data *d, struct sink *s, char c)
{
	s->out[s->len++] = c;
	d->out_bytes++;
}

/* One output byte. A CR that may begin the empty line ending the headers
 * waits for the next byte (see the contract above). */
static void emit(struct smtp_data *d, struct sink *s, unsigned char c)
{
	if (d->held_cr) {
		put(d, s, '\r');
		d->held_cr = 0;
	}
	hdr_byte(d, c);
	d->at_line_start = 0;
	if (c == '\r' && d->in_headers && d->hdr_state == H_EMPTY_CR)
		d->held_cr = 1;
	else
		put(d, s, (char)c);
}

/* A byte inside a line: only CR followed by LF ends the line. */
static void text_byte(struct smtp_data *d, struct sink *s, unsigned char c)
{
	if (c == '\n')
		d->bad_eol = 1;
	emit(d, s, c);
	d->state = c == '\r' ? D_CR : D_TEXT;
}

/* The byte after an output CR. */
static void cr_byte(struct smtp_data *d, struct sink *s, unsigned char c)
{
	if (c == '\n') {
		emit(d, s, c);
		d->state = D_LINE_START;
		d->at_line_start = 1;
		return;
	}
	d->bad_eol = 1; /* the CR was bare */
	text_byte(d, s, c);
}

/* The byte after a line-start dot: the dot is dropped in every case (RFC
 * 5321 4.5.2) unless ".\r\n" ends the data. */
static void dot_byte(struct smtp_data *d, struct sink *s, unsigned char c)
{
	if (c == '\r')
		d->state = D_DOT_CR;
	else
		text_byte(d, s, c);
}

/* The byte after a line-start ".\r": LF ends the data; anything else makes
 * the CR bare, and it is dropped with the dot (see the contract above). */
static void dot_cr_byte(struct smtp_data *d, struct sink *s, unsigned char c)
{
	if (c == '\n') {
		d->done = 1;
		return;
	}
	d->bad_eol = 1;
	text_byte(d, s, c);
}

static void step(struct smtp_data *d, struct sink *s, unsigned char c)
{
	switch (d->state) {
	case D_LINE_START:
		if (d->mode == SMTP_DATA_DOT && c == '.')
			d->state = D_DOT;
		else
			text_byte(d, s, c);
		break;
	case D_CR:
		cr_byte(d, s, c);
		break;
	case D_DOT:
		dot_byte(d, s, c);
		break;
	case D_DOT_CR:
		dot_cr_byte(d, s, c);
		break;
	default:
		text_byte(d, s, c);
		break;
	}
}

/*
 * The fast path: inside a line, past the header section, every byte up to
 * the next CR or LF goes out unchanged and changes no state but the
 * counters, so the run is copied at once (memchr is vectorised). The CR or
 * LF itself goes through step(). Returns the bytes copied.
 */
static size_t text_run(struct smtp_data *d, struct sink *s, const char *in, size_t n)
{
	const char *cr = memchr(in, '\r', n);
	size_t k = cr ? (size_t)(cr - in) : n;
	const char *lf = memchr(in, '\n', k);

	if (lf)
		k = (size_t)(lf - in);
	memcpy(s->out + s->len, in, k);
	s->len += k;
	d->out_bytes += k;
	if (k)
		d->at_line_start = 0;
	return k;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t n, char *out, size_t *out_len)
{
	struct sink s = {out, 0};
	size_t i = 0;

	while (i < n && !d->done) {
		if (d->state == D_TEXT && !d->in_headers) {
			size_t k = text_run(d, &s, in + i, n - i);
			i += k;
			if (i == n)
				break;
		}
		step(d, &s, (unsigned char)in[i]);
		i++;
	}
	*out_len = s.len;
	return i;
}

size_t smtp_data_end(struct smtp_data *d, char *out)
{
	/* a CR that ends RAW content has no LF after it: it was bare */
	if (d->mode == SMTP_DATA_RAW && d->state == D_CR)
		d->bad_eol = 1;
	if (!d->held_cr)
		return 0;
	d->held_cr = 0;
	out[0] = '\r';
	d->out_bytes++;
	return 1;
}

uint64_t smtp_data_size(const struct smtp_data *d)
{
	return d->out_bytes + (d->held_cr ? 1 : 0);
}

int smtp_data_headers_split(const struct smtp_data *d, size_t out_len, size_t *at)
{
	uint64_t start = d->out_bytes - out_len;

	if (d->headers_end < 0 || (uint64_t)d->headers_end < start ||
	    (uint64_t)d->headers_end >= d->out_bytes)
		return 0;
	*at = (size_t)((uint64_t)d->headers_end - start);
	return 1;
}

/* v[0..n) without trailing white space into out (cap bytes, NUL-ended). */
static void copy_value(const char *v, size_t n, char *out, size_t cap)
{
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (cap == 0)
		return;
	if (n > cap - 1)
		n = cap - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

void smtp_data_message_id(const struct smtp_data *d, char *out, size_t cap)
{
	copy_value(d->msgid, d->msgid_len, out, cap);
}

void smtp_data_subject(const struct smtp_data *d, char *out, size_t cap)
{
	copy_value(d->subject, d->subject_len, out, cap);
}

void smtp_data_missing_headers(const struct smtp_data *d, int64_t t, const char *id,
                               const char *host, struct buf *b)
{
	char date[64];

	if (d->headers_end < 0 && !d->at_line_start)
		buf_puts(b, "\r\n");
	if (!d->has_date) {
		rfc5322_date(date, sizeof(date), t);
		buf_printf(b, "Date: %s\r\n", date);
	}
	if (!d->has_message_id)
		buf_printf(b, "Message-ID: <%s@%s>\r\n", id, host);
}
