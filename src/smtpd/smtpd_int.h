/*
 * smtpd internals shared by smtpd_listener.c and the session files
 * (smtpd_session.h): the server, its listeners, and how they meet.
 */
#ifndef POSTHORN_SMTPD_INT_H
#define POSTHORN_SMTPD_INT_H

#include <sys/queue.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "smtpd/smtp_data.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_auth_guard.h"
#include "smtpd/smtpd_limits.h"

/* DATA/BDAT input is decoded in pieces of at most this many bytes. */
#define SMTPD_DATA_CHUNK (64 * 1024)

struct session;

/* Clients from trusted_networks are counted apart from the others, with
 * a cap of their own, so a flood from elsewhere never locks them out. */
struct listener {
	struct smtpd *sd;
	const struct conf_listener *cfg;
	struct evconnlistener *evl;
	uint64_t n_untrusted, n_trusted;   /* connections */
	struct smtpd_addr_counts per_addr; /* untrusted connections per address key */
	int stressed;                      /* smtpd_stress_next() of n_untrusted */
	struct event *ev_accept_again;     /* accepting paused: out of descriptors */
	uint64_t accept_errors;            /* since the last logged one */
};

struct smtpd {
	struct smtpd_deps *deps; /* owned by the caller, may be filled in after binding */
	struct listener *listeners;
	size_t n_listeners;
	TAILQ_HEAD(, session) sessions;
	size_t n_sessions;
	int draining;
	void (*drained)(void *arg);
	void *drained_arg;
	struct event *ev_drained;
	/* The AUTH queue: password checks in a pool of their own (made at the
	 * first AUTH), never in deps->work, and who may use it (smtpd_auth.c). */
	struct work_pool *auth_pool;
	struct smtpd_auth_guard auth_guard;
	/* The RCPTs' suppression checks, grouped (smtpd_supp.c; made at the first). */
	struct smtpd_supp *supp;
	/* Scratch and caches of the sessions, all on the loop thread: */
	char data_out[SMTP_DATA_OUT_MAX(SMTPD_DATA_CHUNK)]; /* decoded DATA/BDAT */
	uint64_t disk_checked_at; /* when disk_full was last measured (ms) */
	int disk_full;            /* free space under min_free_space */
};

/* What the listener decided about an accepted client. */
struct client {
	const struct sockaddr *sa;
	socklen_t len;
	int trusted; /* in trusted_networks: counted in n_trusted */
	struct smtpd_addr_key key;
};

/* Creates a session for an accepted socket; it then lives on its own and
 * calls smtpd_session_gone() when it has been freed. */
void session_start(struct listener *l, int fd, const struct client *c);
/* The listener's stress mode began: its sessions that have shown nothing
 * yet get the short idle timeout. */
void session_stress_began(struct listener *l);
/* Ask every session to finish: 421 now if idle, after its transaction if
 * not. */
void session_drain_all(struct smtpd *sd);
/* Drops every message still being received (server exit, before the
 * spool closes). */
void session_abort_receiving_all(struct smtpd *sd);
/* Immediate teardown of every session (server exit). */
void session_destroy_all(struct smtpd *sd);

/* smtpd_auth.c: the AUTH queue's guard and pool, at start and at exit
 * (smtpd_auth_free waits for the checks in flight and runs their done). */
void smtpd_auth_init(struct smtpd *sd);
void smtpd_auth_free(struct smtpd *sd);

/* Called by the session code when a session is freed. */
void smtpd_session_gone(struct listener *l, int trusted, const struct smtpd_addr_key *key);

#endif
