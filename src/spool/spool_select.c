/*
 * spool_select: which queued recipients and messages a filter picks, for
 * the listings (queue list, GET /v1/queue) and the bulk operations (queue
 * hold/release/delete --domain). PURE (libc and util): the same rules
 * wherever a filter comes from, testable without a spool.
 *
 * A domain matches the part after the recipient's last '@', in any case,
 * a final root dot ignored on either side ("Example.COM." is example.com).
 * A sender matches the envelope sender in any case; "<>" (or "") is the
 * null sender. States are what an operator sees (rcpt_state_shown()):
 * pending and deferred recipients that are not held, and held ones.
 */
#include <string.h>

#include "spool/spool.h"
#include "util/util.h"

/* s without a final '.', as a length. */
static size_t name_len(const char *s)
{
	size_t n = strlen(s);

	return n > 1 && s[n - 1] == '.' ? n - 1 : n;
}

int spool_domain_is(const char *addr, const char *domain)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	size_t n;

	if (!at || !domain)
		return 0;
	n = name_len(++at);
	return n > 0 && n == name_len(domain) && ascii_ncasecmp(at, domain, n) == 0;
}

unsigned spool_filter_state(const char *name)
{
	if (!name)
		return 0;
	if (!strcmp(name, "pending"))
		return SPOOL_SEL_PENDING;
	if (!strcmp(name, "deferred"))
		return SPOOL_SEL_DEFERRED;
	if (!strcmp(name, "held"))
		return SPOOL_SEL_HELD;
	return 0;
}

static unsigned state_bit(const struct rcpt *r)
{
	if (rcpt_is_held(r))
		return SPOOL_SEL_HELD;
	return r->state == RCPT_PENDING ? SPOOL_SEL_PENDING : SPOOL_SEL_DEFERRED;
}

int spool_filter_rcpt(const struct spool_filter *f, const struct rcpt *r)
{
	if (!rcpt_is_open(r))
		return 0;
	if (f->states && !(f->states & state_bit(r)))
		return 0;
	return !f->domain || spool_domain_is(r->addr, f->domain);
}

int spool_filter_sender(const struct spool_filter *f, const struct envelope *e)
{
	if (!f->sender)
		return 1;
	if (!strcmp(f->sender, "<>") || !*f->sender)
		return !*e->mail_from;
	return ascii_casecmp(f->sender, e->mail_from) == 0;
}

size_t spool_filter_count(const struct spool_filter *f, const struct envelope *e)
{
	size_t i, n = 0;

	if (!spool_filter_sender(f, e))
		return 0;
	for (i = 0; i < e->n_rcpts; i++)
		n += (size_t)spool_filter_rcpt(f, &e->rcpts[i]);
	return n;
}
