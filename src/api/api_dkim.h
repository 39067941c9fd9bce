/*
 * api_dkim.h: GET /v1/dkim (api_dkim.c), the route the dashboard's DKIM
 * page reads.
 */
#ifndef POSTHORN_API_DKIM_H
#define POSTHORN_API_DKIM_H

#include "http/http_api.h"

void api_h_dkim(struct http_req *r);

#endif
