/*
 * smtpd_reply: the table of fixed SMTP replies (see smtpd_reply.h).
 * Enhanced status codes follow RFC 3463; the unit test checks that each
 * 2xx/4xx/5xx text carries one of its own class, and that no text is
 * listed twice.
 */
#include "smtpd/smtpd_reply.h"

static const char *const replies[R__COUNT] = {
    [R_OK] = "250 2.0.0 Ok",
    [R_MAIL_OK] = "250 2.1.0 Ok",
    [R_RCPT_OK] = "250 2.1.5 Ok",
    [R_BYE] = "221 2.0.0 Bye",
    [R_HELP] = "214 2.0.0 See RFC 5321",
    [R_VRFY] = "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
    [R_TLS_GO] = "220 2.0.0 Ready to start TLS",
    [R_AUTH_OK] = "235 2.7.0 Authentication successful",
    [R_AUTH_PLAIN_GO] = "334 ",
    [R_AUTH_USER] = "334 VXNlcm5hbWU6", /* "Username:" */
    [R_AUTH_PASS] = "334 UGFzc3dvcmQ6", /* "Password:" */
    [R_DATA_GO] = "354 End data with <CR><LF>.<CR><LF>",
    [R_SHUTDOWN] = "421 4.3.2 Service shutting down, closing connection",
    [R_TIMEOUT] = "421 4.4.2 Timeout exceeded, closing connection",
    [R_DATA_TIMEOUT] = "421 4.4.2 Data timeout exceeded, closing connection",
    [R_AUTH_TOO_MANY] = "421 4.7.0 Too many authentication failures",
    [R_TOO_MANY_ERRORS] = "421 4.7.0 Too many errors, closing connection",
    [R_QUEUE_ERROR] = "451 4.3.0 Error: queue file write error, try again later",
    [R_SIGN_ERROR] = "451 4.3.0 Error: DKIM signing failed, try again later",
    [R_SENDER_TEMP] = "451 4.3.0 Temporary failure checking the sender",
    [R_DISK_FULL] = "452 4.3.1 Insufficient system storage, try again later",
    [R_TOO_MANY_RCPTS] = "452 4.5.3 Too many recipients",
    [R_TLS_TEMP] = "454 4.7.0 TLS not available due to temporary reason",
    [R_AUTH_TEMP] = "454 4.7.0 Temporary authentication failure",
    [R_SYNTAX] = "500 5.5.2 Syntax error, command unrecognized",
    [R_LINE_TOO_LONG] = "500 5.5.2 Line too long",
    [R_HELO_SYNTAX] = "501 5.5.4 Syntax: EHLO hostname",
    [R_STARTTLS_SYNTAX] = "501 5.5.4 Syntax: STARTTLS",
    [R_DATA_SYNTAX] = "501 5.5.4 Syntax: DATA",
    [R_BDAT_SYNTAX] = "501 5.5.4 Syntax: BDAT size [LAST], closing connection",
    [R_AUTH_PLAIN_BAD] = "501 5.5.2 Cannot decode AUTH PLAIN response",
    [R_AUTH_LOGIN_BAD] = "501 5.5.2 Cannot decode AUTH LOGIN response",
    [R_AUTH_CANCELLED] = "501 5.7.0 Authentication cancelled",
    [R_SENDER_SYNTAX] = "501 5.1.7 Bad sender address syntax",
    [R_SENDER_BAD] = "501 5.1.7 Bad sender address",
    [R_RCPT_SYNTAX] = "501 5.1.3 Bad recipient address syntax",
    [R_RCPT_BAD] = "501 5.1.3 Bad recipient address",
    [R_PARAM_BAD] = "501 5.5.4 Invalid parameter value",
    [R_ARG_SYNTAX] = "501 5.5.4 Syntax error",
    [R_UNKNOWN_CMD] = "502 5.5.2 Error: command not recognized",
    [R_STARTTLS_NA] = "502 5.5.1 STARTTLS not available",
    [R_AUTH_NA] = "502 5.5.1 AUTH not available",
    [R_EXPN] = "502 5.5.1 EXPN not supported",
    [R_NEEDS_EHLO] = "502 5.5.1 Command requires EHLO",
    [R_TLS_ACTIVE] = "503 5.5.1 TLS already active",
    [R_EHLO_FIRST] = "503 5.5.1 Send EHLO first",
    [R_HELO_FIRST] = "503 5.5.1 Send HELO/EHLO first",
    [R_AUTH_ALREADY] = "503 5.5.1 Already authenticated",
    [R_AUTH_IN_TXN] = "503 5.5.1 AUTH not allowed during a mail transaction",
    [R_NESTED_MAIL] = "503 5.5.1 Nested MAIL command",
    [R_NEED_MAIL] = "503 5.5.1 Need MAIL command",
    [R_DATA_AFTER_BDAT] = "503 5.5.1 DATA not allowed after BDAT",
    [R_AUTH_MECH] = "504 5.5.4 Unrecognized authentication type",
    [R_AUTH_REQUIRED] = "530 5.7.0 Authentication required",
    [R_STARTTLS_FIRST] = "530 5.7.0 Must issue a STARTTLS command first",
    [R_REQUIRETLS_NO_TLS] = "530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first",
    [R_AUTH_INVALID] = "535 5.7.8 Authentication credentials invalid",
    [R_AUTH_NEEDS_TLS] = "538 5.7.11 Encryption required for requested authentication mechanism",
    [R_BARE_EOL] =
        "550 5.6.11 Bare CR or LF in message content, only CRLF line endings are allowed",
    [R_TOO_BIG] = "552 5.3.4 Message size exceeds fixed maximum message size",
    [R_NEEDS_UTF8] = "553 5.6.7 Non-ASCII address requires SMTPUTF8",
    [R_SENDER_NOT_OWNED] = "553 5.7.1 Sender address not owned by the authenticated account",
    [R_RELAY_DENIED] = "554 5.7.1 Relay access denied",
    [R_NO_RCPTS] = "554 5.5.1 No valid recipients",
    [R_BDAT_TAINTED] = "554 5.5.0 Message discarded after an earlier BDAT failure",
    [R_UNKNOWN_PARAM] = "555 5.5.4 Unsupported option",
};

const char *smtpd_reply_text(enum smtpd_reply r)
{
	return replies[r];
}
