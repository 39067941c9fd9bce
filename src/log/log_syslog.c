/*
 * log_syslog: syslog(3) with facility mail. See log_syslog.h.
 */
#include "log/log_syslog.h"

#include <syslog.h>

int log_syslog_priority(int level)
{
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};

	return level >= 0 && level < 4 ? prio[level] : LOG_ERR;
}

void log_syslog_open(int on)
{
	if (on)
		openlog("posthorn", LOG_PID | LOG_NDELAY, LOG_MAIL);
	else
		closelog();
}

void log_syslog_line(int level, const char *line)
{
	syslog(LOG_MAIL | log_syslog_priority(level), "%s", line);
}
