/* The command line of flotilla-shim, parsed into one immutable configuration.
 * Parsing is pure (no syscalls) so it is unit tested in test/args_test.c. */
#ifndef FLOTILLA_SHIM_CONFIG_H
#define FLOTILLA_SHIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define SHIM_VERSION "0.1.0"

/* Exit statuses of `flotilla-shim run`, the same convention as `docker run`. */
enum {
	SHIM_EXIT_FAILED = 125,      /* bad input, or a setup step of the shim failed */
	SHIM_EXIT_CANNOT_EXEC = 126, /* the command exists but cannot be executed */
	SHIM_EXIT_NOT_FOUND = 127,   /* the command was not found */
};

enum shim_cmd {
	SHIM_CMD_RUN,
	SHIM_CMD_EXEC,
	SHIM_CMD_KILL,
	SHIM_CMD_RESIZE,
	SHIM_CMD_STATE,
	SHIM_CMD_VERSION,
	SHIM_CMD_HELP
};

enum shim_netns { SHIM_NETNS_NEW, SHIM_NETNS_HOST, SHIM_NETNS_PATH };

enum shim_mount_kind { SHIM_MOUNT_BIND, SHIM_MOUNT_TMPFS };

struct shim_mount {
	enum shim_mount_kind kind;
	const char *src; /* bind: absolute host path; tmpfs: NULL */
	const char *dst; /* absolute path inside the container */
	bool readonly;   /* bind only */
	long long size;  /* tmpfs only, bytes; -1 = kernel default */
};

/* Absent numeric options are -1. Strings point into argv or into `owned`. */
struct shim_config {
	enum shim_cmd cmd;

	const char *id;
	const char *state_dir;

	/* rootfs: either overlay (lowers + upper + work) or a plain directory */
	const char **lowers; /* topmost first, as overlayfs wants them */
	size_t n_lowers;
	const char *upper;
	const char *work;
	const char *rootfs;
	bool readonly_rootfs;

	const char *hostname;
	const char **env; /* K=V */
	size_t n_env;
	const char *cwd;

	bool has_user;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;

	long long memory;     /* bytes */
	long long cpu_quota;  /* microseconds per period */
	long long cpu_period; /* microseconds */
	long long cpu_shares; /* v1 shares, 2..262144 */
	long long pids;

	struct shim_mount *mounts;
	size_t n_mounts;

	enum shim_netns netns;
	const char *netns_path;

	const char *log_path;
	long long log_max_size;    /* bytes; -1: the log grows without bound */
	int log_max_files;         /* the log plus rotated FILE.1 .. FILE.(n-1) */
	const char *cgroup_parent; /* relative to each hierarchy root, default "flotilla" */
	const char *cgroup_root;   /* default /sys/fs/cgroup */
	bool foreground;
	bool seccomp;
	bool has_caps; /* --caps given: keep cfg->caps instead of the default set */
	uint64_t caps;

	/* interactive I/O (see attach.h) */
	bool tty;         /* a pty: the command's stdio is its slave, /dev/console too (run) */
	bool open_stdin;  /* stdin comes from attach clients (else /dev/null) */
	bool stdin_once;  /* the first stdin client's EOF closes stdin (not with a tty) */
	bool attach;      /* listen on STATE_DIR/attach.sock */
	bool attach_wait; /* hold the output until the first client, at most ATTACH_WAIT_MS */

	/* exec: the running container to enter */
	pid_t target_pid;       /* its init, on the host */
	const char *cgroup_rel; /* its group, relative to each hierarchy root (state.json "cgroup") */

	int signal;     /* kill: signal to deliver */
	int rows, cols; /* resize: the new window size */

	char **argv; /* the container command, NULL terminated */
	int argc;

	char **owned; /* strings copied out of argv to be split in place */
	size_t n_owned;
};

#define LOG_MAX_FILES 100

/* Parses argv (argv[0] is the program). On failure err names the option. */
int config_parse(struct shim_config *cfg, int argc, char **argv, struct shim_err *err);
void config_free(struct shim_config *cfg);

/* Helpers exposed for the unit tests. All return 0 or -1. */
int parse_size(const char *s, long long *out); /* 123, 64k, 512m, 1g (binary units) */
int parse_u64(const char *s, long long min, long long max, long long *out);
int parse_signal(const char *s, int *out);                               /* TERM, SIGTERM, 15 */
int parse_user(const char *s, uid_t *uid, gid_t *gid);                   /* uid:gid or uid (gid = uid) */
int parse_mount(char *spec, struct shim_mount *m, struct shim_err *err); /* splits spec in place */
bool valid_id(const char *id);
bool path_is_abs(const char *p);       /* absolute, no "..", bounded length */
bool overlay_safe_path(const char *p); /* no ',', ':' or '\\' (overlay option syntax) */
bool valid_rel_path(const char *p);    /* no "..", not absolute, not empty */

extern const char shim_usage[];

#endif
