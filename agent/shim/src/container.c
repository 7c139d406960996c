/* See container.h. Stages follow proto.h; every failure is sent to the
 * monitor as MSG_ERROR before exiting, so the caller sees which step failed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container.h"
#include "proto.h"
#include "pty.h"
#include "rootfs.h"
#include "security.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void send_msg(int sock, uint32_t type, const struct shim_err *err, int exit_code)
{
	struct shim_msg m = {.type = type, .exit_code = exit_code};
	if (err != NULL) {
		m.errnum = err->errnum;
		snprintf(m.msg, sizeof(m.msg), "%s", err->msg);
	}
	/* MSG_NOSIGNAL: a vanished monitor must not kill us with SIGPIPE here */
	send(sock, &m, sizeof(m), MSG_NOSIGNAL);
}

__attribute__((noreturn)) static void fail(const struct container_io *io, struct shim_err *err, int exit_code)
{
	send_msg(io->sock, MSG_ERROR, err, exit_code);
	_exit(exit_code);
}

static bool env_has(const char **envp, size_t n, const char *key, size_t klen)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], key, klen) == 0 && envp[i][klen] == '=')
			return true;
	return false;
}

void container_env(const struct shim_config *cfg, const char **envp, char *hostname_var, size_t hostname_size)
{
	size_t n = 0;
	/* a later --env K=V overrides an earlier one, as with docker run -e */
	for (size_t i = 0; i < cfg->n_env; i++) {
		const char *kv = cfg->env[i];
		size_t klen = (size_t)(strchr(kv, '=') - kv);
		bool overridden = false;
		for (size_t j = i + 1; j < cfg->n_env && !overridden; j++)
			overridden = strncmp(cfg->env[j], kv, klen + 1) == 0;
		if (!overridden)
			envp[n++] = kv;
	}
	if (!env_has(envp, n, "PATH", 4))
		envp[n++] = DEFAULT_PATH;
	if (cfg->hostname != NULL && !env_has(envp, n, "HOSTNAME", 8)) {
		snprintf(hostname_var, hostname_size, "HOSTNAME=%s", cfg->hostname);
		envp[n++] = hostname_var;
	}
	envp[n] = NULL;
}

static int loopback_up(struct shim_err *err)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return shim_fail(err, errno, "netns: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return shim_fail(err, errno, "netns: get lo flags");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return shim_fail(err, errno, "netns: set lo up");
	return 0;
}

/* execvp with the container's PATH (glibc's execvpe searches the shim's own). */
static void exec_command(const struct shim_config *cfg, char *const *envp)
{
	const char *file = cfg->argv[0];
	if (strchr(file, '/') != NULL) {
		execve(file, cfg->argv, envp);
		return;
	}
	const char *path = DEFAULT_PATH + 5;
	for (size_t i = 0; envp[i]; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			path = envp[i] + 5;
	bool denied = false;
	int last = ENOENT;
	for (const char *dir = path;;) {
		const char *end = strchrnul(dir, ':');
		char full[PATH_MAX];
		int n = snprintf(full, sizeof(full), "%.*s%s%s", (int)(end - dir), dir, end == dir ? "" : "/", file);
		if (n > 0 && (size_t)n < sizeof(full)) {
			execve(full, cfg->argv, envp);
			if (errno == EACCES)
				denied = true;
			else if (errno != ENOENT && errno != ENOTDIR)
				last = errno;
		}
		if (*end == '\0')
			break;
		dir = end + 1;
	}
	errno = last != ENOENT ? last : denied ? EACCES : ENOENT;
}

__attribute__((noreturn)) static void start_command(const struct shim_config *cfg, const struct container_io *io,
                                                    bool console);

void container_main(const struct shim_config *cfg, const struct container_io *io)
{
	struct shim_err err;
	shim_err_clear(&err);
	/* STAGE_JOIN_CGROUP: before anything else, so everything the init
	 * allocates from here on is charged to the container */
	if (!io->in_cgroup && cgroup_join_self(io->cg, &err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);

	/* STAGE_NAMESPACES. The cgroup namespace is unshared only now, so that its
	 * root is the container's own group (the container sees "/" in
	 * /proc/self/cgroup, not the host's hierarchy). */
	if (unshare(CLONE_NEWCGROUP) < 0 && errno != EINVAL) {
		shim_fail(&err, errno, "namespaces: unshare cgroup namespace");
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	/* join a given netns before mounting /sys, whose class/net shows the
	 * mounter's namespace */
	if (io->netns_fd >= 0 && setns(io->netns_fd, CLONE_NEWNET) < 0) {
		shim_fail(&err, errno, "netns: join %s", cfg->netns_path);
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	if (cfg->netns == SHIM_NETNS_NEW && loopback_up(&err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);
	if (cfg->hostname != NULL && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0) {
		shim_fail(&err, errno, "hostname: sethostname %s", cfg->hostname);
		fail(io, &err, SHIM_EXIT_FAILED);
	}

	/* STAGE_ROOTFS: needs the host paths (bind sources, /dev nodes) and full
	 * root, so it comes before the privilege drop; it ends in pivot_root. */
	if (rootfs_setup(cfg, io->rootfs_target, &err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);

	start_command(cfg, io, true);
}

/* From stdio to execve, shared by a container's init and an exec: the
 * terminal or pipes, a clean signal state, the session, then the privilege
 * drop and seccomp, last of all. */
__attribute__((noreturn)) static void start_command(const struct shim_config *cfg, const struct container_io *io,
                                                    bool console)
{
	struct shim_err err;
	shim_err_clear(&err);
	int in = io->stdin_fd, out = io->stdout_fd, errfd = io->stderr_fd;
	if (cfg->tty) {
		int slave = pty_open_in_container(io->sock, console, cfg->has_user, cfg->uid, &err);
		if (slave < 0)
			fail(io, &err, SHIM_EXIT_FAILED);
		in = out = errfd = slave;
	}
	/* stdio: dup2 clears close-on-exec on 0/1/2; everything else we inherited
	 * is marked close-on-exec so the command starts with exactly three fds */
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0) {
		shim_fail(&err, errno, "stdio: dup2");
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 1024; fd++)
			if (fd != io->sock)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
	}

	/* The monitor blocks signals for its signalfd and ignores SIGPIPE, and the
	 * caller may have ignored others (nohup): a blocked mask and ignored
	 * dispositions survive exec, so reset both. */
	for (int sig = 1; sig < SIGRTMIN; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(022);
	/* Own session: no controlling terminal shared with the caller, so a
	 * terminal's ^C reaches the container once, through the monitor. With a
	 * tty, the slave becomes the session's terminal: job control and ^C work
	 * inside, as with runc. */
	if (setsid() < 0) {
		shim_fail(&err, errno, "stdio: setsid");
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	if (cfg->tty && pty_make_controlling(&err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);

	size_t env_cap = cfg->n_env + 3;
	const char *envp[env_cap];
	char hostname_var[80];
	container_env(cfg, envp, hostname_var, sizeof(hostname_var));

	/* STAGE_SECURITY */
	if (security_apply(cfg, &err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);
	/* After the uid switch, which resets it. If the monitor dies, the kernel
	 * kills us: nobody would record our exit or drain our output otherwise. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		shim_fail(&err, errno, "security: prctl(PR_SET_PDEATHSIG)");
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	/* seccomp last: it filters every syscall after it, setup included */
	if (cfg->seccomp && seccomp_install(&err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);

	/* STAGE_EXEC. A failed send means the monitor is gone (and the death
	 * signal may have raced with its exit): do not start an orphan. */
	struct shim_msg go = {.type = MSG_EXEC};
	if (send(io->sock, &go, sizeof(go), MSG_NOSIGNAL) < 0)
		_exit(SHIM_EXIT_FAILED);
	exec_command(cfg, (char *const *)envp);
	int e = errno;
	if (e == ENOENT && strchr(cfg->argv[0], '/') == NULL)
		shim_fail(&err, 0, "exec: \"%s\": executable file not found in $PATH", cfg->argv[0]);
	else
		shim_fail(&err, e, "exec: \"%s\"", cfg->argv[0]);
	err.errnum = e;
	fail(io, &err, e == ENOENT ? SHIM_EXIT_NOT_FOUND : SHIM_EXIT_CANNOT_EXEC);
}

void exec_main(const struct shim_config *cfg, const struct container_io *io)
{
	struct shim_err err;
	shim_err_clear(&err);
	/* the cgroup first (its paths are host paths, gone after the mount
	 * namespace switch); on v2 clone3 put us there already */
	if (!io->in_cgroup && cgroup_join_self(io->cg, &err) < 0)
		fail(io, &err, SHIM_EXIT_FAILED);
	/* The pid namespace came from the monitor (setns before clone). One setns
	 * on the init's pidfd joins the rest at once; the mount namespace switch
	 * sets our root and cwd to the container's root. */
	if (setns(io->pidfd, CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP) < 0) {
		shim_fail(&err, errno, "exec: join the container's namespaces");
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	const char *cwd = cfg->cwd != NULL ? cfg->cwd : "/";
	if (chdir(cwd) < 0) {
		shim_fail(&err, errno, "exec: chdir to cwd (\"%s\") set in config.json failed", cwd);
		fail(io, &err, SHIM_EXIT_FAILED);
	}
	start_command(cfg, io, false);
}
