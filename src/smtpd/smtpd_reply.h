/*
 * smtpd_reply: every fixed reply the SMTP server sends, in one table
 * (smtpd_reply.c), so each text exists once. The few replies that carry
 * values (greeting, EHLO lines, "queued as", "octets received") are
 * formatted where they are sent.
 */
#ifndef POSTHORN_SMTPD_REPLY_H
#define POSTHORN_SMTPD_REPLY_H

enum smtpd_reply {
	R_OK,
	R_MAIL_OK,
	R_RCPT_OK,
	R_BYE,
	R_HELP,
	R_VRFY,
	R_TLS_GO,
	R_AUTH_OK,
	R_AUTH_PLAIN_GO,
	R_AUTH_USER,
	R_AUTH_PASS,
	R_DATA_GO,
	R_SHUTDOWN,
	R_TIMEOUT,
	R_DATA_TIMEOUT,
	R_AUTH_TOO_MANY,
	R_TOO_MANY_ERRORS,
	R_QUEUE_ERROR,
	R_SIGN_ERROR,
	R_SENDER_TEMP,
	R_DISK_FULL,
	R_TOO_MANY_RCPTS,
	R_TLS_TEMP,
	R_AUTH_TEMP,
	R_SYNTAX,
	R_LINE_TOO_LONG,
	R_HELO_SYNTAX,
	R_STARTTLS_SYNTAX,
	R_DATA_SYNTAX,
	R_BDAT_SYNTAX,
	R_AUTH_PLAIN_BAD,
	R_AUTH_LOGIN_BAD,
	R_AUTH_CANCELLED,
	R_SENDER_SYNTAX,
	R_SENDER_BAD,
	R_RCPT_SYNTAX,
	R_RCPT_BAD,
	R_PARAM_BAD,
	R_ARG_SYNTAX,
	R_UNKNOWN_CMD,
	R_STARTTLS_NA,
	R_AUTH_NA,
	R_EXPN,
	R_NEEDS_EHLO,
	R_TLS_ACTIVE,
	R_EHLO_FIRST,
	R_HELO_FIRST,
	R_AUTH_ALREADY,
	R_AUTH_IN_TXN,
	R_NESTED_MAIL,
	R_NEED_MAIL,
	R_DATA_AFTER_BDAT,
	R_AUTH_MECH,
	R_AUTH_REQUIRED,
	R_STARTTLS_FIRST,
	R_REQUIRETLS_NO_TLS,
	R_AUTH_INVALID,
	R_AUTH_NEEDS_TLS,
	R_BARE_EOL,
	R_TOO_BIG,
	R_NEEDS_UTF8,
	R_SENDER_NOT_OWNED,
	R_RELAY_DENIED,
	R_NO_RCPTS,
	R_BDAT_TAINTED,
	R_UNKNOWN_PARAM,
	R__COUNT
};

/* The reply line (without CRLF) for r. */
const char *smtpd_reply_text(enum smtpd_reply r);

#endif
