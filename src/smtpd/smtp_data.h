/*
 * smtp_data: the DATA / BDAT content decoder. PURE.
 *
 * DATA: removes dot-stuffing and finds the end of data. Only CRLF.CRLF
 * ends DATA. A bare CR or a bare LF anywhere is never an end of line: the
 * decoder records it (bad_eol), keeps looking for the real CRLF.CRLF, and
 * the session answers 550 5.6.11 then (SMTP smuggling guard). Output is
 * exactly the message bytes to store.
 *
 * BDAT: bytes pass unchanged (no end marker); bare CR/LF is recorded too.
 *
 * In both modes it watches the header section: which of Message-ID and
 * Date are present, and where the header section ends in the output, so
 * the session can add what is missing there.
 */
#ifndef POSTHORN_SMTP_DATA_H
#define POSTHORN_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

enum smtp_data_mode { SMTP_DATA_DOT, SMTP_DATA_RAW };

struct smtp_data {
	enum smtp_data_mode mode;
	int state;          /* private */
	int bad_eol;        /* a bare CR or LF was seen */
	int done;           /* DOT mode: CRLF.CRLF was consumed */
	uint64_t out_bytes; /* total bytes produced */
	/* header watch */
	int in_headers; /* still inside the header section */
	int has_message_id;
	int has_date;
	int hdr_state;       /* private */
	char hdr_name[16];   /* private: start of the current header name */
	size_t hdr_name_len; /* private */
	int64_t headers_end; /* output offset of the empty line ending the
	                        headers (before its CRLF), -1 until seen */
	int at_line_start;   /* output so far ends with CRLF (or is empty) */
};

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode);

/*
 * Decode in[0..n) into out (capacity cap >= n is always enough).
 * Returns the number of input bytes consumed; sets *out_len. In DOT mode it
 * stops right after the terminating CRLF.CRLF (d->done = 1); the rest of
 * the input is the next pipelined command.
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t n, char *out, size_t *out_len);

/* RAW mode: call once after the last chunk (BDAT LAST). A CR at the very
 * end of the content has no LF after it, so it is bare: sets bad_eol. */
void smtp_data_end(struct smtp_data *d);

/* 1 when the last output byte is a CR at the start of a header line: if an
 * LF follows, that CR began the empty line that ends the headers. */
int smtp_data_cr_pending(const struct smtp_data *d);

#endif
