/* Control groups: one group per container, named <parent>/<id>, on cgroup v1
 * (one directory per controller hierarchy) or cgroup v2 (one unified directory).
 *
 * The limits are first turned into a plan of (controller, file, value) writes by
 * a pure function (cgroup_plan, unit tested for both versions), then applied. */
#ifndef FLOTILLA_SHIM_CGROUP_H
#define FLOTILLA_SHIM_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "error.h"

enum cg_version { CG_V1 = 1, CG_V2 = 2 };

#define CG_MAX_WRITES 12
#define CG_MAX_DIRS   8

struct cg_write {
	const char *ctrl; /* controller, names the step in errors */
	const char *file; /* e.g. memory.limit_in_bytes */
	char value[48];
	bool optional; /* skipped when the kernel has no such file (e.g. no swap accounting) */
};

struct cg_dir {
	const char *ctrl; /* v1: hierarchy name; v2: "unified" */
	char path[PATH_MAX];
	bool created; /* we made it, so we remove it */
};

struct cgroup {
	enum cg_version version;
	char rel[PATH_MAX]; /* <parent>/<id>, as shown in /proc/PID/cgroup */
	struct cg_dir dirs[CG_MAX_DIRS];
	size_t n_dirs;
};

/* Pure helpers (unit tested). */
size_t cgroup_plan(enum cg_version v, const struct shim_config *cfg, struct cg_write out[CG_MAX_WRITES]);
long long cpu_shares_to_weight(long long shares);
/* Finds "key N" in a flat-keyed file (memory.events, memory.oom_control). */
int cg_keyed_value(const char *text, const char *key, long long *out);
/* Decides oomKilled from memory.oom_control/memory.failcnt (v1) or memory.events (v2). */
bool cgroup_oom_decide(enum cg_version v, const char *events, long long failcnt, bool sigkilled);

/* Detects the version at root: cgroup2 filesystem => v2, anything else => v1
 * with one mount per controller below root (legacy or hybrid layout). */
int cgroup_detect(const char *root, enum cg_version *v, struct shim_err *err);
/* Creates the group(s) and writes the limits. On failure removes what it made. */
int cgroup_create(struct cgroup *cg, const struct shim_config *cfg, struct shim_err *err);
/* Fills cg for an existing group (exec into a running container): every
 * hierarchy a container joins, at root/<rel>. Creates nothing. */
int cgroup_locate(struct cgroup *cg, const char *root, const char *rel, struct shim_err *err);
/* Moves the calling process into every directory of the group. Called by the
 * container init itself, first thing after clone: on v1 it writes "0" to each
 * `tasks` file, which moves only the (single) calling thread and so skips the
 * global threadgroup lock whose write side waits for an RCU grace period
 * (milliseconds); a pid written to cgroup.procs by the parent would pay it. */
int cgroup_join_self(const struct cgroup *cg, struct shim_err *err);
/* v2: an O_PATH descriptor of the group for clone3(CLONE_INTO_CGROUP), which
 * creates the child directly inside it (no migration at all). -1 on v1. */
int cgroup_open_dir(const struct cgroup *cg);
/* Reads the OOM evidence; call after the container exited, before destroy. */
bool cgroup_oom_killed(const struct cgroup *cg, bool sigkilled);
/* Kills whatever is left inside and removes the directories we created. */
int cgroup_destroy(struct cgroup *cg, struct shim_err *err);

#endif
