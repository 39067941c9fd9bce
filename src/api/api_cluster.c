/*
 * api_cluster: GET /v1/cluster/nodes (admin keys): the nodes table, the
 * same JSON as `posthorn cluster status --json` (cluster_status.c;
 * docs/api.md "Cluster nodes"). Read on a worker; a database error is a
 * 500 (api_answer_store_error).
 */
#include <stdlib.h>

#include "api/api.h"
#include "cluster/cluster.h"
#include "store/store.h"
#include "store/store_nodes.h"
#include "util/util.h"

struct nodes_job {
	struct http_req *r;
	struct api_answer answer;
};

static void nodes_work(void *arg)
{
	struct nodes_job *j = arg;
	struct store_node *v;
	size_t n, stale, lost;
	char *err = NULL;

	if (store_nodes_list(http_req_deps(j->r)->store, &v, &n, &err) < 0) {
		api_answer_store_error(j->r, &j->answer, err);
		free(err);
		return;
	}
	api_answer_json(&j->answer, 200, cluster_nodes_json(v, n, clock_now_s(), &stale, &lost));
	store_nodes_free(v, n);
}

static void nodes_done(void *arg)
{
	struct nodes_job *j = arg;

	api_answer_send(j->r, &j->answer);
	free(j);
}

void api_h_cluster_nodes(struct http_req *r)
{
	struct nodes_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	http_req_defer(r, nodes_work, nodes_done, j);
}
