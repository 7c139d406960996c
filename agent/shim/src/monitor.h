/* The monitor: the shim process that owns one container from cgroup creation
 * to cleanup (stages in proto.h). It stays the container init's parent for the
 * whole run, so it can reap it, record its exit, drain its output and tear down
 * what it made, independently of the agent that started it. */
#ifndef FLOTILLA_SHIM_MONITOR_H
#define FLOTILLA_SHIM_MONITOR_H

#include "config.h"
#include "error.h"

/* Runs the container to completion.
 *
 * report_fd (detached mode, else -1) gets one line as soon as the start is
 * decided: "ok <state json>" once the command is exec'd, or
 * "err <exit code> <message>" after a failed start has been cleaned up.
 *
 * Returns the exit status for the process: the container's (0-255, 128+signal)
 * or 125/126/127 when the start failed, with err filled. */
int monitor_run(const struct shim_config *cfg, int report_fd, struct shim_err *err);

#endif
