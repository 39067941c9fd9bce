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
 * Date are present, the first Message-ID's value (for the log), how many
 * Received fields there are (the hop count: mail loops), and where the
 * header section ends in the output. The session writes the output before
 * that point, then the header lines smtp_data_missing_headers() gives,
 * then the rest.
 */
#ifndef POSTHORN_SMTP_DATA_H
#define POSTHORN_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

struct buf;

enum smtp_data_mode { SMTP_DATA_DOT, SMTP_DATA_RAW };

/* Longest Message-ID value kept (a longer one is cut there). */
#define SMTP_DATA_MSGID_MAX 250
/* Longest Subject value kept, unfolded and still encoded (RFC 5322's line
 * limit; a longer one is cut there). */
#define SMTP_DATA_SUBJECT_MAX 998

struct smtp_data {
	enum smtp_data_mode mode;
	int state;          /* private */
	int bad_eol;        /* a bare CR or LF was seen */
	int done;           /* DOT mode: CRLF.CRLF was consumed */
	uint64_t out_bytes; /* total bytes produced (a held-back CR not yet) */
	/* header watch */
	int in_headers; /* still inside the header section */
	int has_message_id;
	int has_date;
	int n_received;                      /* Received: fields (a folded one counts once) */
	char msgid[SMTP_DATA_MSGID_MAX];     /* private: the first Message-ID's value, */
	size_t msgid_len;                    /* unfolded, as smtp_data_message_id() gives */
	char subject[SMTP_DATA_SUBJECT_MAX]; /* private: the first Subject's value, */
	size_t subject_len;                  /* unfolded, as smtp_data_subject() gives */
	int has_subject;
	int hdr_state;       /* private */
	char hdr_name[16];   /* private: start of the current header name */
	size_t hdr_name_len; /* private */
	int held_cr;         /* private: a CR at a header line start, not output yet */
	int64_t headers_end; /* output offset of the empty line ending the
	                        headers (before its CRLF), -1 until seen */
	int at_line_start;   /* output so far ends with CRLF (or is empty);
	                        a held-back CR counts as output here */
};

/* Output room smtp_data_feed() needs for n input bytes. */
#define SMTP_DATA_OUT_MAX(n) ((n) + 1)

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode);

/*
 * Decode in[0..n) into out, which has room for SMTP_DATA_OUT_MAX(n) bytes.
 * Returns the number of input bytes consumed; sets *out_len. In DOT mode it
 * stops right after the terminating CRLF.CRLF (d->done = 1); the rest of
 * the input is the next pipelined command.
 *
 * A CR at the start of a header line may begin the empty line that ends
 * the headers, and added headers go before that line: so the decoder holds
 * such a CR back until the next byte shows what it is, and outputs it with
 * that byte. The whole empty line thus comes out of one call, however the
 * input is cut (the client's CR and LF may arrive in two reads, or in two
 * BDAT chunks). That CR is the one byte by which a call's output may
 * exceed its input.
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t n, char *out, size_t *out_len);

/*
 * Call once after the last input: at BDAT LAST, or when DOT mode is done.
 * Writes the CR held back, if any, to out (room for one byte) and returns
 * the number of bytes written (0 or 1; always 0 once DOT mode is done).
 * RAW mode: a CR that ends the content has no LF after it, so it is bare:
 * sets bad_eol.
 */
size_t smtp_data_end(struct smtp_data *d, char *out);

/* The content's size so far: out_bytes and a held-back CR. */
uint64_t smtp_data_size(const struct smtp_data *d);

/*
 * After a call (feed or end) that output out_len bytes: 1 when the empty
 * line that ends the header section is in that output, with *at its
 * offset there; the added header lines go at *at. True after exactly one
 * call for content with such an empty line, never for content without.
 */
int smtp_data_headers_split(const struct smtp_data *d, size_t out_len, size_t *at);

/*
 * The value of the content's first Message-ID field, unfolded (the CRLF of
 * each fold removed), without the white space around it and cut at
 * SMTP_DATA_MSGID_MAX bytes, into out (cap bytes, NUL-terminated): bytes
 * as sent, so a log line must quote it. "" when there is none (yet).
 */
void smtp_data_message_id(const struct smtp_data *d, char *out, size_t cap);

/*
 * The value of the content's first Subject field, unfolded (each fold's
 * CRLF removed), without the white space around it, cut at
 * SMTP_DATA_SUBJECT_MAX bytes, still as sent (encoded words and all; see
 * smtp_subject_decode()), into out (cap bytes, NUL-terminated). "" when
 * there is none.
 */
void smtp_data_subject(const struct smtp_data *d, char *out, size_t cap);

/*
 * Appends to b the header lines the content lacks: "Date:" (for time t,
 * seconds since the epoch) and "Message-ID: <id@host>". For content
 * without an empty line they go at its very end (after smtp_data_end);
 * a CRLF then first ends an unfinished last line.
 */
void smtp_data_missing_headers(const struct smtp_data *d, int64_t t, const char *id,
                               const char *host, struct buf *b);

#endif
