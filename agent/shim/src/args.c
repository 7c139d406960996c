/* Command line parsing: the option table and the checks across options.
 * Pure (no syscalls), so every rule here is unit tested. Value parsers are in parse.c. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

const char shim_usage[] =
    "usage:\n"
    "  flotilla-shim run --id ID --state-dir DIR (--rootfs DIR | --rootfs-lower L1:L2 --upper U --work W)\n"
    "                    [options] -- CMD [ARG...]\n"
    "  flotilla-shim exec --id ID --state-dir DIR --pid PID --cgroup REL [exec options] -- CMD [ARG...]\n"
    "  flotilla-shim kill --state-dir DIR [SIGNAL]     (default TERM; KILL is accepted)\n"
    "  flotilla-shim resize --state-dir DIR ROWS COLS  (a --tty container or exec)\n"
    "  flotilla-shim state --state-dir DIR             (prints state.json)\n"
    "  flotilla-shim version\n"
    "\n"
    "run options:\n"
    "  --hostname NAME          --env K=V (repeatable)     --cwd DIR\n"
    "  --user UID[:GID]         --groups G1,G2\n"
    "  --memory BYTES[k|m|g]    --cpu-quota US  --cpu-period US  --cpu-shares N  --pids N\n"
    "  --mount bind:SRC:DST[:ro] | tmpfs:DST[:SIZE] (repeatable)\n"
    "  --readonly-rootfs        --netns new|host|PATH   --log FILE\n"
    "  --log-max-size SIZE      --log-max-files N (rotate FILE into FILE.1..FILE.N-1)\n"
    "  --cgroup-parent NAME (default flotilla)   --cgroup-root DIR (default /sys/fs/cgroup)\n"
    "  --seccomp default|unconfined             --foreground (alias --wait)\n"
    "  --caps MASK              capabilities kept, a subset of docker's default set (hex)\n"
    "  --tty  --stdin  --stdin-once  --attach  --attach-wait   (interactive I/O, see README)\n"
    "\n"
    "exec options: --env --cwd --user --groups --seccomp --tty --stdin --stdin-once --attach\n"
    "  --attach-wait --foreground --cgroup-root, as for run; the process joins every namespace\n"
    "  and the cgroup of the container whose init is PID.\n"
    "\n"
    "exit status of run: 0 started (detached) or the container's status (--foreground);\n"
    "125 the shim failed (message on stderr), 126 command not executable, 127 command not found.\n";

static char *own(struct shim_config *cfg, const char *s)
{
	char *c = strdup(s);
	if (c != NULL)
		cfg->owned[cfg->n_owned++] = c;
	return c;
}

void config_free(struct shim_config *cfg)
{
	for (size_t i = 0; i < cfg->n_owned; i++)
		free(cfg->owned[i]);
	free(cfg->owned);
	free(cfg->lowers);
	free(cfg->env);
	free(cfg->groups);
	free(cfg->mounts);
	memset(cfg, 0, sizeof(*cfg));
}

static int parse_lowers(struct shim_config *cfg, const char *v, struct shim_err *err)
{
	char *copy = own(cfg, v);
	if (copy == NULL)
		return shim_fail(err, ENOMEM, "--rootfs-lower");
	for (char *save = NULL, *tok = strtok_r(copy, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
		if (!path_is_abs(tok) || !overlay_safe_path(tok))
			return shim_fail(
			    err, 0, "--rootfs-lower: layer \"%s\" must be an absolute path without .., ',' or '\\'",
			    tok);
		cfg->lowers[cfg->n_lowers++] = tok;
	}
	if (cfg->n_lowers == 0)
		return shim_fail(err, 0, "--rootfs-lower: no layer given");
	return 0;
}

static int parse_groups(struct shim_config *cfg, const char *v, struct shim_err *err)
{
	if (cfg->groups != NULL)
		return shim_fail(err, 0, "--groups: given twice");
	char *copy = own(cfg, v);
	if (copy == NULL)
		return shim_fail(err, ENOMEM, "--groups");
	size_t cap = 1;
	for (const char *c = v; *c; c++)
		cap += *c == ',';
	cfg->groups = calloc(cap, sizeof(gid_t));
	if (cfg->groups == NULL)
		return shim_fail(err, ENOMEM, "--groups");
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		long long g;
		if (parse_u64(tok, 0, UINT32_MAX - 1, &g) < 0)
			return shim_fail(err, 0, "--groups: invalid gid \"%s\"", tok);
		cfg->groups[cfg->n_groups++] = (gid_t)g;
	}
	return 0;
}

/* Option value lookup: "--name value" or "--name=value". */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *matched)
{
	size_t n = strlen(name);
	*matched = false;
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=') {
		*matched = true;
		return argv[*i] + n + 1;
	}
	if (argv[*i][n] != '\0')
		return NULL;
	*matched = true;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int parse_run_option(struct shim_config *cfg, int argc, char **argv, int *i, struct shim_err *err)
{
	const char *a = argv[*i];
	bool m;
	const char *v;

	if (strcmp(a, "--readonly-rootfs") == 0) {
		cfg->readonly_rootfs = true;
		return 0;
	}
	if (strcmp(a, "--foreground") == 0 || strcmp(a, "--wait") == 0) {
		cfg->foreground = true;
		return 0;
	}
	static const struct {
		const char *name;
		size_t off;
	} flags[] = {
	    {"--tty", offsetof(struct shim_config, tty)},
	    {"--stdin", offsetof(struct shim_config, open_stdin)},
	    {"--stdin-once", offsetof(struct shim_config, stdin_once)},
	    {"--attach", offsetof(struct shim_config, attach)},
	    {"--attach-wait", offsetof(struct shim_config, attach_wait)},
	};
	for (size_t f = 0; f < SHIM_ARRAY_LEN(flags); f++) {
		if (strcmp(a, flags[f].name) == 0) {
			*(bool *)((char *)cfg + flags[f].off) = true;
			return 0;
		}
	}

#define OPT(name)                                                                                                      \
	v = opt_value(argc, argv, i, name, &m);                                                                        \
	if (m && v == NULL)                                                                                            \
		return shim_fail(err, 0, name ": missing value");                                                      \
	if (m)

	OPT("--id")
	{
		if (!valid_id(v))
			return shim_fail(err, 0, "--id: \"%s\" must be 1-128 of [A-Za-z0-9_.-], starting alphanumeric",
			                 v);
		cfg->id = v;
		return 0;
	}
	OPT("--state-dir")
	{
		cfg->state_dir = v;
		return 0;
	}
	OPT("--pid")
	{
		long long pid;
		if (parse_u64(v, 1, INT32_MAX, &pid) < 0)
			return shim_fail(err, 0, "--pid: \"%s\" is not a process id", v);
		cfg->target_pid = (pid_t)pid;
		return 0;
	}
	OPT("--cgroup")
	{
		if (!valid_rel_path(v))
			return shim_fail(err, 0, "--cgroup: \"%s\" must be a relative path without ..", v);
		cfg->cgroup_rel = v;
		return 0;
	}
	OPT("--rootfs-lower") return parse_lowers(cfg, v, err);
	OPT("--upper")
	{
		cfg->upper = v;
		return 0;
	}
	OPT("--work")
	{
		cfg->work = v;
		return 0;
	}
	OPT("--rootfs")
	{
		cfg->rootfs = v;
		return 0;
	}
	OPT("--hostname")
	{
		if (*v == '\0' || strlen(v) > 64)
			return shim_fail(err, 0, "--hostname: must be 1-64 characters");
		cfg->hostname = v;
		return 0;
	}
	OPT("--env")
	{
		if (strchr(v, '=') == NULL || v[0] == '=')
			return shim_fail(err, 0, "--env: \"%s\" is not K=V", v);
		cfg->env[cfg->n_env++] = v;
		return 0;
	}
	OPT("--cwd")
	{
		if (!path_is_abs(v))
			return shim_fail(err, 0, "--cwd: \"%s\" must be an absolute path without ..", v);
		cfg->cwd = v;
		return 0;
	}
	OPT("--user")
	{
		if (parse_user(v, &cfg->uid, &cfg->gid) < 0)
			return shim_fail(err, 0, "--user: \"%s\" is not UID[:GID]", v);
		cfg->has_user = true;
		return 0;
	}
	OPT("--groups") return parse_groups(cfg, v, err);
	OPT("--memory")
	{
		if (parse_size(v, &cfg->memory) < 0)
			return shim_fail(err, 0, "--memory: invalid size \"%s\" (bytes, or with k/m/g suffix)", v);
		return 0;
	}
	OPT("--cpu-quota")
	{
		if (parse_u64(v, 1000, INT64_MAX / 2, &cfg->cpu_quota) < 0)
			return shim_fail(err, 0, "--cpu-quota: \"%s\" must be microseconds >= 1000", v);
		return 0;
	}
	OPT("--cpu-period")
	{
		if (parse_u64(v, 1000, 1000000, &cfg->cpu_period) < 0)
			return shim_fail(err, 0, "--cpu-period: \"%s\" must be microseconds in 1000..1000000", v);
		return 0;
	}
	OPT("--cpu-shares")
	{
		if (parse_u64(v, 2, 262144, &cfg->cpu_shares) < 0)
			return shim_fail(err, 0, "--cpu-shares: \"%s\" must be in 2..262144", v);
		return 0;
	}
	OPT("--pids")
	{
		if (parse_u64(v, 1, INT32_MAX, &cfg->pids) < 0)
			return shim_fail(err, 0, "--pids: \"%s\" must be a positive number", v);
		return 0;
	}
	OPT("--mount")
	{
		char *copy = own(cfg, v);
		if (copy == NULL)
			return shim_fail(err, ENOMEM, "--mount");
		return parse_mount(copy, &cfg->mounts[cfg->n_mounts++], err);
	}
	OPT("--netns")
	{
		if (strcmp(v, "new") == 0) {
			cfg->netns = SHIM_NETNS_NEW;
		} else if (strcmp(v, "host") == 0) {
			cfg->netns = SHIM_NETNS_HOST;
		} else if (path_is_abs(v)) {
			cfg->netns = SHIM_NETNS_PATH;
			cfg->netns_path = v;
		} else {
			return shim_fail(err, 0, "--netns: \"%s\" must be new, host or an absolute path", v);
		}
		return 0;
	}
	OPT("--log")
	{
		if (!path_is_abs(v))
			return shim_fail(err, 0, "--log: \"%s\" must be an absolute path", v);
		cfg->log_path = v;
		return 0;
	}
	OPT("--log-max-size")
	{
		if (parse_size(v, &cfg->log_max_size) < 0)
			return shim_fail(err, 0, "--log-max-size: invalid size \"%s\"", v);
		return 0;
	}
	OPT("--log-max-files")
	{
		long long n;
		if (parse_u64(v, 1, LOG_MAX_FILES, &n) < 0)
			return shim_fail(err, 0, "--log-max-files: \"%s\" must be 1..%d", v, LOG_MAX_FILES);
		cfg->log_max_files = (int)n;
		return 0;
	}
	OPT("--cgroup-parent")
	{
		if (!valid_rel_path(v))
			return shim_fail(err, 0, "--cgroup-parent: \"%s\" must be a relative path without ..", v);
		cfg->cgroup_parent = v;
		return 0;
	}
	OPT("--cgroup-root")
	{
		if (!path_is_abs(v))
			return shim_fail(err, 0, "--cgroup-root: \"%s\" must be an absolute path", v);
		cfg->cgroup_root = v;
		return 0;
	}
	OPT("--caps")
	{
		char *end = NULL;
		errno = 0;
		unsigned long long mask = strtoull(v, &end, 16);
		if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
			return shim_fail(err, 0, "--caps: \"%s\" must be a hexadecimal mask", v);
		cfg->caps = (uint64_t)mask;
		cfg->has_caps = true;
		return 0;
	}
	OPT("--seccomp")
	{
		if (strcmp(v, "default") == 0)
			cfg->seccomp = true;
		else if (strcmp(v, "unconfined") == 0)
			cfg->seccomp = false;
		else
			return shim_fail(err, 0, "--seccomp: \"%s\" must be default or unconfined", v);
		return 0;
	}
#undef OPT
	return shim_fail(err, 0, "unknown option \"%s\"", a);
}

static int check_run(struct shim_config *cfg, struct shim_err *err)
{
	if (cfg->id == NULL)
		return shim_fail(err, 0, "--id is required");
	if (cfg->state_dir == NULL || !path_is_abs(cfg->state_dir))
		return shim_fail(err, 0, "--state-dir is required and must be an absolute path");
	bool overlay = cfg->n_lowers > 0 || cfg->upper != NULL || cfg->work != NULL;
	if (overlay && cfg->rootfs != NULL)
		return shim_fail(err, 0, "--rootfs and --rootfs-lower/--upper/--work are exclusive");
	if (!overlay && cfg->rootfs == NULL)
		return shim_fail(err, 0,
		                 "a rootfs is required: --rootfs DIR or --rootfs-lower L1:L2 --upper U --work W");
	if (overlay) {
		if (cfg->n_lowers == 0 || cfg->upper == NULL || cfg->work == NULL)
			return shim_fail(err, 0, "--rootfs-lower, --upper and --work go together");
		if (!path_is_abs(cfg->upper) || !overlay_safe_path(cfg->upper) || !path_is_abs(cfg->work) ||
		    !overlay_safe_path(cfg->work))
			return shim_fail(err, 0, "--upper/--work must be absolute paths without .., ',', ':' or '\\'");
	} else if (!path_is_abs(cfg->rootfs)) {
		return shim_fail(err, 0, "--rootfs: \"%s\" must be an absolute path", cfg->rootfs);
	}
	if (cfg->cpu_quota >= 0 && cfg->cpu_period >= 0 && cfg->cpu_quota < 1000)
		return shim_fail(err, 0, "--cpu-quota: must be >= 1000");
	if (cfg->n_groups > 0 && !cfg->has_user)
		return shim_fail(err, 0, "--groups needs --user");
	if ((cfg->tty || cfg->open_stdin || cfg->attach_wait || cfg->stdin_once) && !cfg->attach)
		return shim_fail(err, 0, "--tty, --stdin, --stdin-once and --attach-wait need --attach");
	if (cfg->argc == 0)
		return shim_fail(err, 0, "no command given after --");
	return 0;
}

/* exec enters a container that exists: everything that builds one is refused. */
static int check_exec(struct shim_config *cfg, struct shim_err *err)
{
	if (cfg->id == NULL)
		return shim_fail(err, 0, "--id is required");
	if (cfg->state_dir == NULL || !path_is_abs(cfg->state_dir))
		return shim_fail(err, 0, "--state-dir is required and must be an absolute path");
	if (cfg->target_pid <= 0 || cfg->cgroup_rel == NULL)
		return shim_fail(err, 0, "exec: --pid and --cgroup (of the running container) are required");
	if (cfg->n_lowers || cfg->upper || cfg->work || cfg->rootfs || cfg->n_mounts || cfg->hostname ||
	    cfg->readonly_rootfs || cfg->memory >= 0 || cfg->cpu_quota >= 0 || cfg->cpu_period >= 0 ||
	    cfg->cpu_shares >= 0 || cfg->pids >= 0 || cfg->netns != SHIM_NETNS_NEW || cfg->log_path)
		return shim_fail(err, 0, "exec: rootfs, mount, hostname, limit, netns and log options belong to run");
	if ((cfg->tty || cfg->open_stdin || cfg->attach_wait || cfg->stdin_once) && !cfg->attach)
		return shim_fail(err, 0, "--tty, --stdin, --stdin-once and --attach-wait need --attach");
	if (cfg->n_groups > 0 && !cfg->has_user)
		return shim_fail(err, 0, "--groups needs --user");
	if (cfg->argc == 0)
		return shim_fail(err, 0, "no command given after --");
	return 0;
}

/* resize: ROWS COLS after the state dir, each 0..65535. */
static int parse_resize_arg(struct shim_config *cfg, const char *a, struct shim_err *err)
{
	long long v;
	if (parse_u64(a, 0, 65535, &v) < 0)
		return shim_fail(err, 0, "resize: \"%s\" is not a size in 0..65535", a);
	if (cfg->rows < 0)
		cfg->rows = (int)v;
	else if (cfg->cols < 0)
		cfg->cols = (int)v;
	else
		return shim_fail(err, 0, "resize: unexpected argument \"%s\"", a);
	return 0;
}

int config_parse(struct shim_config *cfg, int argc, char **argv, struct shim_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->memory = cfg->cpu_quota = cfg->cpu_period = cfg->cpu_shares = cfg->pids = -1;
	cfg->log_max_size = -1;
	cfg->log_max_files = 1;
	cfg->netns = SHIM_NETNS_NEW;
	cfg->cgroup_parent = "flotilla";
	cfg->cgroup_root = "/sys/fs/cgroup";
	cfg->seccomp = true;
	cfg->signal = SIGTERM;
	cfg->rows = cfg->cols = -1;

	/* every list is bounded by argc: allocate once, no reallocs */
	size_t n = (size_t)argc + 1;
	cfg->owned = calloc(n, sizeof(char *));
	cfg->env = calloc(n, sizeof(char *));
	cfg->mounts = calloc(n, sizeof(struct shim_mount));
	/* --rootfs-lower may list more layers than there are arguments */
	size_t layers = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strncmp(argv[i], "--rootfs-lower", 14) != 0)
			continue;
		const char *v = argv[i][14] == '=' ? argv[i] + 15 : (i + 1 < argc ? argv[i + 1] : "");
		for (layers++; *v; v++)
			layers += *v == ':';
	}
	cfg->lowers = calloc(layers, sizeof(char *));
	if (!cfg->owned || !cfg->lowers || !cfg->env || !cfg->mounts)
		return shim_fail(err, ENOMEM, "parse arguments");

	if (argc < 2) {
		cfg->cmd = SHIM_CMD_HELP;
		return shim_fail(err, 0, "no command given");
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "run") == 0)
		cfg->cmd = SHIM_CMD_RUN;
	else if (strcmp(cmd, "exec") == 0)
		cfg->cmd = SHIM_CMD_EXEC;
	else if (strcmp(cmd, "resize") == 0)
		cfg->cmd = SHIM_CMD_RESIZE;
	else if (strcmp(cmd, "kill") == 0)
		cfg->cmd = SHIM_CMD_KILL;
	else if (strcmp(cmd, "state") == 0)
		cfg->cmd = SHIM_CMD_STATE;
	else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		cfg->cmd = SHIM_CMD_VERSION;
		return 0;
	} else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		cfg->cmd = SHIM_CMD_HELP;
		return 0;
	} else
		return shim_fail(err, 0, "unknown command \"%s\" (run, exec, kill, resize, state, version)", cmd);

	bool have_signal = false;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			if (cfg->cmd != SHIM_CMD_RUN && cfg->cmd != SHIM_CMD_EXEC)
				return shim_fail(err, 0, "%s: unexpected --", cmd);
			cfg->argv = argv + i + 1;
			cfg->argc = argc - i - 1;
			break;
		}
		if (cfg->cmd == SHIM_CMD_RUN || cfg->cmd == SHIM_CMD_EXEC) {
			if (parse_run_option(cfg, argc, argv, &i, err) < 0)
				return -1;
			continue;
		}
		bool m;
		const char *v = opt_value(argc, argv, &i, "--state-dir", &m);
		if (m) {
			if (v == NULL)
				return shim_fail(err, 0, "--state-dir: missing value");
			cfg->state_dir = v;
		} else if (cfg->cmd == SHIM_CMD_KILL && !have_signal && a[0] != '-') {
			if (parse_signal(a, &cfg->signal) < 0)
				return shim_fail(err, 0, "kill: unknown signal \"%s\"", a);
			have_signal = true;
		} else if (cfg->cmd == SHIM_CMD_RESIZE && a[0] != '-') {
			if (parse_resize_arg(cfg, a, err) < 0)
				return -1;
		} else {
			return shim_fail(err, 0, "%s: unexpected argument \"%s\"", cmd, a);
		}
	}

	if (cfg->cmd == SHIM_CMD_RUN)
		return check_run(cfg, err);
	if (cfg->cmd == SHIM_CMD_EXEC)
		return check_exec(cfg, err);
	if (cfg->cmd == SHIM_CMD_RESIZE && cfg->cols < 0)
		return shim_fail(err, 0, "resize: ROWS and COLS are required");
	if (cfg->state_dir == NULL || !path_is_abs(cfg->state_dir))
		return shim_fail(err, 0, "%s: --state-dir is required and must be an absolute path", cmd);
	return 0;
}
