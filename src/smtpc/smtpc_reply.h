/*
 * smtpc_reply: what the outbound client reads from a server. PURE (libc
 * and util only): bytes in, complete replies or an error out; no sockets.
 * The session feeds it whatever the socket gave, split anywhere; tests and
 * the fuzzer feed it anything.
 *
 * A reply (RFC 5321 section 4.2) is one or more lines "NNN-text" ending
 * with "NNN text" (or a bare "NNN"), each ending in CRLF; a bare LF is
 * accepted too, as most clients do. Every line carries the same code,
 * 2xx to 5xx. The parser is bounded so a hostile server cannot make it
 * hold unbounded memory: a line of more than SMTPC_REPLY_LINE_MAX octets
 * (EOL included), a reply of more than SMTPC_REPLY_LINES_MAX lines or of
 * more than SMTPC_REPLY_TOTAL_MAX octets is a protocol error. After an
 * error the stream has lost synchronisation, so the error is sticky: the
 * session closes the connection (smtpc_policy: SMTPC_FAIL_PROTOCOL).
 *
 * Also here: the EHLO keyword parser (RFC 5321 4.1.1.1), which reads a
 * parsed 250 reply.
 */
#ifndef POSTHORN_SMTPC_REPLY_H
#define POSTHORN_SMTPC_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define SMTPC_REPLY_LINE_MAX  4096  /* octets of one line, its EOL included */
#define SMTPC_REPLY_LINES_MAX 100   /* lines in one reply */
#define SMTPC_REPLY_TOTAL_MAX 65536 /* octets of one reply, EOLs included */
#define SMTPC_ENHANCED_MAX    16    /* room for "5.123.123" and the NUL */

/*
 * One complete reply. text is the lines' text joined by "\n" (no trailing
 * newline), without the "NNN-"/"NNN " prefixes and without an enhanced
 * status code at the start of a line. Control characters in the text are
 * replaced (TAB by a space, the others by '?') so that it is one safe C
 * string for logs and DSNs; 8-bit bytes (UTF-8 from SMTPUTF8 servers) are
 * kept. text is owned by the reply: release it with smtpc_reply_clear().
 */
struct smtpc_reply {
	int code;                          /* 200..599 */
	char enhanced[SMTPC_ENHANCED_MAX]; /* RFC 3463 "5.1.1", or "" if none */
	char *text;
	size_t n_lines; /* 1..SMTPC_REPLY_LINES_MAX */
};

/* Free r->text and zero r. Safe on a zeroed reply and twice. */
void smtpc_reply_clear(struct smtpc_reply *r);

/*
 * Incremental reply parser. Embed it (no allocation of the struct itself);
 * its fields are private to smtpc_reply.c.
 */
struct smtpc_rparser {
	struct buf line; /* the current line so far, without its EOL */
	struct buf text; /* the reply's text so far */
	int code;        /* code of the reply being read; 0 before its first line */
	char enhanced[SMTPC_ENHANCED_MAX];
	size_t n_lines;    /* complete lines of the reply being read */
	size_t total;      /* octets of those lines, EOLs included */
	const char *error; /* static reason once the stream is broken, else NULL */
};

enum smtpc_rstatus {
	SMTPC_R_NEED,  /* every byte was taken; no complete reply yet */
	SMTPC_R_REPLY, /* one reply in *out; feed the bytes not consumed again */
	SMTPC_R_ERROR, /* protocol error: smtpc_rparser_error() says why */
};

void smtpc_rparser_init(struct smtpc_rparser *p);
/* Release the buffers. The parser may be re-initialised afterwards. */
void smtpc_rparser_free(struct smtpc_rparser *p);

/*
 * Feed data[0..len). Returns the number of bytes consumed and sets *st:
 *   NEED:  all len bytes were consumed (kept inside the parser as needed).
 *   REPLY: bytes up to and including the reply's last EOL were consumed and
 *          *out holds the reply (overwritten, not cleared first: the caller
 *          owns out->text from now on). Call again with the rest; several
 *          pipelined replies come out one call each.
 *   ERROR: the input broke the protocol; this and every later call return
 *          ERROR (with 0 consumed on later calls). Drop the connection.
 * *out is untouched unless REPLY.
 */
size_t smtpc_rparser_feed(struct smtpc_rparser *p, const void *data, size_t len,
                          struct smtpc_reply *out, enum smtpc_rstatus *st);

/* Static text of the error ("reply line too long", ...), or NULL. */
const char *smtpc_rparser_error(const struct smtpc_rparser *p);

/* 1 when no part of a reply is buffered: between replies (0 after an
 * error). A server that sends bytes the client did not ask for shows up
 * here. */
int smtpc_rparser_idle(const struct smtpc_rparser *p);

/*
 * EHLO extensions the client cares about. Zero means "not offered".
 * size_max is SIZE's argument; 0 when SIZE came without a (valid, non-zero)
 * number, which RFC 1870 reads as "no fixed limit".
 */
struct smtpc_caps {
	int pipelining;
	int starttls;
	int size;
	uint64_t size_max;
	int eightbitmime;
	int smtputf8;
	int dsn;
	int chunking;
	int enhancedstatuscodes;
	int requiretls;
	int auth; /* AUTH offered, with whatever mechanisms */
	int auth_plain;
	int auth_login;
};

/*
 * Read the extensions from a positive EHLO reply: the first line is the
 * server's name and greeting, each further line "KEYWORD [params]".
 * Keywords and AUTH mechanisms compare case-insensitively; the legacy
 * "AUTH=LOGIN PLAIN" form counts as AUTH. Unknown keywords are ignored.
 * *caps is zeroed first. Returns 0, or -1 (caps all zero) when r is not
 * a 2xx reply.
 */
int smtpc_caps_parse(const struct smtpc_reply *r, struct smtpc_caps *caps);

#endif
