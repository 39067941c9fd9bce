/*
 * smtp_parse: the SMTP command parser. PURE: bytes in, a command or an
 * error out; no I/O, no allocation beyond what the caller passes. The
 * session feeds it lines; tests and the fuzzer feed it anything.
 */
#ifndef POSTHORN_SMTP_PARSE_H
#define POSTHORN_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define SMTP_LINE_MAX 512

enum smtp_scan {
	SMTP_SCAN_LINE,     /* a complete line: *line_len bytes (without the EOL) */
	SMTP_SCAN_NEED,     /* no end of line yet and still within the limit */
	SMTP_SCAN_TOO_LONG, /* the line is over max: skip *consumed bytes, reply 500 5.5.2, and keep
	                       skipping (call again) until the end of that line */
};
/*
 * Finds the next command line in buf[0..len). A line ends at CRLF; a bare
 * LF is accepted as an end of command line too (lenient, as most servers
 * are; DATA content is held to CRLF elsewhere). *consumed is the number of
 * bytes to drop from the input including the EOL. max counts the CRLF.
 * *in_overlong carries state between calls while an overlong line is being
 * skipped (start at 0).
 * Always drop *consumed bytes, whatever the result. TOO_LONG is returned
 * once per overlong line; while the rest of that line is being skipped the
 * result is NEED with *consumed > 0 (drop them and call again): NEED with
 * *consumed == 0 is the only "wait for more input".
 */
enum smtp_scan smtp_scan_line(const char *buf, size_t len, size_t max, int *in_overlong,
                              size_t *line_len, size_t *consumed);

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB__COUNT
};

struct smtp_cmd {
	enum smtp_verb verb;
	char *arg; /* points into the line (NUL-terminated there); "" if none */
};

/* Splits a line (modified in place: NUL-terminated at len) into verb and
 * argument. MAIL and RCPT are recognised by "MAIL FROM:" / "RCPT TO:"
 * (arg is what follows the colon, leading spaces skipped). Returns 0, or -1
 * for a line with a NUL byte or other control characters (reply 500 5.5.2). */
int smtp_parse_cmd(char *line, size_t len, struct smtp_cmd *out);

/* Why a MAIL/RCPT argument was refused; the session maps each to a reply. */
enum smtp_arg_err {
	SMTP_ARG_OK = 0,
	SMTP_ARG_SYNTAX,        /* 501 5.5.4 / 501 5.1.3 bad address syntax */
	SMTP_ARG_BAD_ADDRESS,   /* 501 5.1.7 (MAIL) or 501 5.1.3 (RCPT) */
	SMTP_ARG_UNKNOWN_PARAM, /* 555 5.5.4 */
	SMTP_ARG_BAD_PARAM,     /* 501 5.5.4 bad value of a known parameter */
	SMTP_ARG_NEEDS_UTF8,    /* 553 5.6.7 non-ASCII address without SMTPUTF8 */
};

struct smtp_mail_args {
	char *addr; /* without <>; "" for the null sender; points into arg */
	int has_size;
	uint64_t size;
	int body;       /* 0 none, 1 7BIT, 2 8BITMIME */
	int smtputf8;   /* SMTPUTF8 given */
	int ret;        /* 0 none, 1 FULL, 2 HDRS */
	char *envid;    /* xtext-decoded in place, or NULL */
	char *auth;     /* AUTH= value or NULL (accepted, ignored) */
	int requiretls; /* REQUIRETLS given (RFC 8689; the session checks TLS) */
};
/* DSN NOTIFY bits: the values of DSN_NOTIFY_* in spool/spool.h (a PURE
 * file may not include it; tests/unit/test_smtp_parse.c checks they agree). */
#define SMTP_NOTIFY_NEVER   1u
#define SMTP_NOTIFY_SUCCESS 2u
#define SMTP_NOTIFY_FAILURE 4u
#define SMTP_NOTIFY_DELAY   8u

struct smtp_rcpt_args {
	char *addr;      /* without <>; never "" */
	unsigned notify; /* DSN_NOTIFY_* bits from spool.h values, 0 = not given */
	char *orcpt;     /* "rfc822;addr" xtext-decoded in place, or NULL */
};

/* Parse the text after "MAIL FROM:" / "RCPT TO:" (modified in place).
 * utf8_allowed: SMTPUTF8 was given in MAIL (for RCPT), or for MAIL the
 * parser checks the SMTPUTF8 parameter itself. Addresses: RFC 5321
 * Mailbox (dot-string or quoted-string local part, domain or address
 * literal), RFC 6531 UTF-8 when allowed, at most 254 octets of path,
 * 64 of local part. A source route (@a,@b:) is accepted and dropped. */
enum smtp_arg_err smtp_parse_mail(char *arg, struct smtp_mail_args *out);
enum smtp_arg_err smtp_parse_rcpt(char *arg, int utf8_allowed, struct smtp_rcpt_args *out);

/* 1 if addr (no <>) is a valid Mailbox; utf8 allows RFC 6531 UTF-8. */
int smtp_address_valid(const char *addr, int utf8);
/* Pointer to the domain part of a valid address (after the last '@'). */
const char *smtp_address_domain(const char *addr);

/* 1 if the EHLO/HELO argument is valid (RFC 5321 4.1.1.1): a Domain of
 * LDH labels (ASCII, no trailing dot) or an address literal, [1.2.3.4] or
 * [IPv6:...]. Only such a name goes into the Received header. */
int smtp_helo_valid(const char *name);

/* BDAT argument: "SIZE [LAST]". 0 ok, -1 syntax. */
int smtp_parse_bdat(const char *arg, uint64_t *size, int *last);

/* SASL (RFC 4616 PLAIN, and LOGIN). Decode base64 of "authzid\0user\0pass"
 * into user/pass (NUL-terminated, within out of cap bytes). 0 ok, -1 bad. */
int sasl_plain_decode(const char *b64, char *out, size_t cap, const char **user, const char **pass);
/* SASL LOGIN: one base64 string (user name or password) into out,
 * NUL-terminated. 0 ok, -1 bad base64, too long for cap, or an embedded
 * NUL. An empty string is a zero-length response (RFC 4954 4) and decodes
 * to an empty value; "=" (the AUTH command's way to say "empty") is the
 * caller's to translate, as it is valid only there. */
int sasl_login_decode(const char *b64, char *out, size_t cap);

#endif
