/* See cgroup.h: the half that touches the system (detect, create, join, OOM
 * evidence, destroy). The pure plan and OOM decision are in cgroup_plan.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* v1 hierarchies every container joins: memory/cpu/pids carry the limits, cpuacct
 * and blkio the usage the agent reports (stats), freezer docker pause. cpu and cpuacct are often co-mounted; duplicates
 * are detected by device number in cgroup_create. */
static const char *const v1_controllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer", "blkio"};

/* v2 controllers enabled for the container's subtree, when the kernel offers them. */
static const char *const v2_controllers[] = {"memory", "cpu", "pids"};

int cgroup_detect(const char *root, enum cg_version *v, struct shim_err *err)
{
	struct statfs st;
	if (statfs(root, &st) < 0)
		return shim_fail(err, errno, "cgroup: statfs %s", root);
	*v = st.f_type == CGROUP2_SUPER_MAGIC ? CG_V2 : CG_V1;
	return 0;
}

static int cg_dir_add(struct cgroup *cg, const char *ctrl, const char *base, const char *rel, struct shim_err *err)
{
	struct cg_dir *d = &cg->dirs[cg->n_dirs];
	int n = snprintf(d->path, sizeof(d->path), "%s/%s", base, rel);
	if (n < 0 || (size_t)n >= sizeof(d->path))
		return shim_fail(err, ENAMETOOLONG, "cgroup %s: path", ctrl);
	d->ctrl = ctrl;
	d->created = false;
	cg->n_dirs++;
	return 0;
}

/* True if word is one of the space/newline separated words of list. */
static bool word_in(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += wl) {
		bool start = p == list || p[-1] == ' ' || p[-1] == '\n';
		bool end = p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n';
		if (start && end)
			return true;
	}
	return false;
}

static bool v2_needed(const char *c, const struct shim_config *cfg)
{
	if (strcmp(c, "memory") == 0)
		return cfg->memory > 0;
	if (strcmp(c, "cpu") == 0)
		return cfg->cpu_quota > 0 || cfg->cpu_period > 0 || cfg->cpu_shares > 0;
	return strcmp(c, "pids") == 0 && cfg->pids > 0;
}

/* v2 only lets a child use a controller its parent lists in cgroup.subtree_control:
 * enable ours on every level from the root down to the parent of the group. */
static int v2_enable_controllers(const char *root, const char *parent, const struct shim_config *cfg,
                                 struct shim_err *err)
{
	char path[PATH_MAX], avail[512];
	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	if (read_file(path, avail, sizeof(avail), err) < 0)
		return shim_wrap(err, "cgroup");

	const char *want[SHIM_ARRAY_LEN(v2_controllers)];
	size_t n_want = 0;
	for (size_t i = 0; i < SHIM_ARRAY_LEN(v2_controllers); i++) {
		const char *c = v2_controllers[i];
		if (word_in(avail, c))
			want[n_want++] = c;
		else if (v2_needed(c, cfg))
			return shim_fail(err, 0, "cgroup %s: controller not available in %s/cgroup.controllers", c,
			                 root);
	}

	/* walk root, root/a, root/a/b ... down to the parent directory */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", root);
	const char *rest = parent;
	for (;;) {
		char sub[PATH_MAX], cur[512], missing[128] = "";
		snprintf(sub, sizeof(sub), "%s/cgroup.subtree_control", dir);
		if (n_want > 0 && read_file(sub, cur, sizeof(cur), err) < 0)
			return shim_wrap(err, "cgroup");
		/* write only what is missing: the root is shared by every shim */
		for (size_t i = 0; i < n_want; i++) {
			if (!word_in(cur, want[i])) {
				strcat(missing, " +");
				strcat(missing, want[i]);
			}
		}
		if (missing[0] != '\0' && write_file(sub, missing + 1, err) < 0)
			return shim_wrap(err, "cgroup: enable controllers in %s", dir);
		if (*rest == '\0')
			return 0;
		const char *slash = strchr(rest, '/');
		size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
		size_t dl = strlen(dir);
		if (dl + 1 + len >= sizeof(dir))
			return shim_fail(err, ENAMETOOLONG, "cgroup: path");
		dir[dl] = '/';
		memcpy(dir + dl + 1, rest, len);
		dir[dl + 1 + len] = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return shim_fail(err, errno, "cgroup: mkdir %s", dir);
		rest = slash ? slash + 1 : "";
	}
}

int cgroup_locate(struct cgroup *cg, const char *root, const char *rel, struct shim_err *err)
{
	memset(cg, 0, sizeof(*cg));
	if (cgroup_detect(root, &cg->version, err) < 0)
		return -1;
	snprintf(cg->rel, sizeof(cg->rel), "%s", rel);
	if (cg->version == CG_V2)
		return cg_dir_add(cg, "unified", root, rel, err);
	dev_t seen[SHIM_ARRAY_LEN(v1_controllers)];
	size_t n_seen = 0;
	for (size_t i = 0; i < SHIM_ARRAY_LEN(v1_controllers); i++) {
		char base[PATH_MAX];
		struct stat st;
		snprintf(base, sizeof(base), "%s/%s", root, v1_controllers[i]);
		if (stat(base, &st) < 0)
			continue;
		bool dup = false;
		for (size_t k = 0; k < n_seen; k++)
			dup = dup || seen[k] == st.st_dev;
		if (dup)
			continue;
		seen[n_seen++] = st.st_dev;
		if (cg_dir_add(cg, v1_controllers[i], base, rel, err) < 0)
			return -1;
		if (access(cg->dirs[cg->n_dirs - 1].path, F_OK) < 0)
			return shim_fail(err, errno, "exec: the container's cgroup %s", cg->dirs[cg->n_dirs - 1].path);
	}
	return 0;
}

int cgroup_create(struct cgroup *cg, const struct shim_config *cfg, struct shim_err *err)
{
	memset(cg, 0, sizeof(*cg));
	if (cgroup_detect(cfg->cgroup_root, &cg->version, err) < 0)
		return -1;
	int n = snprintf(cg->rel, sizeof(cg->rel), "%s/%s", cfg->cgroup_parent, cfg->id);
	if (n < 0 || (size_t)n >= sizeof(cg->rel))
		return shim_fail(err, ENAMETOOLONG, "cgroup: path");

	if (cg->version == CG_V2) {
		if (v2_enable_controllers(cfg->cgroup_root, cfg->cgroup_parent, cfg, err) < 0)
			return -1;
		if (cg_dir_add(cg, "unified", cfg->cgroup_root, cg->rel, err) < 0)
			return -1;
	} else {
		dev_t seen[SHIM_ARRAY_LEN(v1_controllers)];
		size_t n_seen = 0;
		for (size_t i = 0; i < SHIM_ARRAY_LEN(v1_controllers); i++) {
			const char *c = v1_controllers[i];
			char base[PATH_MAX];
			snprintf(base, sizeof(base), "%s/%s", cfg->cgroup_root, c);
			struct stat st;
			if (stat(base, &st) < 0) {
				/* a missing hierarchy only matters if a limit needs it */
				if (v2_needed(c, cfg))
					return shim_fail(err, errno, "cgroup %s: hierarchy %s", c, base);
				continue;
			}
			bool dup = false;
			for (size_t k = 0; k < n_seen; k++)
				dup = dup || seen[k] == st.st_dev;
			if (dup)
				continue;
			seen[n_seen++] = st.st_dev;
			if (cg_dir_add(cg, c, base, cg->rel, err) < 0)
				return -1;
		}
	}

	struct shim_err ignored;
	for (size_t i = 0; i < cg->n_dirs; i++) {
		struct cg_dir *d = &cg->dirs[i];
		/* the parent is shared by all containers: create it if needed, never remove it */
		char parent[PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", d->path);
		*strrchr(parent, '/') = '\0';
		if (mkdir_p(parent, 0755, err) < 0) {
			cgroup_destroy(cg, &ignored);
			return shim_wrap(err, "cgroup %s", d->ctrl);
		}
		/* EEXIST is an error: another container with this id owns that group */
		if (mkdir(d->path, 0755) < 0) {
			shim_fail(err, errno, "cgroup %s: mkdir %s", d->ctrl, d->path);
			cgroup_destroy(cg, &ignored);
			return -1;
		}
		d->created = true;
	}

	struct cg_write plan[CG_MAX_WRITES];
	size_t np = cgroup_plan(cg->version, cfg, plan);
	for (size_t i = 0; i < np; i++) {
		const char *dir = NULL;
		for (size_t k = 0; k < cg->n_dirs && !dir; k++)
			if (cg->version == CG_V2 || strcmp(cg->dirs[k].ctrl, plan[i].ctrl) == 0)
				dir = cg->dirs[k].path;
		if (dir == NULL) {
			/* co-mounted hierarchy (e.g. cpu,cpuacct): the file lives in the shared dir */
			for (size_t k = 0; k < cg->n_dirs && !dir; k++) {
				char probe[PATH_MAX];
				snprintf(probe, sizeof(probe), "%s/%s", cg->dirs[k].path, plan[i].file);
				if (access(probe, F_OK) == 0)
					dir = cg->dirs[k].path;
			}
		}
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir ? dir : "(none)", plan[i].file);
		if (plan[i].optional && access(path, F_OK) < 0 && errno == ENOENT)
			continue;
		if (write_file(path, plan[i].value, err) < 0) {
			shim_wrap(err, "cgroup %s", plan[i].ctrl);
			cgroup_destroy(cg, &ignored);
			return -1;
		}
	}
	return 0;
}

int cgroup_join_self(const struct cgroup *cg, struct shim_err *err)
{
	for (size_t i = 0; i < cg->n_dirs; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", cg->dirs[i].path,
		         cg->version == CG_V1 ? "tasks" : "cgroup.procs");
		if (write_file(path, "0", err) < 0)
			return shim_wrap(err, "cgroup %s: join", cg->dirs[i].ctrl);
	}
	return 0;
}

int cgroup_open_dir(const struct cgroup *cg)
{
	if (cg->version != CG_V2 || cg->n_dirs == 0)
		return -1;
	return open(cg->dirs[0].path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

bool cgroup_oom_killed(const struct cgroup *cg, bool sigkilled)
{
	struct shim_err ignored;
	char buf[1024], path[PATH_MAX];
	for (size_t i = 0; i < cg->n_dirs; i++) {
		const struct cg_dir *d = &cg->dirs[i];
		if (cg->version == CG_V2) {
			snprintf(path, sizeof(path), "%s/memory.events", d->path);
			return read_file(path, buf, sizeof(buf), &ignored) >= 0 &&
			       cgroup_oom_decide(CG_V2, buf, 0, sigkilled);
		}
		if (strcmp(d->ctrl, "memory") != 0)
			continue;
		char failbuf[32];
		long long failcnt = 0;
		snprintf(path, sizeof(path), "%s/memory.failcnt", d->path);
		if (read_file(path, failbuf, sizeof(failbuf), &ignored) >= 0)
			failcnt = strtoll(failbuf, NULL, 10);
		snprintf(path, sizeof(path), "%s/memory.oom_control", d->path);
		if (read_file(path, buf, sizeof(buf), &ignored) < 0)
			return false;
		return cgroup_oom_decide(CG_V1, buf, failcnt, sigkilled);
	}
	return false;
}

/* SIGKILLs every process listed in dir/cgroup.procs; returns how many were listed. */
static int kill_procs(const char *dir)
{
	char path[PATH_MAX], buf[4096];
	struct shim_err ignored;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if (read_file(path, buf, sizeof(buf), &ignored) <= 0)
		return 0;
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		pid_t pid = (pid_t)strtol(tok, NULL, 10);
		if (pid > 0 && kill(pid, SIGKILL) == 0)
			n++;
	}
	return n;
}

int cgroup_destroy(struct cgroup *cg, struct shim_err *err)
{
	int rc = 0;
	/* remove in reverse creation order; only what we created */
	for (size_t i = cg->n_dirs; i-- > 0;) {
		struct cg_dir *d = &cg->dirs[i];
		if (!d->created)
			continue;
		/* A group only goes away once empty. The container's init has been
		 * reaped, which took its pid namespace down; anything still inside
		 * joined from outside (e.g. an exec that escaped), so kill it. Removal
		 * can also see EBUSY briefly while the kernel finishes exits: retry
		 * for up to a second before failing loudly. */
		int last = 0;
		for (int attempt = 0; attempt < 200; attempt++) {
			if (rmdir(d->path) == 0 || errno == ENOENT) {
				last = 0;
				break;
			}
			last = errno;
			if (last != EBUSY)
				break;
			if (cg->version == CG_V2) {
				char kill_path[PATH_MAX];
				struct shim_err ignored;
				snprintf(kill_path, sizeof(kill_path), "%s/cgroup.kill", d->path);
				if (write_file(kill_path, "1", &ignored) < 0)
					kill_procs(d->path);
			} else {
				kill_procs(d->path);
			}
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (last != 0) {
			rc = shim_fail(err, last, "cgroup %s: rmdir %s", d->ctrl, d->path);
			continue;
		}
		d->created = false;
	}
	return rc;
}
