/* STATE_DIR/state.json: what the agent reads to learn about a container.
 *
 *   {"id":"web-1","shimPid":4100,"pid":4107,"status":"exited","exitCode":137,
 *    "oomKilled":true,"startedAt":"...Z","finishedAt":"...Z","error":null,
 *    "cgroupVersion":1,"cgroup":"flotilla/web-1"}
 *
 * Replaced atomically (write to a temporary name, rename over), so a reader
 * always sees a complete document. */
#ifndef FLOTILLA_SHIM_STATE_H
#define FLOTILLA_SHIM_STATE_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "util.h"

enum shim_status { SHIM_STATUS_CREATED, SHIM_STATUS_RUNNING, SHIM_STATUS_EXITED };

struct shim_state {
	const char *id;
	pid_t shim_pid;
	pid_t pid; /* container init on the host; 0 before it exists */
	enum shim_status status;
	int exit_code; /* -1 = null (not exited) */
	bool oom_killed;
	char started_at[SHIM_TIME_MAX]; /* "" = null */
	char finished_at[SHIM_TIME_MAX];
	char error[SHIM_ERR_MSG_MAX]; /* "" = null */
	int cgroup_version;           /* 0 = unknown yet */
	const char *cgroup;           /* relative group path, NULL = unknown */
};

void state_format(const struct shim_state *st, struct strbuf *out);
int state_write(const char *state_dir, const struct shim_state *st, struct shim_err *err);

#endif
