/*
 * main: the command line's root and the wiring of a running server: it owns
 * the event base, the start-up and shutdown order and the signals. The
 * admin commands live in src/cli/, control requests in src/ctl/, the
 * delivery counters in src/store/.
 *
 * Which configuration: -c FILE, else $POSTHORN_CONFIG, else
 * POSTHORN_SYSTEM_CONF (/etc/posthorn/posthorn.conf) if it exists, else
 * the embedded default, which every command then names on stderr.
 *
 * Start-up: config → log → event base → bind listeners → drop privileges →
 * data dir, store, spool (recovered) → work pool → serve.
 * Shutdown (SIGTERM/SIGINT): stop accepting, let sessions finish their
 * transaction (bounded by [server] drain_timeout), wait for the spool's pending
 * commits, close the store, exit 0.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_send.h"
#include "cli/cli.h"
#include "cluster/cluster.h"
#include "cluster/cluster_quota.h"
#include "cluster/cluster_rep.h"
#include "cluster/cluster_throttle.h"
#include "conf/conf.h"
#include "db/db.h"
#include "ctl/ctl.h"
#include "dkim/dkim.h"
#include "dkim/dkim_watch.h"
#include "deliv/deliv.h"
#include "dns/dns.h"
#include "events/events.h"
#include "http/http.h"
#include "log/log.h"
#include "policy/policy.h"
#include "sched/sched.h"
#include "smtpc/smtpc_conn.h"
#include "smtpd/smtpd.h"
#include "spool/spool.h"
#include "store/store.h"
#include "store/store_nodes.h"
#include "tls/tls.h"
#include "unsub/unsub.h"
#include "util/util.h"
#include "work/work.h"

#define WORK_THREADS 4

/* The system-wide configuration file. Only the build of the e2e test
 * binary that checks this step sets another path (see the Makefile). */
#ifndef POSTHORN_SYSTEM_CONF
#define POSTHORN_SYSTEM_CONF "/etc/posthorn/posthorn.conf"
#endif

/* Removes "-c FILE" / "--config FILE" / "--config=FILE" wherever it is. */
static int take_config_opt(int *argc, char **argv, const char **file)
{
	int i, j;

	for (i = 1; i < *argc; i++) {
		int n = 0;
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "posthorn: %s needs a file name\n", argv[i]);
				return -1;
			}
			*file = argv[i + 1];
			n = 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			*file = argv[i] + 9;
			n = 1;
		}
		if (n) {
			for (j = i; j + n <= *argc; j++)
				argv[j] = argv[j + n];
			*argc -= n;
			i--;
		}
	}
	return 0;
}

/* -c FILE, $POSTHORN_CONFIG, the system file if it exists, or NULL: the
 * embedded default. */
static const char *find_config(const char *opt)
{
	const char *env = getenv("POSTHORN_CONFIG");

	if (opt)
		return opt;
	if (env && *env)
		return env;
	if (access(POSTHORN_SYSTEM_CONF, F_OK) == 0)
		return POSTHORN_SYSTEM_CONF;
	return NULL;
}

/* One line on stderr, so that nobody reads an empty queue in the wrong
 * place without knowing it. */
static void say_embedded_default(const struct conf *c)
{
	char cwd[4096] = "";
	const char *d = c->data_dir;

	if (d[0] != '/' && getcwd(cwd, sizeof(cwd)))
		while (d[0] == '.' && d[1] == '/')
			d += 2;
	fprintf(stderr,
	        "posthorn: no -c FILE, $POSTHORN_CONFIG or %s: using the embedded default "
	        "configuration, data directory %s%s%s\n",
	        POSTHORN_SYSTEM_CONF, cwd, *cwd && strcmp(cwd, "/") ? "/" : "", d);
}

static struct conf *load_conf(const char *file)
{
	char *errors = NULL;
	struct conf *c = conf_load(file, &errors);

	if (!c) {
		fputs(errors ? errors : "posthorn: cannot load configuration\n", stderr);
		free(errors);
	} else if (!file) {
		say_embedded_default(c);
	}
	if (c)
		db_set_answer_limit((unsigned)(c->cluster_postgres_timeout * 1000));
	return c;
}

/* ---------- serve ---------- */

struct server {
	const struct conf *conf;
	struct event_base *base;
	struct smtpd_deps deps;
	struct smtpd *smtpd;
	struct dns *dns;
	SSL_CTX *client_tls;
	struct policy *policy;
	struct sched *sched;
	struct ctl *ctl;
	struct http *http; /* NULL without [http] */
	struct ctl_deps ctl_deps;
	struct conf **reloaded; /* configs loaded by SIGHUP: in use until exit */
	size_t n_reloaded;
	struct store_counters *counters;
	struct api_tmpl_cache *templates;
	struct events *events; /* the event writer (events_start) */
	struct events_hooks *hooks;
	struct dkim_watch *dkim_watch;   /* reloads deps.dkim's keys, rotation rounds */
	struct deliv *deliv;             /* quotas, the reputation guard, VERP */
	struct cluster_redis *redis;     /* [cluster] redis, or NULL */
	struct cluster_beat *beat;       /* the row in the nodes table */
	struct spool_recovery *recovery; /* listed at start, read while serving */
	uint64_t started_ms;
	char node_id[NODE_ID_LEN + 1]; /* DATA_DIR/node-id */
	int node_new;                  /* drawn at this start */
	int failed;                    /* recovery failed: exit 1 */
	struct event *ev_term, *ev_int, *ev_hup, *ev_deadline;
	int stopping;
	int waiting; /* parts still draining: smtpd, sched */
};

static void on_drained(void *arg)
{
	struct server *srv = arg;

	if (--srv->waiting > 0)
		return;
	log_info("event=drained");
	event_base_loopbreak(srv->base);
}

static void count_event(void *arg, const char *account, const char *rcpt, const char *event)
{
	store_counters_count(arg, account, rcpt, event);
}

/* A durable message (SMTP or API): its accepted events (with the sender
 * and the Subject), its counts, the deliverability side's VERP record. */
static void note_queued(struct server *srv, const struct events_message *m)
{
	size_t i;

	events_accepted(srv->events, m);
	for (i = 0; i < m->n_rcpts; i++)
		store_counters_count(srv->counters, m->account, m->rcpts[i], "accepted");
	deliv_message_queued(srv->deliv, m->id, m->account, m->rcpts, m->n_rcpts);
}

/* A message committed by a session (the smtpd's one trip): the scheduler
 * indexes its envelope without reading the file back. */
static void on_queued(void *arg, const struct smtpd_queued *q)
{
	struct server *srv = arg;
	const struct envelope *env = q->env;
	const char **rcpts = xcalloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*rcpts));
	size_t i;

	for (i = 0; i < env->n_rcpts; i++)
		rcpts[i] = env->rcpts[i].addr;
	note_queued(srv, &(struct events_message){.id = env->id,
	                                          .account = env->account,
	                                          .from = env->mail_from,
	                                          .subject = q->subject,
	                                          .rcpts = rcpts,
	                                          .n_rcpts = env->n_rcpts});
	free(rcpts);
	sched_add(srv->sched, env);
}

/* API mail: one trip too, the send route's committed envelope. */
static void on_api_queued(void *arg, const struct envelope *env, const struct events_message *m)
{
	struct server *srv = arg;

	note_queued(srv, m);
	sched_add(srv->sched, env);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warn("event=drain_timeout seconds=%llu", (unsigned long long)srv->conf->drain_timeout);
	event_base_loopbreak(srv->base);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tv = {(time_t)srv->conf->drain_timeout, 0};

	if (srv->stopping) {
		log_warn("event=second_signal action=exit_now");
		event_base_loopbreak(srv->base);
		return;
	}
	srv->stopping = 1;
	log_info("event=shutdown signal=%d", (int)sig);
	db_hurry(); /* a silent database holds no stop */
	evtimer_add(srv->ev_deadline, &tv);
	srv->waiting = 3;
	http_drain(srv->http, on_drained, srv);
	smtpd_drain(srv->smtpd, on_drained, srv);
	sched_drain(srv->sched, on_drained, srv);
}

static SSL_CTX *load_tls(const struct conf *c)
{
	char *err = NULL;
	SSL_CTX *ctx;

	if (!c->tls_cert || !c->tls_key)
		return NULL;
	ctx = tls_server_ctx_new(c->tls_cert, c->tls_key, &err);
	if (!ctx) {
		log_err("event=tls_config_error error=%s", log_q(err));
		free(err);
	}
	return ctx;
}

static void apply_log_conf(const struct conf *c)
{
	log_setup((enum log_dest)c->log, (enum log_format)c->log_format,
	          (enum log_level)c->log_level);
}

/* What SIGHUP applies; every other key that changed needs a restart. A
 * name ending in '.' stands for every key under it. */
static const char *const RELOADABLE[] = {"tls.cert",   "tls.key",           "domain.",
                                         "server.log", "server.log_format", "server.log_level"};

static void on_changed_key(void *arg, const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(RELOADABLE); i++) {
		size_t n = strlen(RELOADABLE[i]);
		if (RELOADABLE[i][n - 1] == '.' ? !strncmp(key, RELOADABLE[i], n)
		                                : !strcmp(key, RELOADABLE[i]))
			return;
	}
	log_warn("event=reload_needs_restart key=%s", log_q(key));
}

/* A file that does not load: one line per error ("FILE:LINE: message"). */
static void log_reload_errors(char *errors)
{
	char *line, *save = NULL;

	if (!errors || !*errors)
		log_err("event=reload_error error=%s", log_q("the file could not be loaded"));
	for (line = errors ? strtok_r(errors, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save))
		log_err("event=reload_error error=%s", log_q(line));
}

/* SIGHUP: the file again. What can change at run time does (RELOADABLE);
 * each other key that differs from the running configuration is logged by
 * name as needing a restart. A file with errors changes nothing. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	char *errors = NULL;
	struct conf *c = srv->conf->file ? conf_load(srv->conf->file, &errors) : NULL;
	SSL_CTX *ctx;

	if (srv->conf->file && !c) {
		log_reload_errors(errors);
		free(errors);
		return;
	}
	if (c) {
		srv->reloaded = xrealloc(srv->reloaded, (srv->n_reloaded + 1) * sizeof(*c));
		srv->reloaded[srv->n_reloaded++] = c;
		apply_log_conf(c);
		conf_diff(srv->conf, c, on_changed_key, srv);
		sched_set_domains(srv->sched, c);
		log_info("event=reload what=domains count=%zu", c->n_domains);
	}
	dkim_watch_run(srv->dkim_watch, 1); /* keys reread, pending records looked up */
	/* The old context stays alive in the sessions that use it. */
	if ((ctx = load_tls(c ? c : srv->conf))) {
		if (srv->deps.tls)
			SSL_CTX_free(srv->deps.tls);
		smtpd_set_tls(srv->smtpd, ctx);
		log_info("event=reload what=tls");
	}
}

/* Logs why the server cannot start (err, which it frees); returns -1. */
static int start_failed(char *err)
{
	log_err("event=start_error error=%s", log_q(err ? err : "unknown error"));
	free(err);
	return -1;
}

static int make_data_dir(const char *dir)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return start_failed(xasprintf("cannot create %s: %s", dir, strerror(errno)));
	return 0;
}

/* When started as root with [server] user set: give the data dir to that
 * user, then become it (with its groups). Ports are already bound. */
static int drop_privileges(const struct conf *c)
{
	struct passwd *pw;

	if (geteuid() != 0 || !c->user || !*c->user)
		return 0;
	if (!(pw = getpwnam(c->user)))
		return start_failed(xasprintf("no such user %s", c->user));
	/* The user's own groups, as systemd's User= gives them: what
	 * check-config checks the TLS files against. */
	if (chown(c->data_dir, pw->pw_uid, pw->pw_gid) < 0 ||
	    initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return start_failed(xasprintf("cannot become %s: %s", c->user, strerror(errno)));
	log_info("event=privileges_dropped user=%s", c->user);
	return 0;
}

static char *dns_servers_csv(const struct conf *c)
{
	struct buf b;
	size_t i;

	if (c->n_dns_servers == 0)
		return NULL;
	buf_init(&b);
	for (i = 0; i < c->n_dns_servers; i++)
		buf_printf(&b, "%s%s", i ? "," : "", c->dns_servers[i].text);
	return b.data;
}

/* A TLS-RPT report was queued: deliver it like any message. */
static void on_report_queued(void *arg, const char *id)
{
	struct server *srv = arg;

	sched_add_id(srv->sched, id);
}

static struct policy *open_policy(struct server *srv, char **err)
{
	struct policy_deps pd;

	memset(&pd, 0, sizeof(pd));
	pd.base = srv->base;
	pd.conf = srv->conf;
	pd.dns = srv->dns;
	pd.store = srv->deps.store;
	pd.work = srv->deps.work;
	pd.spool = srv->deps.spool;
	pd.dkim = srv->deps.dkim;
	pd.queued = on_report_queued;
	pd.queued_arg = srv;
	return policy_new(&pd, err);
}

/* The delivery side: DNS, client TLS, the TLS policies, the scheduler, the
 * control socket. */
static int open_delivery(struct server *srv)
{
	struct dns_opts o;
	struct sched_deps sd;
	char *err = NULL, *servers = dns_servers_csv(srv->conf);

	memset(&o, 0, sizeof(o));
	o.servers = servers;
	o.trust_ad = srv->conf->dnssec == CONF_DNSSEC_TRUST_AD;
	srv->dns = dns_new(srv->base, &o, &err);
	free(servers);
	if (!srv->dns || !(srv->client_tls = tls_client_ctx_new(srv->conf->tls_ca_file, &err)) ||
	    !(srv->policy = open_policy(srv, &err))) {
		return start_failed(err);
	}
	memset(&sd, 0, sizeof(sd));
	sd.base = srv->base;
	sd.conf = srv->conf;
	sd.spool = srv->deps.spool;
	sd.dns = srv->dns;
	cluster_redis_set_dns(srv->redis, srv->dns); /* its host name without blocking */
	sd.work = srv->deps.work;
	sd.client_tls = srv->client_tls;
	sd.policy = srv->policy;
	sd.count = count_event;
	sd.count_arg = srv->counters;
	sd.deliv = srv->deliv;
	sd.events = srv->events;
	sd.redis = srv->redis;
	sd.nodes = srv->conf->cluster_nodes;
	sd.node_id = srv->node_id;
	sd.store = srv->deps.store;
	srv->sched = sched_new(&sd);
	if (sched_pause_reload(srv->sched, &err) < 0)
		return start_failed(err);
	srv->deps.queued = on_queued;
	srv->deps.queued_arg = srv;
	srv->ctl_deps.sched = srv->sched;
	if (!(srv->ctl =
	          ctl_new(srv->base, srv->conf->data_dir, ctl_dispatch, &srv->ctl_deps, &err))) {
		return start_failed(err);
	}
	return 0;
}

/* With PostgreSQL, the node's queue-ID tag is claimed before any queue ID
 * is made (cluster_node_tag); a clash stops the start. */
static int claim_tag(struct server *srv)
{
	char *err = NULL;

	if (!srv->conf->cluster_postgres || !*srv->conf->cluster_postgres)
		return 0;
	if (cluster_node_tag(srv->deps.store, srv->conf->data_dir, srv->node_id, srv->node_new,
	                     &err) < 0)
		return start_failed(err);
	id_set_node((uint32_t)node_id_tag(srv->node_id));
	log_info("event=node_tag tag=%.3s id=%s", srv->node_id, srv->node_id);
	return 0;
}

/* The queue is listed (and tmp/ emptied) before serving; it is read
 * while serving (sched_recover, docs/delivery.md). */
static int open_data(struct server *srv)
{
	char *err = NULL;

	if (!(srv->deps.store = store_open_url(srv->conf->data_dir, srv->conf->cluster_postgres,
	                                       srv->conf->cluster_secret_key_file, &err)))
		return start_failed(err);
	if (claim_tag(srv) < 0)
		return -1;
	if (!(srv->deps.spool = spool_open(srv->conf->data_dir, srv->base, &err)))
		return start_failed(err);
	store_set_node(srv->deps.store, srv->node_id);
	if (!(srv->recovery = spool_recover_begin(srv->deps.spool)))
		return -1;
	/* before delivery starts: Idempotency-Key claims a crash left */
	if (api_send_idem_recover(srv->deps.store, srv->deps.spool, &err) < 0)
		return start_failed(err);
	return 0;
}

/* The node's ID (made the first time): its tag goes into every queue ID. */
static int open_node(struct server *srv)
{
	char *err = NULL;
	int made;

	if (cluster_node_id(srv->conf->data_dir, srv->node_id, &made, &err) < 0)
		return start_failed(err);
	id_set_node((uint32_t)node_id_tag(srv->node_id));
	srv->node_new = made;
	log_info("event=node id=%s new=%d", srv->node_id, made);
	return 0;
}

static void on_recovered(void *arg, long good)
{
	struct server *srv = arg;

	if (good < 0) { /* the environment failed (EMFILE, EACCES...): stop */
		log_err("event=start_error error=%s", log_q("spool recovery failed"));
		srv->failed = 1;
		event_base_loopbreak(srv->base);
		return;
	}
	log_info("event=queue_loaded messages=%ld seconds=%.1f", good,
	         (double)(clock_mono_ms() - srv->started_ms) / 1000.0);
}

/* What accept adds (smtpd_sign.c): DKIM keys loaded before the first
 * session, so that no mail goes out unsigned at start (TLS-RPT report
 * mails are signed with them too); List-Unsubscribe. Before the delivery
 * side, which is given the signer. */
static int open_signing(struct server *srv)
{
	const struct conf *c = srv->conf;
	char *err = NULL;

	if (!(srv->deps.dkim = dkim_signer_new(c->data_dir, &err)) ||
	    dkim_signer_refresh(srv->deps.dkim, srv->deps.store, 1, &err) < 0 ||
	    !(srv->deps.unsub = unsub_new(c->data_dir, c->http_public_url, &err)) ||
	    unsub_share_key(srv->deps.unsub, srv->deps.store, &err) < 0 ||
	    api_track_key_share(c, srv->deps.store, &err) < 0) {
		return start_failed(err);
	}
	return 0;
}

/* After the delivery side (its DNS): key reloads and rotation rounds, the
 * accounts with List-Unsubscribe. */
static void watch_signing(struct server *srv)
{
	const struct conf *c = srv->conf;

	srv->dkim_watch =
	    dkim_watch_new(&(struct dkim_watch_deps){.base = srv->base,
	                                             .work = srv->deps.work,
	                                             .dns = srv->dns,
	                                             .store = srv->deps.store,
	                                             .signer = srv->deps.dkim,
	                                             .data_dir = c->data_dir,
	                                             .refresh_ms = 1000,
	                                             .check_ms = c->dkim_check_interval * 1000});
	dkim_watch_run(srv->dkim_watch, 0);
	unsub_watch(srv->deps.unsub, srv->base, srv->deps.work, srv->deps.store, 1000);
}

/* A paused account was resumed: the messages it kept back are due. */
static void release_held(void *arg, const char *id)
{
	struct server *srv = arg;

	sched_retry(srv->sched, id);
}

/* [cluster] redis: dialled from the loop, with its scripts. */
static struct cluster_redis *open_redis(struct server *srv)
{
	const struct conf *c = srv->conf;
	struct cluster_url u;
	struct cluster_redis *r;
	const char *why;
	char shown[CLUSTER_URL_SHOW_MAX];

	if (!c->cluster_redis || !*c->cluster_redis ||
	    cluster_url_parse(c->cluster_redis, &u, &why) < 0)
		return NULL; /* the config check refused a bad URL already */
	r = cluster_redis_new(srv->base, &u);
	cluster_quota_setup(r);
	cluster_throttle_setup(r);
	cluster_rep_setup(r);
	cluster_node_claim(r, srv->node_id);
	cluster_url_show(&u, shown); /* without the password */
	log_info("event=cluster redis=%s nodes=%llu", log_q(shown),
	         (unsigned long long)c->cluster_nodes);
	return r;
}

/* Deliverability: after the store and the work pool, before delivery. */
static int open_deliv(struct server *srv)
{
	struct deliv_deps dd;
	char *err = NULL;

	memset(&dd, 0, sizeof(dd));
	dd.base = srv->base;
	dd.conf = srv->conf;
	dd.store = srv->deps.store;
	dd.work = srv->deps.work;
	dd.count = count_event; /* a domain: counted as a recipient at it */
	dd.count_arg = srv->counters;
	dd.release = release_held;
	dd.release_arg = srv;
	dd.events = srv->events;
	dd.redis = srv->redis = open_redis(srv);
	if (!(srv->deliv = deliv_open(&dd, &err)))
		return start_failed(err);
	srv->deps.deliv = srv->deliv;
	deliv_start(srv->deliv);
	return 0;
}

static void add_signals(struct server *srv)
{
	signal(SIGPIPE, SIG_IGN);
	srv->ev_term = evsignal_new(srv->base, SIGTERM, on_stop_signal, srv);
	srv->ev_int = evsignal_new(srv->base, SIGINT, on_stop_signal, srv);
	srv->ev_hup = evsignal_new(srv->base, SIGHUP, on_hup, srv);
	srv->ev_deadline = evtimer_new(srv->base, on_deadline, srv);
	event_add(srv->ev_term, NULL);
	event_add(srv->ev_int, NULL);
	event_add(srv->ev_hup, NULL);
}

/* A start that failed once the listeners were open, before the rest:
 * what is open so far goes (a node-tag clash is an expected exit). */
static void start_abort(struct server *srv)
{
	http_free(srv->http);
	smtpd_free(srv->smtpd);
	if (srv->deps.spool)
		spool_close(srv->deps.spool);
	if (srv->deps.store)
		store_close(srv->deps.store);
	if (srv->deps.tls)
		SSL_CTX_free(srv->deps.tls);
	event_base_free(srv->base);
}

/* Privileges dropped, the node's ID, the store and the spool. */
static int open_core(struct server *srv)
{
	if (drop_privileges(srv->conf) < 0 || open_node(srv) < 0 || open_data(srv) < 0) {
		start_abort(srv);
		return -1;
	}
	return 0;
}

static void server_close(struct server *srv)
{
	/* Order: nothing new may start (ctl, scheduler stopped, messages being
	 * received dropped); the work pool finishes its jobs and their
	 * callbacks; the spool finishes pending commits (their done() still
	 * finds its session); then sessions, connections and the store go. */
	ctl_free(srv->ctl);
	if (srv->sched)
		sched_stop(srv->sched);
	smtpd_abort_receiving(srv->smtpd);
	policy_stop(srv->policy);
	if (srv->dkim_watch)
		dkim_watch_stop(srv->dkim_watch);
	unsub_stop(srv->deps.unsub);
	store_counters_stop(srv->counters);
	if (srv->deps.work)
		work_pool_free(srv->deps.work);
	cluster_beat_stop(srv->beat); /* no beat runs now: the pool has stopped */
	deliv_redis_gone(srv->deliv);
	cluster_redis_free(srv->redis); /* what waits on it is answered: decided locally */
	srv->redis = NULL;
	http_free(srv->http); /* after the pool: its jobs' callbacks may reply */
	api_tmpl_cache_free(srv->templates);
	if (srv->deps.spool)
		spool_close(srv->deps.spool);
	store_counters_free(srv->counters);
	smtpd_free(srv->smtpd);
	smtpc_conn_free_all();
	if (srv->sched)
		sched_free(srv->sched);
	policy_free(srv->policy); /* after the spool's last commits, before DNS */
	dns_free(srv->dns);
	if (srv->dkim_watch)
		dkim_watch_free(srv->dkim_watch);
	dkim_signer_free(srv->deps.dkim);
	unsub_free(srv->deps.unsub);
	if (srv->client_tls)
		SSL_CTX_free(srv->client_tls);
	deliv_close(srv->deliv); /* its last counts, after every session and delivery */
	while (srv->n_reloaded > 0)
		conf_free(srv->reloaded[--srv->n_reloaded]);
	free(srv->reloaded);
	events_stop(srv->events, srv->hooks); /* every emitter has stopped */
	if (srv->deps.store)
		store_close(srv->deps.store);
	if (srv->deps.tls)
		SSL_CTX_free(srv->deps.tls);
	event_free(srv->ev_term);
	event_free(srv->ev_int);
	event_free(srv->ev_hup);
	event_free(srv->ev_deadline);
	event_base_free(srv->base);
}

/* Every connection is a descriptor: the soft limit goes up to the hard
 * one (an unlimited hard limit: 1M, the kernel's usual nr_open). */
static void raise_fd_limit(void)
{
	struct rlimit r;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &r) < 0)
		return;
	was = r.rlim_cur;
	r.rlim_cur = r.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : r.rlim_max;
	if (r.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &r) < 0)
		r.rlim_cur = was;
	log_info("event=fd_limit limit=%llu was=%llu", (unsigned long long)r.rlim_cur,
	         (unsigned long long)was);
}

/* The heartbeat, which renews the queue-ID tag claim with PostgreSQL. */
static void start_beat(struct server *srv)
{
	const struct conf *c = srv->conf;

	srv->beat = cluster_beat_start(
	    &(struct cluster_beat_deps){.base = srv->base,
	                                .work = srv->deps.work,
	                                .store = srv->deps.store,
	                                .sched = srv->sched,
	                                .redis = srv->redis,
	                                .node_id = srv->node_id,
	                                .hostname = c->hostname,
	                                .claim_tag = c->cluster_postgres && *c->cluster_postgres});
}

static int cmd_serve(int argc, char **argv, const struct conf *c)
{
	struct server srv;
	char *err = NULL;
	size_t n;

	if (cli_parse(argc, argv, NULL, 0, NULL, &n, 0) != CLI_OK)
		return CLI_USAGE;
	apply_log_conf(c);
	memset(&srv, 0, sizeof(srv));
	srv.conf = c;
	srv.started_ms = clock_mono_ms();
	evthread_use_pthreads();
	srv.base = event_base_new();
	if (!srv.base)
		fatal("event=start_error error=event_base_new");
	srv.deps.base = srv.base;
	srv.deps.conf = c;
	raise_fd_limit();
	srv.deps.tls = load_tls(c);
	if ((c->tls_cert && !srv.deps.tls) || make_data_dir(c->data_dir) < 0)
		return 1;
	if ((!(srv.smtpd = smtpd_new(&srv.deps, &err)) ||
	     http_open(srv.base, c, &srv.http, &err) < 0) &&
	    start_failed(err))
		return 1;
	if (open_core(&srv) < 0)
		return 1;
	srv.deps.work = work_pool_new(srv.base, WORK_THREADS);
	srv.events = events_start(srv.deps.store, c, srv.node_id, &srv.hooks);
	srv.counters = store_counters_new(srv.base, srv.deps.store, srv.deps.work);
	if (open_signing(&srv) < 0 || open_deliv(&srv) < 0 || open_delivery(&srv) < 0)
		return 1;
	watch_signing(&srv);
	start_beat(&srv);
	srv.templates = api_tmpl_cache_new(srv.deps.store);
	http_start(srv.http, &(struct http_deps){.store = srv.deps.store,
	                                         .spool = srv.deps.spool,
	                                         .sched = srv.sched,
	                                         .work = srv.deps.work,
	                                         .templates = srv.templates,
	                                         .unsub = srv.deps.unsub,
	                                         .dkim = srv.deps.dkim,
	                                         .deliv = srv.deliv,
	                                         .events = srv.events,
	                                         .queued = on_api_queued,
	                                         .queued_arg = &srv});
	add_signals(&srv);
	log_info("event=started hostname=%s data_dir=%s config=%s", c->hostname, log_q(c->data_dir),
	         c->file ? log_q(c->file) : "default");
	sched_recover(srv.sched, srv.recovery, on_recovered, &srv);
	srv.recovery = NULL; /* the scheduler's now */
	event_base_dispatch(srv.base);
	server_close(&srv);
	log_info("event=stopped");
	return srv.failed ? CLI_RUNTIME : CLI_OK;
}

/* ---------- the command line ---------- */

static int cmd_version(int argc, char **argv, const struct conf *c)
{
	size_t n;

	if (cli_parse(argc, argv, NULL, 0, NULL, &n, 0) != CLI_OK)
		return CLI_USAGE;
	puts("posthorn " POSTHORN_VERSION);
	return cli_flush(CLI_OK);
}

static const struct cli_cmd ROOT;

static int cmd_help(int argc, char **argv, const struct conf *c)
{
	size_t n;

	if (cli_parse(argc, argv, NULL, 0, NULL, &n, 0) != CLI_OK)
		return CLI_USAGE;
	cli_usage(stdout, &ROOT);
	return cli_flush(CLI_OK);
}

static const struct cli_cmd serve_cmd = {
    .path = "serve",
    .about = "Runs the relay in the foreground; SIGTERM drains and stops it, SIGHUP\n"
             "reloads what it can and names each changed key that needs a restart.",
    .run = cmd_serve,
};
static const struct cli_cmd version_cmd = {
    .path = "version", .about = "Prints the version.", .run = cmd_version, .flags = CLI_NO_CONF};
static const struct cli_cmd help_cmd = {
    .path = "help", .about = "Prints this text.", .run = cmd_help, .flags = CLI_NO_CONF};

static const struct cli_cmd *const COMMANDS[] = {
    &serve_cmd,      &cli_check_cmd,   &cli_user_cmd,     &cli_queue_cmd, &cli_stats_cmd,
    &cli_apikey_cmd, &cli_dkim_cmd,    &cli_suppress_cmd, &cli_tls_cmd,   &cli_pause_cmd,
    &cli_resume_cmd, &cli_cluster_cmd, &version_cmd,      &help_cmd,      NULL,
};

static const struct cli_cmd ROOT = {
    .path = "",
    .about = "Every command answers --help. Options: -c FILE names the configuration;\n"
             "without it, $POSTHORN_CONFIG, then " POSTHORN_SYSTEM_CONF " if it exists,\n"
             "then the embedded default (said on stderr, with its data directory).\n"
             "Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.\n"
             "Manual: posthorn(8), posthorn.conf(5); docs/cli.md.",
    .subs = COMMANDS,
};

/* Admin commands run as [server] user when started as root, so that
 * what they create in the data directory stays the server's. A data
 * directory that does not exist yet is made here, as serve makes it: by
 * root, then given to the user. */
static int become_server_user(const struct conf *c)
{
	struct passwd *pw;

	if (geteuid() != 0 || !c->user)
		return 0;
	cli_keep_tty(); /* for a password prompt, before root is gone */
	if (!(pw = getpwnam(c->user)))
		return cli_say(CLI_RUNTIME, "no such user %s", c->user);
	if (mkdir(c->data_dir, 0750) == 0 && chown(c->data_dir, pw->pw_uid, pw->pw_gid) < 0)
		return cli_say(CLI_RUNTIME, "cannot give %s to %s: %s", c->data_dir, c->user,
		               strerror(errno));
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return cli_say(CLI_RUNTIME, "cannot become %s: %s", c->user, strerror(errno));
	return 0;
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	const struct cli_cmd *leaf;
	struct conf *c = NULL;
	unsigned flags;
	int depth, rc;

	if (take_config_opt(&argc, argv, &file) < 0)
		return CLI_USAGE;
	if (argc == 2 && !strcmp(argv[1], "--version"))
		argv[1] = "version";
	if (!(leaf = cli_find(&ROOT, argc, argv, &depth, &flags, &rc)))
		return rc;
	if (!(flags & CLI_NO_CONF) && !(c = load_conf(find_config(file))))
		return CLI_USAGE;
	if ((flags & CLI_AS_USER) && become_server_user(c))
		rc = CLI_RUNTIME;
	else
		rc = cli_run(leaf, argc - depth, argv + depth, c);
	conf_free(c);
	return rc;
}
