/*
 * cli_cluster: `posthorn cluster status [--json]`: the nodes that wrote a
 * heartbeat in the database (store_nodes.c; docs/cluster.md "Cluster
 * status"). One line per node, or with --json one object
 * {"nodes": [...], "stale": N} whose fields docs/cli.md lists.
 *
 * Exit 0 whenever the list was read, stale nodes or not (a warning on
 * stderr names them), nodes that lost their queue-ID tag or not (an error
 * line on stderr names each); 1 when the database cannot be read.
 *
 * `posthorn cluster forget NODE_ID [--force]`: deletes a stopped or stale
 * node's row and its queue-ID tag claim (store_node_forget). Exit 0 when
 * forgotten; 1 for an up node without --force, an unknown ID or a database
 * error, each with a message; 2 for a usage error.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "cluster/cluster.h"
#include "conf/conf.h"
#include "store/store.h"
#include "store/store_nodes.h"
#include "util/util.h"

static void put_ms(const char *name, int64_t us)
{
	if (us < 0)
		printf(" %s=-", name);
	else
		printf(" %s=%.3f", name, (double)us / 1000.0);
}

static void node_line(const struct store_node *n, int64_t now)
{
	printf("node=");
	cli_put_safe(stdout, n->id);
	printf(" host=");
	cli_put_safe(stdout, n->hostname);
	printf(" version=");
	cli_put_safe(stdout, n->version);
	printf(" state=%s messages=%lld recipients=%lld heartbeat_age=%llds",
	       store_node_state(n, now), (long long)n->messages, (long long)n->recipients,
	       (long long)(now - n->beat_at));
	put_ms("postgres_ms", n->pg_us);
	put_ms("redis_ms", n->redis_us);
	if (store_node_tag_lost(n, now)) {
		printf(" tag_lost=");
		cli_put_safe(stdout, n->tag_holder);
	}
	if (store_node_id_clash(n, now)) {
		printf(" id_clash=");
		cli_put_safe(stdout, n->clash_host);
	}
	putchar('\n');
}

static void lost_lines(const struct store_node *v, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		if (!store_node_tag_lost(&v[i], now))
			continue;
		fprintf(stderr, "posthorn: error: node ");
		cli_put_safe(stderr, v[i].id);
		fprintf(stderr, " is up but its queue-ID tag %.3s is held by node ", v[i].id);
		cli_put_safe(stderr, v[i].tag_holder);
		fprintf(stderr, " (its heartbeats stalled): it refuses new mail until the tag is "
		                "free; stop one of the two\n");
	}
}

static void clash_lines(const struct store_node *v, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		if (!store_node_id_clash(&v[i], now))
			continue;
		fprintf(stderr, "posthorn: error: node ");
		cli_put_safe(stderr, v[i].id);
		fprintf(stderr, " is run by two processes (one on host ");
		cli_put_safe(stderr, v[i].clash_host);
		fprintf(stderr, "): both refuse new mail; stop one, and give a copied data dir a "
		                "new ID by removing its node-id\n");
	}
}

static int show(const struct store_node *v, size_t n, int as_json)
{
	int64_t now = clock_now_s();
	size_t stale, lost;
	json_t *all = cluster_nodes_json(v, n, now, &stale, &lost);
	int rc = CLI_OK;

	if (as_json)
		rc = cli_json_print(all);
	else
		json_decref(all);
	for (size_t i = 0; !as_json && i < n; i++)
		node_line(&v[i], now);
	if (n == 0)
		fprintf(stderr, "posthorn: no node has written a heartbeat yet\n");
	if (stale)
		fprintf(
		    stderr,
		    "posthorn: warning: %zu node(s) stale: no heartbeat for %d s or more (crashed, "
		    "hung, or cut off from the database)\n",
		    stale, STORE_NODE_STALE_S);
	if (lost)
		lost_lines(v, n, now);
	clash_lines(v, n, now);
	return rc;
}

/* Without [cluster] postgres and with no store in data_dir, nothing ever
 * ran with this configuration (the embedded default, most likely): say
 * so rather than make an empty store there. */
static int no_store_here(const struct conf *c)
{
	char path[PATH_MAX];
	struct stat sb;

	if (c->cluster_postgres && *c->cluster_postgres)
		return 0;
	snprintf(path, sizeof(path), "%s/posthorn.db", c->data_dir);
	if (stat(path, &sb) == 0)
		return 0;
	cli_say(CLI_RUNTIME,
	        "no store at %s and no [cluster] postgres in %s: no node ran with this "
	        "configuration; give a node's configuration (-c FILE, or POSTHORN_CONFIG)",
	        path, c->file ? c->file : "the embedded default");
	return 1;
}

static int cmd_status(int argc, char **argv, const struct conf *c)
{
	int as_json = 0, rc;
	const struct cli_opt opts[] = {{"--json", &as_json, NULL}};
	struct store_node *v;
	struct store *st;
	size_t n;
	char *err = NULL;

	if (cli_parse(argc, argv, opts, ARRAY_LEN(opts), NULL, &n, 0) != CLI_OK)
		return CLI_USAGE;
	if (no_store_here(c))
		return CLI_RUNTIME;
	if (!(st = cli_open_store(c)))
		return CLI_RUNTIME;
	if (store_nodes_list(st, &v, &n, &err) < 0) {
		store_close(st);
		return cli_fail(err);
	}
	store_close(st);
	rc = show(v, n, as_json);
	store_nodes_free(v, n);
	return cli_flush(rc);
}

static const struct cli_cmd status_cmd = {
    .path = "cluster status",
    .args = "[--json]",
    .about = "The nodes that share this database: state (up, stale, stopped), version,\n"
             "queue size, last heartbeat, PostgreSQL and Redis round trips.",
    .more = "  Every running node writes its row every 5 s; a node with no heartbeat for\n"
            "  15 s is stale (exit 0 still, with a warning). docs/cluster.md.\n",
    .run = cmd_status,
};

static int forget_said(int rc, const char *id, char *err)
{
	switch (rc) {
	case STORE_FORGOT:
		printf("node %s forgotten\n", id);
		return cli_flush(CLI_OK);
	case STORE_FORGET_UP:
		return cli_say(
		    CLI_RUNTIME,
		    "node %s is up (a heartbeat within the last %d s): stop it first, or "
		    "use --force (a running node writes its row again within %d s)",
		    id, STORE_NODE_STALE_S, STORE_NODE_BEAT_S);
	case STORE_FORGET_UNKNOWN:
		return cli_say(CLI_RUNTIME,
		               "no node %s in this database (see posthorn cluster status)", id);
	default:
		return cli_fail(err);
	}
}

static int cmd_forget(int argc, char **argv, const struct conf *c)
{
	int force = 0, rc;
	const struct cli_opt opts[] = {{"--force", &force, NULL}};
	char *pos[1], *err = NULL;
	size_t n_pos = 0;
	struct store *st;

	rc = cli_parse(argc, argv, opts, ARRAY_LEN(opts), pos, &n_pos, 1);
	if (rc == CLI_OK && n_pos != 1)
		return cli_say(CLI_USAGE, "cluster forget takes one node ID");
	if (rc != CLI_OK)
		return rc;
	if (!(st = cli_open_store(c)))
		return CLI_RUNTIME;
	rc = store_node_forget(st, pos[0], clock_now_s(), force, &err);
	store_close(st);
	return forget_said(rc, pos[0], err);
}

static const struct cli_cmd forget_cmd = {
    .path = "cluster forget",
    .args = "NODE_ID [--force]",
    .about = "Removes a stopped or stale node from cluster status (its heartbeat row and\n"
             "its queue-ID tag claim).",
    .more = "  An up node (a heartbeat within 15 s) is refused unless --force; a node still\n"
            "  running writes its row again at its next heartbeat. docs/cluster.md.\n",
    .run = cmd_forget,
};

static const struct cli_cmd *const cluster_cmds[] = {&status_cmd, &forget_cmd, NULL};

const struct cli_cmd cli_cluster_cmd = {
    .path = "cluster",
    .about = "The nodes of a cluster (one node on the embedded default).",
    .subs = cluster_cmds,
    .flags = CLI_AS_USER,
};
