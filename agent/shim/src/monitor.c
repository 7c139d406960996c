/* See monitor.h and the protocol in proto.h. This file holds the stages
 * before and after the container runs (prepare, spawn, finish); the event
 * loop of STAGE_RUNNING is in events.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "container.h"
#include "monitor.h"
#include "proto.h"
#include "run.h"
#include "state.h"

/* Signals the monitor forwards to the container init. */
static const int shim_forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};

void now_rfc3339(char out[SHIM_TIME_MAX])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	fmt_rfc3339(&ts, out);
}

void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int start_failed(struct run *r, int code, const struct shim_err *err)
{
	if (r->start_code == 0) {
		r->start_code = code;
		r->start_err = *err;
	}
	return -1;
}

/* exec: the container is there already; a pidfd pins its init (a recycled pid
 * cannot be joined by mistake once we hold it), and its group is found, not made. */
static int prepare_exec(struct run *r)
{
	const struct shim_config *cfg = r->cfg;
	struct shim_err err;
	r->pidfd = (int)syscall(SYS_pidfd_open, cfg->target_pid, 0);
	if (r->pidfd < 0) {
		int e = errno;
		if (e == ESRCH)
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, 0, "exec: the container is not running (pid %d is gone)",
			                               (int)cfg->target_pid),
			                     &err));
		return start_failed(r, SHIM_EXIT_FAILED,
		                    (shim_fail(&err, e, "exec: pidfd_open %d", (int)cfg->target_pid), &err));
	}
	if (cgroup_locate(&r->cg, cfg->cgroup_root, cfg->cgroup_rel, &err) < 0)
		return start_failed(r, SHIM_EXIT_FAILED, &err);
	r->st.cgroup_version = (int)r->cg.version;
	r->st.cgroup = r->cg.rel;
	return 0;
}

/* STAGE_PREPARE and STAGE_CGROUP: everything that exists before the clone. */
static int prepare(struct run *r)
{
	const struct shim_config *cfg = r->cfg;
	struct shim_err err;

	if (mkdir_p(cfg->state_dir, 0711, &err) < 0)
		return start_failed(r, SHIM_EXIT_FAILED, (shim_wrap(&err, "state"), &err));
	/* One shim per state dir: an exclusive lock on the directory, held for the
	 * monitor's life (released by the kernel however it ends). Taken before the
	 * first write, so a second `run` on a live container's directory fails
	 * without touching its state.json or its control FIFO. */
	r->state_lock = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->state_lock < 0)
		return start_failed(r, SHIM_EXIT_FAILED,
		                    (shim_fail(&err, errno, "state: open %s", cfg->state_dir), &err));
	if (flock(r->state_lock, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		if (e == EWOULDBLOCK)
			shim_fail(&err, 0, "state: %s is in use by another shim", cfg->state_dir);
		else
			shim_fail(&err, e, "state: lock %s", cfg->state_dir);
		return start_failed(r, SHIM_EXIT_FAILED, &err);
	}
	r->owns_state = true;
	if (state_write(cfg->state_dir, &r->st, &err) < 0)
		return start_failed(r, SHIM_EXIT_FAILED, &err);

	r->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (r->devnull < 0)
		return start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&err, errno, "prepare: open /dev/null"), &err));
	if (cfg->log_path != NULL) {
		r->log_fd = open(cfg->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (r->log_fd < 0)
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, errno, "log: open %s", cfg->log_path), &err));
		struct stat lst;
		r->log_size = fstat(r->log_fd, &lst) == 0 ? (long long)lst.st_size : 0;
	}
	/* with a tty the output comes from the pty master, which the init sends */
	if ((cfg->log_path != NULL || cfg->attach) && !cfg->tty) {
		for (int s = 0; s < 2; s++)
			if (pipe2(r->out[s], O_CLOEXEC) < 0)
				return start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&err, errno, "log: pipe"), &err));
	}
	if (cfg->open_stdin && !cfg->tty) {
		if (pipe2(r->in, O_CLOEXEC) < 0)
			return start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&err, errno, "stdin: pipe"), &err));
		r->stdin_w = r->in[1];
		r->in[1] = -1;
		fcntl(r->stdin_w, F_SETFL, O_NONBLOCK);
	}
	if (cfg->attach && attach_listen(r, &err) < 0)
		return start_failed(r, SHIM_EXIT_FAILED, &err);
	clock_gettime(CLOCK_MONOTONIC, &r->wait_from);

	/* control FIFO for `flotilla-shim kill`: opened read-write so it never
	 * reports EOF when a writer leaves; a writer that finds no reader (ENXIO)
	 * knows the shim is gone */
	snprintf(r->fifo_path, sizeof(r->fifo_path), "%s/control", cfg->state_dir);
	unlink(r->fifo_path);
	if (mkfifo(r->fifo_path, 0600) < 0)
		return start_failed(r, SHIM_EXIT_FAILED,
		                    (shim_fail(&err, errno, "control: mkfifo %s", r->fifo_path), &err));
	r->fifo_made = true;
	r->fifo_fd = open(r->fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (r->fifo_fd < 0)
		return start_failed(r, SHIM_EXIT_FAILED,
		                    (shim_fail(&err, errno, "control: open %s", r->fifo_path), &err));

	if (cfg->cmd == SHIM_CMD_EXEC)
		return prepare_exec(r);

	if (cfg->n_lowers > 0) {
		/* only a mount point: the overlay is mounted inside the container's
		 * mount namespace and disappears with it, even if the shim is killed */
		snprintf(r->rootfs_dir, sizeof(r->rootfs_dir), "%s/rootfs", cfg->state_dir);
		if (mkdir(r->rootfs_dir, 0755) < 0 && errno != EEXIST)
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, errno, "rootfs: mkdir %s", r->rootfs_dir), &err));
		r->rootfs_made = true;
		for (size_t i = 0; i < cfg->n_lowers; i++)
			if (access(cfg->lowers[i], F_OK) < 0)
				return start_failed(
				    r, SHIM_EXIT_FAILED,
				    (shim_fail(&err, errno, "rootfs: lower layer %s", cfg->lowers[i]), &err));
	} else {
		struct stat st;
		if (stat(cfg->rootfs, &st) < 0)
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, errno, "rootfs: %s", cfg->rootfs), &err));
		if (!S_ISDIR(st.st_mode))
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, ENOTDIR, "rootfs: %s", cfg->rootfs), &err));
	}

	if (cgroup_create(&r->cg, cfg, &err) < 0)
		return start_failed(r, SHIM_EXIT_FAILED, &err);
	r->cg_made = true;
	r->st.cgroup_version = (int)r->cg.version;
	r->st.cgroup = r->cg.rel;
	return 0;
}

/* STAGE_CLONE: the child gets new pid, mount, uts and ipc namespaces (and net
 * unless joining one). The pid namespace must come from clone: unshare() would
 * only move our future children into it. */
static int spawn(struct run *r)
{
	const struct shim_config *cfg = r->cfg;
	struct shim_err err;
	_cleanup_close_ int netns_fd = -1;
	if (cfg->netns == SHIM_NETNS_PATH) {
		netns_fd = open(cfg->netns_path, O_RDONLY | O_CLOEXEC);
		if (netns_fd < 0)
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, errno, "netns: open %s", cfg->netns_path), &err));
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&err, errno, "clone: socketpair"), &err));

	struct container_io io = {
	    .sock = sp[1],
	    .stdin_fd = r->in[0] >= 0 ? r->in[0] : (cfg->foreground && !cfg->attach ? 0 : r->devnull),
	    .stdout_fd = r->out[LOG_STDOUT][1] >= 0 ? r->out[LOG_STDOUT][1] : (cfg->foreground ? 1 : r->devnull),
	    .stderr_fd = r->out[LOG_STDERR][1] >= 0 ? r->out[LOG_STDERR][1] : (cfg->foreground ? 2 : r->devnull),
	    .netns_fd = netns_fd,
	    .rootfs_target = cfg->n_lowers > 0 ? r->rootfs_dir : cfg->rootfs,
	    .cg = &r->cg,
	    .pidfd = r->pidfd,
	};
	bool exec = cfg->cmd == SHIM_CMD_EXEC;
	uint64_t flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	if (cfg->netns == SHIM_NETNS_NEW)
		flags |= CLONE_NEWNET;
	if (exec) {
		/* Our children are born in the container's pid namespace (a process
		 * cannot move itself into one); the monitor itself stays outside. */
		if (setns(r->pidfd, CLONE_NEWPID) < 0) {
			int e = errno;
			close(sp[0]);
			close(sp[1]);
			return start_failed(r, SHIM_EXIT_FAILED,
			                    (shim_fail(&err, e, "exec: join the container's pid namespace"), &err));
		}
		flags = 0;
	}
	_cleanup_close_ int cgfd = cgroup_open_dir(&r->cg);
	pid_t pid = -1;
	if (cgfd >= 0) {
		/* v2: the child is created inside its cgroup, never migrated */
		struct clone_args args = {
		    .flags = flags | CLONE_INTO_CGROUP,
		    .exit_signal = SIGCHLD,
		    .cgroup = (uint64_t)cgfd,
		};
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		io.in_cgroup = pid >= 0;
	}
	/* v1, or a kernel without clone3/CLONE_INTO_CGROUP (< 5.7): a plain
	 * clone; a raw clone without a new stack behaves like fork */
	if (pid < 0)
		pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		int e = errno;
		close(sp[0]);
		close(sp[1]);
		return start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&err, e, "clone"), &err));
	}
	if (pid == 0) {
		close(sp[0]);
		if (exec)
			exec_main(cfg, &io);
		container_main(cfg, &io);
	}
	r->pid = pid;
	r->sock = sp[0];
	/* Our copies of the child's ends must go now: the socket's EOF and the
	 * pipes' EOF only come once no process holds a write end. */
	close(sp[1]);
	for (int s = 0; s < 2; s++)
		close_fd(&r->out[s][1]);
	close_fd(&r->in[0]);
	return 0;
}

/* STAGE_CLEANUP: the exit record is written last, so an agent that sees
 * "exited" can rely on the cgroup and mounts being gone already. */
static int finish(struct run *r, struct shim_err *out_err)
{
	struct shim_err err;
	if (r->pid > 0 && !r->exited) {
		kill(r->pid, SIGKILL);
		while (!r->exited) {
			int status;
			pid_t p = waitpid(-1, &status, 0);
			if (p < 0 && errno != EINTR)
				break;
			if (p == r->pid) {
				r->exited = true;
				r->wstatus = status;
			}
		}
	}
	if (r->sock >= 0)
		close_fd(&r->sock);
	char now[SHIM_TIME_MAX];
	now_rfc3339(now);
	for (int s = 0; s < 2; s++) {
		if (r->log_fd >= 0)
			log_flush(&r->pend[s], (enum log_stream)s, now, &r->logbuf);
		write_log(r);
		close_fd(&r->out[s][0]);
		close_fd(&r->out[s][1]);
	}

	int code;
	bool sigkilled = r->exited && WIFSIGNALED(r->wstatus) && WTERMSIG(r->wstatus) == SIGKILL;
	if (r->start_code != 0) {
		code = r->start_code;
		snprintf(r->st.error, sizeof(r->st.error), "%s", r->start_err.msg);
		if (r->died_in_setup && r->exited && WIFSIGNALED(r->wstatus)) {
			bool oom = sigkilled && r->cg_made && cgroup_oom_killed(&r->cg, true);
			r->st.oom_killed = oom;
			snprintf(r->st.error, sizeof(r->st.error), "%s: killed by signal %d%s", r->start_err.msg,
			         WTERMSIG(r->wstatus), oom ? " (out of memory: raise --memory)" : "");
		}
	} else if (WIFSIGNALED(r->wstatus)) {
		code = 128 + WTERMSIG(r->wstatus);
	} else {
		code = WEXITSTATUS(r->wstatus);
	}
	if (r->started && r->cg_made)
		r->st.oom_killed = cgroup_oom_killed(&r->cg, sigkilled);

	/* cleanup failures are recorded, never hidden */
	if (r->cg_made && cgroup_destroy(&r->cg, &err) < 0) {
		size_t len = strlen(r->st.error);
		snprintf(r->st.error + len, sizeof(r->st.error) - len, "%scleanup: %s", len ? "; " : "", err.msg);
	}
	if (r->fifo_made)
		unlink(r->fifo_path);
	close_fd(&r->stdin_w);
	close_fd(&r->in[0]);
	close_fd(&r->pty_master);
	close_fd(&r->pidfd);
	sb_free(&r->stdin_pending);
	if (r->rootfs_made)
		rmdir(r->rootfs_dir);

	r->st.status = SHIM_STATUS_EXITED;
	r->st.exit_code = code;
	if (r->st.finished_at[0] == '\0')
		snprintf(r->st.finished_at, sizeof(r->st.finished_at), "%s", now);
	if (r->owns_state)
		state_write(r->cfg->state_dir, &r->st, &err);
	/* after "exited" is on disk: a client that sees EOF can read the exit code */
	attach_close_all(r);

	if (r->start_code != 0) {
		*out_err = r->start_err;
		snprintf(out_err->msg, sizeof(out_err->msg), "%s", r->st.error);
		char line[SHIM_ERR_MSG_MAX + 32];
		snprintf(line, sizeof(line), "err %d %s\n", code, r->st.error);
		report(r, line);
	}
	close_fd(&r->fifo_fd);
	close_fd(&r->log_fd);
	close_fd(&r->devnull);
	close_fd(&r->sfd);
	close_fd(&r->state_lock);
	sb_free(&r->logbuf);
	return code;
}

int monitor_run(const struct shim_config *cfg, int report_fd, struct shim_err *err)
{
	static struct run run; /* large (log buffers): keep it off the stack */
	struct run *r = &run;
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->devnull = r->log_fd = r->fifo_fd = r->sfd = r->sock = r->state_lock = -1;
	r->pidfd = r->stdin_w = r->pty_master = r->listen_fd = -1;
	r->in[0] = r->in[1] = -1;
	for (size_t i = 0; i < ATTACH_MAX_CLIENTS; i++)
		r->clients[i].fd = -1;
	r->report_fd = report_fd;
	for (int s = 0; s < 2; s++)
		r->out[s][0] = r->out[s][1] = -1;
	r->st.id = cfg->id;
	r->st.shim_pid = getpid();
	r->st.exit_code = -1;
	r->st.status = SHIM_STATUS_CREATED;

	/* Block the signals we handle before anything else: a signal arriving
	 * between clone and the loop stays pending and is read from the signalfd.
	 * The child inherits the mask and clears it before exec. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (size_t i = 0; i < SHIM_ARRAY_LEN(shim_forwarded_signals); i++)
		sigaddset(&set, shim_forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* a closed stdout (--foreground pass-through) must not kill the monitor */
	signal(SIGPIPE, SIG_IGN);
	r->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	struct shim_err e;
	if (r->sfd < 0) {
		start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&e, errno, "prepare: signalfd"), &e));
		return finish(r, err);
	}
	/* orphans of the container's helpers outside its pid namespace (e.g. an
	 * exec'd process that daemonized) are re-parented to us, not to host init */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		start_failed(r, SHIM_EXIT_FAILED, (shim_fail(&e, errno, "prepare: prctl(PR_SET_CHILD_SUBREAPER)"), &e));
		return finish(r, err);
	}
	if (prepare(r) == 0 && spawn(r) == 0)
		run_loop(r);
	return finish(r, err);
}
