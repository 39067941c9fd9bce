/*
 * api_unsub: the one-click unsubscribe link (RFC 8058; the token and the
 * header fields are src/unsub/'s):
 *
 *   GET  /u/{token}   a small page with one button, a plain form that
 *                     POSTs back to the same link. It never unsubscribes
 *                     (mail scanners follow links) and never redirects.
 *   POST /u/{token}   puts the token's recipient on the token's account's
 *                     suppression list, reason "unsubscribed": 200. The
 *                     body RFC 8058 sends is "List-Unsubscribe=One-Click";
 *                     any body is taken (the form sends the same).
 *
 * No API key: the token is the authority, and only this server can make
 * one (an HMAC under its secret). A token that is not even shaped like
 * one gets 400, one whose MAC fails (tampered, or of another server) 404,
 * both before anything is looked up. Answers are small HTML pages for the
 * person who clicked, under a Content-Security-Policy that allows no
 * script and no other origin, and never cached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "events/events.h"
#include "http/http.h"
#include "log/log.h"
#include "store/store.h"
#include "unsub/unsub.h"
#include "util/util.h"

#define REASON "unsubscribed"

struct unsub_job {
	struct http_req *r;
	struct store *st;
	char account[UNSUB_ACCOUNT_MAX + 1];
	char rcpt[UNSUB_ADDR_MAX + 1];
	struct store_supp entry;
	int rc;
	char *err;
};

/* ---- pages ---------------------------------------------------------------------- */

static void html_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&#39;");
			break;
		default:
			buf_append(b, s, 1);
		}
	}
}

/* A page: title, then text with %s replaced by the escaped address (or
 * nothing), then form when set. */
static void page(struct http_req *r, int status, const char *title, const char *text,
                 const char *addr, int form)
{
	const char *at = strstr(text, "%s");
	struct buf b;

	buf_init(&b);
	buf_printf(&b,
	           "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<meta name=\"viewport\" content=\"width=device-width\">"
	           "<meta name=\"robots\" content=\"noindex\"><title>%s</title></head>\n"
	           "<body><h1>%s</h1>\n<p>",
	           title, title);
	buf_append(&b, text, at ? (size_t)(at - text) : strlen(text));
	if (at) {
		html_escaped(&b, addr ? addr : "");
		buf_puts(&b, at + 2);
	}
	buf_puts(&b, "</p>\n");
	if (form)
		buf_puts(
		    &b,
		    "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" "
		    "value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>\n");
	buf_puts(&b, "</body></html>\n");
	http_add_header(r, "Content-Security-Policy",
	                "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
	http_add_header(r, "Referrer-Policy", "no-referrer");
	http_reply(r, status, "text/html; charset=utf-8", b.data, b.len);
	buf_free(&b);
}

/* The token of the path, checked; 0, or -1 after the 4xx page. */
static int token_check(struct http_req *r, char *account, char *rcpt)
{
	const struct unsub *u = http_req_deps(r)->unsub;
	const char *token = http_req_param(r, "token");
	enum unsub_token_result res =
	    u && token ? unsub_verify(u, token, account, rcpt) : UNSUB_TOKEN_FORGED;

	if (res == UNSUB_TOKEN_OK)
		return 0;
	log_info("http=%s event=unsubscribe result=refused reason=%s", http_req_id(r),
	         res == UNSUB_TOKEN_MALFORMED ? "malformed" : "bad_signature");
	if (res == UNSUB_TOKEN_MALFORMED)
		page(r, 400, "Invalid link", "This is not an unsubscribe link.", NULL, 0);
	else
		page(r, 404, "Invalid link", "This unsubscribe link is not valid.", NULL, 0);
	return -1;
}

/* ---- GET: a button, nothing else ---------------------------------------------------- */

void api_h_unsub_page(struct http_req *r)
{
	char account[UNSUB_ACCOUNT_MAX + 1], rcpt[UNSUB_ADDR_MAX + 1];

	if (token_check(r, account, rcpt) < 0)
		return;
	page(r, 200, "Unsubscribe", "Stop this sender's mail to %s?", rcpt, 1);
}

/* ---- POST: the suppression ------------------------------------------------------------ */

static void add_work(void *arg)
{
	struct unsub_job *j = arg;

	j->rc = store_supp_add(j->st, j->account, j->rcpt, REASON, &j->entry, &j->err);
}

/* A new entry (not a repeated POST): the `suppressed` event (SPEC 6,
 * docs/events.md "For emitters") and the log line. The token names the
 * account and the recipient, not the message: the event has no
 * message_id. */
static void record_suppressed(const struct unsub_job *j)
{
	events_emit(http_req_deps(j->r)->events,
	            &(struct events_event){.type = EVENT_SUPPRESSED,
	                                   .account = j->account,
	                                   .recipient = j->entry.address,
	                                   .reason = REASON});
	log_info("http=%s event=suppressed account=%s address=%s reason=" REASON
	         " via=unsubscribe_link",
	         http_req_id(j->r), log_q(j->account), log_q(j->entry.address));
}

static void add_done(void *arg)
{
	struct unsub_job *j = arg;

	if (j->rc == 1)
		record_suppressed(j);
	if (j->rc == 0 || j->rc == 1) {
		page(j->r, 200, "Unsubscribed",
		     "%s is unsubscribed: this sender's mail will no longer go to it.",
		     j->entry.address, 0);
	} else if (j->rc == STORE_SUPP_NO_ACCOUNT || j->rc == STORE_SUPP_BAD_ADDRESS) {
		page(j->r, 404, "Invalid link", "This unsubscribe link is no longer valid.", NULL,
		     0);
	} else {
		log_err("http=%s event=api_error route=unsubscribe error=%s", http_req_id(j->r),
		        log_q(j->err ? j->err : "unknown"));
		page(j->r, 500, "Try again later", "The unsubscription could not be recorded.",
		     NULL, 0);
	}
	free(j->err);
	free(j);
}

void api_h_unsub_post(struct http_req *r)
{
	struct unsub_job *j = xcalloc(1, sizeof(*j));

	if (token_check(r, j->account, j->rcpt) < 0) {
		free(j);
		return;
	}
	j->r = r;
	j->st = http_req_deps(r)->store;
	http_req_defer(r, add_work, add_done, j);
}
