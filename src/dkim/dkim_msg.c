/*
 * dkim_msg: the stream form of a signing context (dkim.h). It holds the
 * header section until the section ends (it cannot know the From domain,
 * and so the keys, before that), then makes a dkim_ctx, feeds it the
 * fields and hashes the body as it arrives. Memory: at most DKIM_HDR_MAX
 * bytes of header, nothing of the body.
 */
#include "dkim/dkim.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct dkim_msg {
	struct dkim_signer *s;
	char *id;
	struct buf hdr;  /* the header section so far */
	size_t searched; /* hdr[0..searched) holds no end of the section */
	int decided;     /* the section has ended (or was too large): res is known */
	enum dkim_result res;
	struct dkim_ctx *ctx; /* with decided and DKIM_SIGNED */
	char domain[DKIM_DOMAIN_MAX + 1];
};

struct dkim_msg *dkim_msg_new(struct dkim_signer *s, const char *id)
{
	struct dkim_msg *m = xcalloc(1, sizeof *m);

	m->s = s;
	m->id = xstrdup(id && *id ? id : "NOQUEUE");
	buf_init(&m->hdr);
	return m;
}

void dkim_msg_free(struct dkim_msg *m)
{
	if (m == NULL)
		return;
	dkim_ctx_free(m->ctx);
	buf_free(&m->hdr);
	free(m->id);
	free(m);
}

const char *dkim_msg_domain(const struct dkim_msg *m)
{
	return m->domain;
}

/* Every field of hdr[0..end) to the context. */
static void feed_fields(struct dkim_msg *m, size_t end)
{
	struct dkim_field f;
	size_t off = 0, used;

	while (off < end && dkim_hdr_next(m->hdr.data + off, end - off, &f, &used)) {
		off += used;
		if (f.name_len > 0 && dkim_ctx_header(m->ctx, f.start, f.len) < 0)
			return;
	}
}

/* The header section is hdr[0..end); what follows is body. */
static void section_ended(struct dkim_msg *m, size_t end)
{
	enum dkim_from from = dkim_hdr_from_domain(m->hdr.data, end, m->domain, sizeof m->domain);

	m->decided = 1;
	if (from != DKIM_FROM_OK) {
		m->domain[0] = '\0';
		m->res = from == DKIM_FROM_MULTIPLE ? DKIM_MULTIPLE_FROM : DKIM_NO_FROM;
	} else if ((m->ctx = dkim_ctx_new(m->s, m->domain, m->id, &m->res)) != NULL) {
		feed_fields(m, end);
		if (end < m->hdr.len)
			dkim_ctx_body(m->ctx, m->hdr.data + end, m->hdr.len - end);
	}
	buf_free(&m->hdr);
}

void dkim_msg_write(struct dkim_msg *m, const char *p, size_t n)
{
	size_t end;

	if (m->decided) {
		if (m->ctx)
			dkim_ctx_body(m->ctx, p, n);
		return;
	}
	buf_append(&m->hdr, p, n);
	end = dkim_hdr_end(m->hdr.data, m->hdr.len, m->searched);
	m->searched = m->hdr.len;
	/* the bound is on the section, however the bytes were cut */
	if (end > 0 && end <= DKIM_HDR_MAX) {
		section_ended(m, end);
	} else if (end > DKIM_HDR_MAX || m->hdr.len > DKIM_HDR_MAX) {
		m->decided = 1;
		m->res = DKIM_HEADER_TOO_LARGE;
		buf_free(&m->hdr);
	}
}

enum dkim_result dkim_msg_finish(struct dkim_msg *m, struct buf *out)
{
	if (!m->decided)
		section_ended(m, m->hdr.len); /* no empty line: all header */
	if (m->ctx == NULL)
		return m->res;
	return dkim_ctx_finish(m->ctx, out);
}
