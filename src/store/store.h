/*
 * store: the only owner of the database handle (SQLite, WAL, in
 * DATA_DIR/posthorn.db). Schema and numbered migrations, accounts and their
 * credentials and sender domains. Later: API keys, suppressions, events,
 * counters.
 *
 * Every call blocks (disk, argon2id): the daemon calls them from a worker
 * thread, never from the event loop thread. One struct store may be used
 * from several threads (the connection is opened in serialized mode).
 * Changes made by another process (the CLI) are seen by the next call.
 */
#ifndef POSTHORN_STORE_H
#define POSTHORN_STORE_H

#include <stddef.h>

struct store;

/* Opens (creating DATA_DIR and the database if needed) and migrates.
 * NULL on failure with a malloc'd message in *err. */
struct store *store_open(const char *data_dir, char **err);
void store_close(struct store *st);

/* Account names: 1-64 chars of [A-Za-z0-9._@+-]. "default" is built in
 * (exists after store_open, has no password, cannot AUTH, cannot be
 * deleted). Domains are stored lower-case. */
int store_account_name_valid(const char *name);

/* All return 0 on success, -1 on failure with a malloc'd *err
 * (e.g. "account 'x' already exists"). */
int store_user_add(struct store *st, const char *name, const char *password,
                   const char *const *domains, size_t n_domains, char **err);
int store_user_del(struct store *st, const char *name, char **err);
int store_user_passwd(struct store *st, const char *name, const char *password, char **err);
int store_user_add_domains(struct store *st, const char *name,
                           const char *const *domains, size_t n_domains, char **err);

/* Calls cb once per account, sorted by name; domains is "a.com,b.org" or "". */
int store_user_list(struct store *st,
                    void (*cb)(void *arg, const char *name, const char *domains), void *arg,
                    char **err);

/* 1 password matches, 0 no such account or wrong password, -1 error.
 * Takes the same time whether or not the account exists. */
int store_user_verify(struct store *st, const char *name, const char *password);

/* 1 if account owns domain (case-insensitive), 0 if not, -1 error. */
int store_user_owns_domain(struct store *st, const char *name, const char *domain);

/* Added by the store module. */

/* 1 if d is a DNS name: labels of letters, digits and inner hyphens
 * (1-63 each) joined by single dots, 1-253 characters in all. Any case. */
int store_domain_valid(const char *d);

/* 1 if the account exists, 0 if not, -1 error. */
int store_user_exists(struct store *st, const char *name);

/* Removes sender domains from an account; a domain it does not own is an
 * error and nothing is removed. Same return convention as above. */
int store_user_del_domains(struct store *st, const char *name,
                           const char *const *domains, size_t n_domains, char **err);

#endif
