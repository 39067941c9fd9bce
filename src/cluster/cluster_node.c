/*
 * cluster_node: the node's identity, DATA_DIR/node-id (docs/cluster.md,
 * "Nodes"). Twenty characters of the queue-ID alphabet, drawn the first
 * time a server starts on the data dir and kept: the node's name in logs
 * and in the cluster, and (its first three characters) the tag that makes
 * its queue IDs differ from every other node's. The file is written to a
 * temporary name, synced and renamed, so a crash leaves either no file or
 * a whole one.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster_redis.h"
#include "log/log.h"
#include "store/store_nodes.h"
#include "util/util.h"

#define NODE_FILE "node-id"

/* KEYS: the tag's key. ARGV: the node ID. Returns the ID holding the tag. */
static const char CLAIM_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] end\n"
    "return v\n";

/* 1 read, 0 there is none, -1 error. */
static int node_read(const char *path, char out[NODE_ID_LEN + 1], char **err)
{
	char buf[NODE_ID_LEN + 2];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		*err = xasprintf("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n != NODE_ID_LEN) {
		*err = xasprintf("%s: not a node ID (%d characters of [0-9A-Y] expected)", path,
		                 NODE_ID_LEN);
		return -1;
	}
	buf[n] = '\0';
	if (!node_id_valid(buf)) {
		*err = xasprintf("%s: not a node ID (%d characters of [0-9A-Y] expected)", path,
		                 NODE_ID_LEN);
		return -1;
	}
	memcpy(out, buf, NODE_ID_LEN + 1);
	return 1;
}

static int node_write(const char *dir, const char *path, const char *id, char **err)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = -1;

	if (fd >= 0 && dprintf(fd, "%s\n", id) == NODE_ID_LEN + 1 && fsync(fd) == 0 &&
	    close(fd) == 0) {
		fd = -1;
		if (rename(tmp, path) == 0)
			rc = 0;
	}
	if (rc < 0)
		*err = xasprintf("cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	if (rc == 0 && (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return rc;
}

int cluster_node_id(const char *data_dir, char out[NODE_ID_LEN + 1], int *made, char **err)
{
	char *path = xasprintf("%s/%s", data_dir, NODE_FILE);
	int rc = node_read(path, out, err);

	*made = 0;
	if (rc == 0) {
		node_id_new(out);
		rc = node_write(data_dir, path, out, err) < 0 ? -1 : 1;
		*made = rc > 0;
	}
	free(path);
	return rc < 0 ? -1 : 0;
}

/* A new node draws again this many times at most when its tag is held. */
#define TAG_DRAWS 64 /* as the error says */

/* The clash that stops the start. */
static int tag_held(const char *id, const char *holder, int made, char **err)
{
	*err = xasprintf("node tag %.3s of node %s is held by the live node %s: %s", id, id, holder,
	                 made ? "no free tag found in 64 draws"
	                      : "queue IDs could collide (a new node: remove its DATA_DIR/node-id "
	                        "to draw another ID; the other node gone: wait 15 s)");
	return -1;
}

int cluster_node_tag(struct store *st, const char *data_dir, char id[NODE_ID_LEN + 1], int made,
                     char **err)
{
	char *path = xasprintf("%s/%s", data_dir, NODE_FILE), *holder = NULL;
	int rc = -1;

	for (int draw = 0; draw <= TAG_DRAWS; draw++) {
		free(holder);
		if ((rc = store_node_tag_claim(st, id, clock_now_s(), &holder, err)) != 0)
			break;
		if (!made || draw == TAG_DRAWS) {
			rc = tag_held(id, holder, made, err);
			break;
		}
		/* new: nothing carries this ID yet, so another one is drawn */
		log_warn("event=node_tag_redrawn id=%s held_by=%s", id, holder);
		node_id_new(id);
		if ((rc = node_write(data_dir, path, id, err)) < 0)
			break;
	}
	free(holder);
	free(path);
	return rc < 0 ? -1 : 0;
}

struct claim {
	struct cluster_redis *r;
	const char *node_id;
};

static void on_claimed(void *arg, const struct redisReply *rep)
{
	struct claim *c = arg;

	if (rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, c->node_id) != 0)
		log_err("event=node_tag_clash tag=%.3s node=%s other=%s hint=%s", c->node_id,
		        c->node_id, log_q(rep->str),
		        log_q("queue IDs of the two nodes may collide: stop one, remove its "
		              "DATA_DIR/node-id and start it again"));
}

static void claim_now(void *arg)
{
	struct claim *c = arg;
	char key[64];
	const char *argv[5];
	size_t lens[5];

	snprintf(key, sizeof(key), "posthorn:node-tag:%.3s", c->node_id);
	argv[0] = "EVAL";
	argv[1] = CLAIM_LUA;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = c->node_id;
	for (int i = 0; i < 5; i++)
		lens[i] = strlen(argv[i]);
	cluster_redis_cmd(c->r, on_claimed, c, 5, argv, lens);
}

void cluster_node_claim(struct cluster_redis *r, const char *node_id)
{
	static struct claim c; /* one node per process */

	c.r = r;
	c.node_id = node_id;
	cluster_redis_on_up(r, claim_now, &c);
}
