/*
 * store_schema: the schema's numbered migrations and how they are applied.
 *
 * Promises:
 * - store_schema_migrate() reads the version first and refuses a database
 *   newer than this code before anything writes to it.
 * - Pending steps run under db_migrate_lock() (on PostgreSQL an advisory
 *   lock: any process, server or CLI, may be the one that migrates), each
 *   in its own transaction that reads the version again: a process that
 *   waited for the lock finds the steps done and does nothing.
 * - The SQL is written once; on PostgreSQL db_pg_ddl() rewrites the few
 *   SQLite forms of steps that shipped before the second backend
 *   (docs/cluster.md lists them).
 */
#include <stdlib.h>

#include "db/db.h"
#include "db/db_pg_sql.h"
#include "log/log.h"
#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

/*
 * Migrations: migrations[i] brings the schema from version i to i + 1
 * (db_schema_version). Append only; never edit a step that has shipped.
 * accounts.id is AUTOINCREMENT so that an id is never reused: rows of later
 * tables (keys, events) that point at a deleted account must not come to
 * belong to the next account created.
 */
static const char *const migrations[] = {
    /* 0 -> 1: accounts and their sender domains; the built-in account. */
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE account_domains ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  domain TEXT NOT NULL,"
    "  PRIMARY KEY (account_id, domain)"
    ");"
    "CREATE INDEX account_domains_domain ON account_domains(domain);"
    "INSERT INTO accounts (name, password_hash, created_at)"
    "  VALUES ('" STORE_DEFAULT_ACCOUNT "', NULL, CAST(strftime('%s', 'now') AS INTEGER));",

    /*
     * 1 -> 2: delivery counters (store_stats.c), one row per hour, account,
     * recipient domain and event. The account is kept by name, not by
     * accounts.id: `posthorn stats` must still show the history of an
     * account that was deleted. WITHOUT ROWID: the key is the whole row
     * but for the count, so a separate rowid b-tree would only cost space.
     * The key starts with the bucket, so "since" is a range scan.
     */
    "CREATE TABLE counters ("
    "  bucket INTEGER NOT NULL,"
    "  account TEXT NOT NULL,"
    "  domain TEXT NOT NULL,"
    "  event TEXT NOT NULL"
    "    CHECK (event IN ('accepted', 'delivered', 'deferred', 'bounced', 'suppressed')),"
    "  count INTEGER NOT NULL CHECK (count >= 0),"
    "  PRIMARY KEY (bucket, account, domain, event)"
    ") WITHOUT ROWID;",

    /*
     * 2 -> 3: HTTP API keys (store_apikey.c): only the SHA-256 of each key,
     * in hex; ids are given by the code (max + 1) so that the SQL is the
     * same on PostgreSQL. Keys are never deleted, only revoked, so an id
     * is never reused; deleting the account deletes its keys.
     */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  admin INTEGER NOT NULL CHECK (admin IN (0, 1)),"
    "  created_at BIGINT NOT NULL,"
    "  last_used_at BIGINT,"
    "  revoked_at BIGINT"
    ");"
    "CREATE INDEX api_keys_account ON api_keys(account_id);",

    /*
     * 3 -> 4: DKIM signing keys (store_dkim.c), one row per selector of a
     * sender domain. The key itself is in a 0600 file under DATA_DIR; the
     * row holds its path. Times are unix seconds; activated and retired
     * are NULL until the key gets there. Plain SQL PostgreSQL accepts too.
     */
    "CREATE TABLE dkim_keys ("
    "  domain TEXT NOT NULL,"
    "  selector TEXT NOT NULL,"
    "  algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa2048', 'ed25519')),"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired')),"
    "  created BIGINT NOT NULL,"
    "  activated BIGINT,"
    "  retired BIGINT,"
    "  key_path TEXT NOT NULL,"
    "  PRIMARY KEY (domain, selector)"
    ");"
    "CREATE INDEX dkim_keys_state ON dkim_keys (state, domain);",

    /*
     * 4 -> 5: message templates (store_tmpl.c), by account and name. The
     * text of each part as the client sent it (NULL: no such part);
     * revision is a new random number at every write, which caches
     * compare to know that what they compiled is still current (a
     * counter could come back to an old value after a delete and a
     * create).
     */
    "CREATE TABLE templates ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  text_part TEXT,"
    "  html_part TEXT,"
    "  revision BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (account_id, name)"
    ");",

    /*
     * 5 -> 6: suppression lists (store_supp.c), by account. address_key
     * is what lookups compare (store_supp_normalize(): the address with
     * ASCII letters lower-cased); address is what was first given, with
     * its domain lower-cased. The key is the primary key: a lookup is one
     * index probe.
     */
    "CREATE TABLE suppressions ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  address_key TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (account_id, address_key)"
    ");",
    store_tls_migration,        /* 6 -> 7: outbound TLS policy (SQL in store_tls.c) */
    store_events_migration,     /* 7 -> 8: events and webhooks (SQL in store_events.c) */
    store_unsub_migration,      /* 8 -> 9: accounts.unsubscribe (store_account_unsub.c) */
    store_deliv_migration,      /* 9 -> 10: quotas, reputation, VERP (SQL in store_deliv.c) */
    store_idem_migration,       /* 10 -> 11: Idempotency-Key records (store_idem.c) */
    store_idem_plan_migration,  /* 11 -> 12: their planned messages (store_idem.c) */
    store_dkim_box_migration,   /* 12 -> 13: DKIM private keys, sealed (store_dkim.c) */
    store_nodes_migration,      /* 13 -> 14: node heartbeats (store_nodes.c) */
    store_claim_migration,      /* 14 -> 15: webhook delivery claims (store_webhooks.c) */
    store_keys_migration,       /* 15 -> 16: shared node keys, sealed (store_keys.c) */
    store_node_tags_migration,  /* 16 -> 17: queue-ID tags, one node each (store_nodes.c) */
    store_idem_node_migration,  /* 17 -> 18: the node of each idempotency claim (store_idem.c) */
    store_deliv_node_migration, /* 18 -> 19: counts and slots per node (store_deliv_flush.c) */
    /* 19 -> 20: the keys of event batches written (store_events.c): a
     * batch retried after a COMMIT that got no answer is not written twice. */
    "CREATE TABLE event_batches ("
    "  batch_key TEXT PRIMARY KEY,"
    "  created BIGINT NOT NULL"
    ");"
    "CREATE INDEX event_batches_created ON event_batches(created);",
    store_node_instance_migration, /* 20 -> 21: the process writing a node's row (store_nodes.c) */
};

#define SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

static int too_new(struct store *st, int version, char **err)
{
	return store_fail(err,
	                  "%s: schema version %d is newer than this posthorn knows (%d); "
	                  "run a newer posthorn",
	                  st->path, version, SCHEMA_VERSION);
}

static int read_version(struct store *st, int *version, char **err)
{
	if (db_schema_version(st->db, version) != DB_OK)
		return store_fail_db(st, err, "schema version");
	if (*version > SCHEMA_VERSION)
		return too_new(st, *version, err);
	return 0;
}

/* Step `to - 1 -> to`'s SQL in the database's dialect (malloc'd). */
static char *step_sql(struct store *st, int to)
{
	if (db_kind(st->db) == DB_POSTGRES)
		return db_pg_ddl(migrations[to - 1]);
	return xstrdup(migrations[to - 1]);
}

/* Applies step `to - 1 -> to` in one transaction: 1 applied, 0 another
 * process had (the version is read again inside the transaction, after
 * the wait for the lock), -1 error. */
static int migrate_step(struct store *st, int to, char **err)
{
	char *sql;
	int version, rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if (read_version(st, &version, err) < 0)
		return store_tx_rollback(st);
	if (version < to) {
		sql = step_sql(st, to);
		rc = db_exec(st->db, sql);
		free(sql);
		if (rc != DB_OK || db_set_schema_version(st->db, to) != DB_OK) {
			store_fail(err, "%s: migration %d -> %d: %s", st->path, to - 1, to,
			           db_errmsg(st->db));
			return store_tx_rollback(st);
		}
	}
	if (store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return version < to;
}

int store_schema_migrate(struct store *st, char **err)
{
	int version, from = -1, rc = 0;

	if (read_version(st, &version, err) < 0)
		return -1;
	if (db_migrate_lock(st->db, 1) != DB_OK)
		return store_fail_db(st, err, "migration lock");
	for (int to = version + 1; rc >= 0 && to <= SCHEMA_VERSION; to++)
		if ((rc = migrate_step(st, to, err)) > 0 && from < 0)
			from = to - 1;
	if (db_migrate_lock(st->db, 0) != DB_OK && rc >= 0)
		rc = store_fail_db(st, err, "migration unlock");
	if (rc < 0)
		return -1;
	if (from >= 0) /* one line, however many steps: a new database takes them all */
		log_info("event=store_migrate db=%s from=%d to=%d", log_q(st->path), from,
		         SCHEMA_VERSION);
	return 0;
}
