/*
 * log_syslog: the two calls of log.c that need <syslog.h>, whose LOG_*
 * macros would clash with enum log_level; this header and its file never
 * include log.h. level is an enum log_level value (0 debug .. 3 error).
 */
#ifndef POSTHORN_LOG_SYSLOG_H
#define POSTHORN_LOG_SYSLOG_H

/* openlog("posthorn", LOG_PID, LOG_MAIL), or closelog() when on is 0. */
void log_syslog_open(int on);
void log_syslog_line(int level, const char *line);
/* The syslog priority of a level: 7 debug, 6 info, 4 warning, 3 error. */
int log_syslog_priority(int level);

#endif
