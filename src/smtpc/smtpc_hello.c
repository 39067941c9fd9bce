/*
 * smtpc_hello: an outbound connection from the connect to READY. The
 * socket is bound to a pool's source address when the destination has one;
 * EHLO says that address's name; STARTTLS follows, and then the host's TLS
 * policy (tls_policy.h) decides what the session must be:
 *
 *   - a host the policy refuses (an MX outside an MTA-STS policy in
 *     enforce mode, a host whose TLSA lookup failed) is never connected to;
 *   - a host that must do TLS (outbound_tls = required, MTA-STS enforce,
 *     DANE, REQUIRETLS) and does not offer STARTTLS, or fails the
 *     handshake, is left for the next one, never retried in plain text;
 *   - a certificate that must verify (smarthost_tls = verify, MTA-STS
 *     enforce, DANE, REQUIRETLS) and does not ends the session before any
 *     command: no credentials, no mail. The reason names the policy;
 *   - MTA-STS testing only logs and reports what would have failed;
 *   - REQUIRETLS needs the extension after TLS, else 5.7.30.
 *
 * Every session outcome with a host of a domain that asked for TLS-RPT
 * goes to the policy's report hook (success, or the RFC 8460 result type).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "smtpc/smtpc_int.h"
#include "tls/tls.h"
#include "util/util.h"

/* ---------- the host's policy ---------- */

const struct tls_host_pol *smtpc_host_pol(const struct smtpc_conn *c)
{
	return tls_dest_pol_host(c->t.pol, c->host_i, c->host);
}

int smtpc_tls_required(const struct smtpc_conn *c)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);

	return c->t.tls_required || (h && h->tls_required);
}

/* Our end of the connection, for TLS-RPT's sending-mta-ip. */
static void local_addr(const struct smtpc_conn *c, char *out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const void *a = NULL;

	out[0] = '\0';
	if (c->src[0]) {
		snprintf(out, DNS_ADDR_STRLEN, "%s", c->src);
		return;
	}
	if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		a = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (a && !inet_ntop(ss.ss_family, a, out, DNS_ADDR_STRLEN))
		out[0] = '\0';
}

/* One session outcome with host h, for TLS-RPT. */
static void report(const struct smtpc_conn *c, const struct tls_host_pol *h, enum tlsrpt_result r)
{
	const struct tls_dest_pol *p = c->t.pol;
	char src[DNS_ADDR_STRLEN];

	if (!p || !p->report || !h)
		return;
	local_addr(c, src);
	p->report(p->report_arg, p, h, c->addr, src, r);
}

/* "MTA-STS policy of example.com (enforce)": the policy a failure is about. */
static void policy_label(const struct smtpc_conn *c, const struct tls_host_pol *h, const char *why,
                         struct buf *b)
{
	if (h->requiretls) { /* the failure's own text names REQUIRETLS */
		buf_puts(b, why ? why : "");
		return;
	}
	if (h->pol == TLS_POL_DANE)
		buf_printf(b, "DANE: TLSA records of _25._tcp.%s", h->host);
	else if (h->pol == TLS_POL_STS)
		buf_printf(b, "MTA-STS policy of %s (enforce)", c->t.pol->domain);
	else
		buf_puts(b, "TLS is required");
	if (why)
		buf_printf(b, ": %s", why);
}

/* The session ends with failure f because of h's policy. */
static void policy_fail(struct smtpc_conn *c, const struct tls_host_pol *h, enum smtpc_failure f,
                        const char *why)
{
	enum smtpc_stage stage = c->state == C_TLS ? SMTPC_STAGE_TLS : SMTPC_STAGE_EHLO;
	struct smtpc_verdict v;
	struct buf b;

	buf_init(&b);
	policy_label(c, h, why, &b);
	memset(&v, 0, sizeof(v));
	smtpc_judge_failure(&c->peer, stage, f, b.data, &v);
	v.tls_policy = h->pol == TLS_POL_STS || h->pol == TLS_POL_DANE;
	v.plain_ok = 0;
	buf_free(&b);
	smtpc_session_failed(c, &v);
}

int smtpc_host_refused(struct smtpc_conn *c)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);
	struct smtpc_peer peer = {.host = c->host};
	struct smtpc_verdict v;

	if (!h || !h->refuse)
		return 0;
	memset(&v, 0, sizeof(v));
	smtpc_judge_failure(&peer, SMTPC_STAGE_CONNECT, SMTPC_FAIL_TLS_POLICY, h->why, &v);
	v.tls_policy = 1;
	log_info("conn=%s dest=%s event=tls_policy_refused host=%s reason=%s", c->id, c->dest,
	         c->host, log_q(h->why));
	c->addr[0] = '\0';
	report(c, h, h->refuse_result);
	smtpc_verdict_clear(&c->last);
	c->last = v;
	return 1;
}

/* ---------- source addresses ---------- */

static int bound_socket(const struct conf_net *a, char *text, const char **why)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memset(&ss, 0, sizeof(ss));
	if (a->family == AF_INET6) {
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, a->addr, 16);
		len = sizeof(struct sockaddr_in6);
	} else {
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, a->addr, 4);
		len = sizeof(struct sockaddr_in);
	}
	ss.ss_family = (sa_family_t)a->family;
	inet_ntop(a->family, a->addr, text, DNS_ADDR_STRLEN);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0)
		return fd;
	*why = strerror(errno);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The pool's next address of the family of the host: bound, or skipped. */
static int pool_socket(struct smtpc_conn *c, int family, const char **why)
{
	const struct conf_pool *p = c->t.pool;
	size_t n = p->n_source_addresses;

	for (size_t k = 0; k < n; k++) {
		size_t i = (*c->t.pool_turn + k) % n;
		char text[DNS_ADDR_STRLEN];
		int fd;

		if (p->source_addresses[i].family != family)
			continue;
		if ((fd = bound_socket(&p->source_addresses[i], text, why)) >= 0) {
			*c->t.pool_turn = (unsigned)(i + 1);
			c->helo_now = p->ehlo_names[i];
			snprintf(c->src, sizeof(c->src), "%s", text);
			return fd;
		}
		log_warn("conn=%s dest=%s event=source_address_skipped pool=%s src=%s error=%s",
		         c->id, c->dest, p->name, text, log_q(*why));
	}
	*why = "no usable source address of this address family in the pool";
	return -1;
}

int smtpc_socket(struct smtpc_conn *c, const struct sockaddr *sa, const char **why)
{
	c->src[0] = '\0';
	c->helo_now = c->helo;
	if (c->t.pool && c->t.pool_turn)
		c->fd = pool_socket(c, sa->sa_family, why);
	else if ((c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		*why = strerror(errno);
	return c->fd;
}

/* ---------- EHLO, STARTTLS, AUTH ---------- */

void smtpc_send_ehlo(struct smtpc_conn *c)
{
	smtpc_send_line(c, "EHLO %s", c->helo_now);
	smtpc_set_state(c, C_EHLO);
}

void smtpc_become_ready(struct smtpc_conn *c)
{
	c->ever_ready = 1;
	smtpc_set_state(c, C_READY);
	log_debug("conn=%s dest=%s event=smtpc_ready host=%s addr=%s tls=%s", c->id, c->dest,
	          c->host, c->addr, smtpc_conn_tls(c));
	c->cbs.ready(c->arg, c);
}

/* The name (or TLSA records) the certificate must match. */
static int expect_peer(struct smtpc_conn *c)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);

	if (h && h->n_tlsa)
		return tls_client_dane(c->ssl, c->host, h->tlsa, h->n_tlsa) > 0 ? 0 : -1;
	return tls_client_expect(c->ssl, c->t.verify_host ? c->t.verify_host : c->host);
}

void smtpc_start_tls(struct smtpc_conn *c)
{
	struct bufferevent *tb;

	c->ssl = SSL_new(c->t.tls);
	if (!c->ssl) {
		smtpc_fail_with(c, SMTPC_FAIL_TLS, "cannot create SSL");
		return;
	}
	if (expect_peer(c) < 0) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		smtpc_fail_with(c, SMTPC_FAIL_TLS, "cannot set the name or TLSA records to verify");
		return;
	}
	tb = bufferevent_openssl_filter_new(c->base, c->bev, c->ssl, BUFFEREVENT_SSL_CONNECTING,
	                                    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!tb) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		smtpc_fail_with(c, SMTPC_FAIL_TLS, "cannot start TLS");
		return;
	}
	c->bev = tb;
	smtpc_setcb(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	smtpc_set_state(c, C_TLS);
}

void smtpc_tls_failed(struct smtpc_conn *c, const char *text)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);

	metrics_inc_l2(M_TLS_HANDSHAKES, MD_OUTBOUND, MRES_FAILED);
	report(c, h, TLSRPT_VALIDATION_FAILURE);
	if (h && h->requiretls)
		policy_fail(c, h, SMTPC_FAIL_REQUIRETLS_TLS, text);
	else if (h && h->tls_required && h->pol != TLS_POL_NONE)
		policy_fail(c, h, SMTPC_FAIL_TLS, text);
	else
		smtpc_fail_with(c, SMTPC_FAIL_TLS, text);
}

static void verify_failed(struct smtpc_conn *c, const struct tls_host_pol *h, const char *why)
{
	log_warn(
	    "conn=%s dest=%s event=tls_verify_failed host=%s addr=%s port=%u policy=%s reason=%s",
	    c->id, c->dest, c->host, c->addr, c->t.port, tls_pol_name(h ? h->pol : TLS_POL_NONE),
	    log_q(why));
	if (h && h->verify_required)
		policy_fail(c, h, h->requiretls ? SMTPC_FAIL_REQUIRETLS_TLS : SMTPC_FAIL_TLS_VERIFY,
		            why);
	else
		smtpc_fail_with(c, SMTPC_FAIL_TLS_VERIFY, why);
}

/* The handshake is done: is the peer who the policy needs it to be? Its
 * verdict comes before any command, so no credentials and no mail reach
 * an unverified peer when verification is required. */
void smtpc_tls_established(struct smtpc_conn *c)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);
	const char *why = NULL;
	enum tlsrpt_result r;

	c->tls_active = 1;
	metrics_inc_l2(M_TLS_HANDSHAKES, MD_OUTBOUND, MRES_OK);
	c->verified = tls_peer_verified(c->ssl, &why);
	r = c->verified ? TLSRPT_OK : tls_verify_result_type(c->ssl);
	if (!c->verified && (c->t.verify_required || (h && h->verify_required))) {
		report(c, h, r);
		verify_failed(c, h, why);
		return;
	}
	if (h && h->testing && !c->verified)
		log_info("conn=%s dest=%s event=tls_policy_testing host=%s addr=%s policy=mta-sts "
		         "result=%s reason=%s",
		         c->id, c->dest, c->host, c->addr, tlsrpt_result_name(r), log_q(why));
	report(c, h, h && h->testing ? r : TLSRPT_OK);
	smtpc_send_ehlo(c); /* RFC 3207 4.2: start over after TLS */
}

static void send_auth(struct smtpc_conn *c)
{
	const char *colon = strchr(c->auth, ':');
	size_t ul = (size_t)(colon - c->auth), pl = strlen(colon + 1);
	unsigned char raw[600];
	char b64[820];

	/* RFC 4616: authzid NUL authcid NUL passwd; empty authzid */
	if (ul + pl + 2 > sizeof(raw)) {
		smtpc_fail_with(c, SMTPC_FAIL_PROTOCOL, "smarthost credentials too long");
		return;
	}
	raw[0] = '\0';
	memcpy(raw + 1, c->auth, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, colon + 1, pl);
	base64_encode(raw, ul + pl + 2, b64);
	smtpc_send_line(c, "AUTH PLAIN %s", b64);
	memset(raw, 0, sizeof(raw));
	memset(b64, 0, sizeof(b64));
	smtpc_set_state(c, C_AUTH);
}

/* No TLS on this session: may it go on? 0 yes, -1 it failed (handled). */
static int plain_allowed(struct smtpc_conn *c, const struct tls_host_pol *h)
{
	struct smtpc_verdict v;

	if (!c->no_tls)
		report(c, h, TLSRPT_STARTTLS_NOT_SUPPORTED);
	if (h && h->requiretls) {
		policy_fail(c, h, SMTPC_FAIL_REQUIRETLS_TLS, "no STARTTLS");
		return -1;
	}
	if (h && h->tls_required && h->pol != TLS_POL_NONE) {
		policy_fail(c, h, SMTPC_FAIL_TLS_REQUIRED, NULL);
		return -1;
	}
	memset(&v, 0, sizeof(v));
	if (smtpc_judge_tls(&c->peer, &c->caps, smtpc_tls_required(c), c->tls_active, &v) < 0) {
		smtpc_session_failed(c, &v);
		return -1;
	}
	return 0;
}

void smtpc_after_hello(struct smtpc_conn *c)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);

	if (!c->tls_active && !c->no_tls && c->caps.starttls && c->t.tls) {
		smtpc_send_line(c, "STARTTLS");
		smtpc_set_state(c, C_STARTTLS);
		return;
	}
	if (!c->tls_active && plain_allowed(c, h) < 0)
		return;
	if (c->tls_active && h && h->requiretls && !c->caps.requiretls) {
		policy_fail(c, h, SMTPC_FAIL_REQUIRETLS_EXT, NULL);
		return;
	}
	if (c->auth && c->tls_active) {
		send_auth(c);
		return;
	}
	if (c->auth) {
		smtpc_fail_with(c, SMTPC_FAIL_TLS_REQUIRED,
		                "smarthost credentials are sent only over TLS");
		return;
	}
	smtpc_become_ready(c);
}
