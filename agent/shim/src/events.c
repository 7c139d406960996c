/* STAGE_RUNNING: one poll(2) loop over the protocol socket, the signalfd, the
 * control FIFO and the output pipes, until the container init is reaped and
 * its output drained. See proto.h for how the start is decided. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "pty.h"
#include "run.h"

void report(struct run *r, const char *line)
{
	if (r->report_fd < 0)
		return;
	write_all(r->report_fd, line, strlen(line));
	close_fd(&r->report_fd);
}

static void on_started(struct run *r)
{
	struct shim_err err;
	r->started = true;
	r->st.status = SHIM_STATUS_RUNNING;
	r->st.pid = r->pid;
	now_rfc3339(r->st.started_at);
	if (state_write(r->cfg->state_dir, &r->st, &err) < 0) {
		/* the agent could not follow this container: treat as a failed start */
		kill(r->pid, SIGKILL);
		start_failed(r, SHIM_EXIT_FAILED, &err);
		return;
	}
	struct strbuf sb = {0};
	sb_puts(&sb, "ok ");
	state_format(&r->st, &sb);
	if (!sb.oom)
		report(r, sb.buf);
	sb_free(&sb);
	for (int sig = 1; sig < 64; sig++)
		if (r->pending_sigs & (1ULL << sig))
			kill(r->pid, sig);
	r->pending_sigs = 0;
}

/* Reads protocol messages; EOF decides the start (see proto.h). */
static void on_sock(struct run *r, bool block)
{
	for (;;) {
		struct shim_msg m;
		int fd;
		ssize_t n = recv_msg_fd(r->sock, &m, sizeof(m), &fd, block);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(&r->sock);
			r->sock_eof = true;
			if (r->start_code == 0 && r->got_exec) {
				on_started(r);
			} else if (r->start_code == 0) {
				struct shim_err err;
				shim_fail(&err, 0, "container init died during setup");
				start_failed(r, SHIM_EXIT_FAILED, &err);
				r->died_in_setup = true;
			}
			return;
		}
		if (m.type == MSG_PTY && fd >= 0 && r->pty_master < 0) {
			/* from now on the pty is the command's stdio: its output is read
			 * from the master like a pipe, stdin written to it */
			fcntl(fd, F_SETFL, O_NONBLOCK);
			r->pty_master = fd;
			r->out[LOG_STDOUT][0] = dup(fd);
			if (r->cfg->open_stdin)
				r->stdin_w = dup(fd);
			fd = -1;
		} else if (m.type == MSG_EXEC) {
			r->got_exec = true;
		} else if (m.type == MSG_ERROR) {
			struct shim_err err = {.errnum = m.errnum};
			m.msg[sizeof(m.msg) - 1] = '\0';
			memcpy(err.msg, m.msg, sizeof(err.msg));
			start_failed(r, m.exit_code ? m.exit_code : SHIM_EXIT_FAILED, &err);
		}
		if (fd >= 0)
			close(fd);
	}
}

static void deliver(struct run *r, int sig)
{
	if (r->pid <= 0 || r->exited)
		return;
	/* Before exec the init is still shim code, and as a namespace init it
	 * ignores every signal it has no handler for: hold them until the
	 * command runs. SIGKILL works at any time. */
	if (!r->started && sig != SIGKILL) {
		if (sig > 0 && sig < 64)
			r->pending_sigs |= 1ULL << sig;
		return;
	}
	kill(r->pid, sig);
}

static void reap(struct run *r)
{
	int status;
	pid_t p;
	/* as a child subreaper we also inherit orphans: reap everything */
	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		if (p == r->pid && !r->exited) {
			r->exited = true;
			r->wstatus = status;
			now_rfc3339(r->st.finished_at);
		}
	}
}

static void on_signals(struct run *r)
{
	struct signalfd_siginfo si[8];
	ssize_t n;
	while ((n = read(r->sfd, si, sizeof(si))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			if (si[i].ssi_signo == SIGCHLD)
				reap(r);
			else
				deliver(r, (int)si[i].ssi_signo);
		}
	}
}

static void on_fifo(struct run *r)
{
	char buf[256];
	ssize_t n = read(r->fifo_fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		struct control_cmd cmd;
		if (control_parse(tok, &cmd) < 0)
			continue;
		if (cmd.kind == CONTROL_SIGNAL)
			deliver(r, cmd.signal);
		else if (r->pty_master >= 0)
			pty_resize(r->pty_master, cmd.rows, cmd.cols);
	}
}

static void rotate_log(struct run *r)
{
	const struct shim_config *cfg = r->cfg;
	/* a failed rotation keeps writing to the open file: output is not dropped */
	if (log_rotate_files(cfg->log_path, cfg->log_max_files) < 0)
		return;
	int fd = open(cfg->log_path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	/* same descriptor number: nothing else needs to learn about it */
	dup3(fd, r->log_fd, O_CLOEXEC);
	close(fd);
	r->log_size = 0;
}

void write_log(struct run *r)
{
	const char *p = r->logbuf.buf;
	size_t left = r->logbuf.len;
	long long max = r->cfg->log_max_size;
	while (left > 0) {
		if (log_needs_rotation(r->log_size, left, max) && r->log_size > 0)
			rotate_log(r);
		/* whole records only, as many as fit (at least one, however long) */
		size_t take = log_fitting_records(p, left, max > 0 ? max - r->log_size : -1);
		/* one write per piece: O_APPEND keeps each piece whole */
		write_all(r->log_fd, p, take);
		r->log_size += (long long)take;
		p += take;
		left -= take;
	}
	sb_reset(&r->logbuf);
}

static void on_output(struct run *r, int stream)
{
	char buf[65536];
	ssize_t n = read(r->out[stream][0], buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	/* a pty master reads EIO once no slave is open: that is its EOF */
	char now[SHIM_TIME_MAX];
	now_rfc3339(now);
	if (n <= 0) {
		log_flush(&r->pend[stream], (enum log_stream)stream, now, &r->logbuf);
		write_log(r);
		close_fd(&r->out[stream][0]);
		return;
	}
	/* --foreground also passes the output through, for an attached client */
	if (r->cfg->foreground)
		write_all(stream == LOG_STDOUT ? 1 : 2, buf, (size_t)n);
	attach_broadcast(r, stream + 1, buf, (size_t)n);
	if (r->log_fd < 0)
		return;
	log_feed(&r->pend[stream], buf, (size_t)n, (enum log_stream)stream, now, &r->logbuf);
	write_log(r);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* STAGE_RUNNING: one poll loop until the init is reaped and its output drained. */
void run_loop(struct run *r)
{
	struct timespec exited_at = {0};
	for (;;) {
		if (r->exited && r->sock >= 0)
			on_sock(r, true); /* EOF is certain once the init is gone */
		bool pipes_open = r->out[0][0] >= 0 || r->out[1][0] >= 0;
		/* --attach-wait also holds the end: a command quicker than its client
		 * still has its output and exit delivered to it */
		bool hold = attach_holding(r);
		if (r->exited && r->sock < 0 && !hold) {
			if (!pipes_open)
				return;
			if (exited_at.tv_sec == 0)
				clock_gettime(CLOCK_MONOTONIC, &exited_at);
			if (ms_since(&exited_at) >= DRAIN_MS)
				return;
		}
		/* fixed slots first, then one per attach client */
		enum { P_SOCK, P_SIG, P_FIFO, P_OUT, P_ERR, P_STDIN, P_LISTEN, P_CLIENTS };
		struct pollfd p[P_CLIENTS + ATTACH_MAX_CLIENTS];
		bool stdin_full = r->stdin_pending.len > 0;
		p[P_SOCK] = (struct pollfd){.fd = r->sock, .events = POLLIN};
		p[P_SIG] = (struct pollfd){.fd = r->sfd, .events = POLLIN};
		p[P_FIFO] = (struct pollfd){.fd = r->fifo_fd, .events = POLLIN};
		p[P_OUT] = (struct pollfd){.fd = hold ? -1 : r->out[0][0], .events = POLLIN};
		p[P_ERR] = (struct pollfd){.fd = hold ? -1 : r->out[1][0], .events = POLLIN};
		p[P_STDIN] = (struct pollfd){.fd = stdin_full ? r->stdin_w : -1, .events = POLLOUT};
		p[P_LISTEN] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
		for (size_t i = 0; i < ATTACH_MAX_CLIENTS; i++) {
			struct attach_client *c = &r->clients[i];
			short ev = (short)((c->out.len ? POLLOUT : 0) | (c->read_eof || stdin_full ? 0 : POLLIN));
			p[P_CLIENTS + i] = (struct pollfd){.fd = c->fd, .events = ev};
		}
		int timeout = r->exited ? 100 : hold ? 50 : -1;
		int n = poll(p, P_CLIENTS + ATTACH_MAX_CLIENTS, timeout);
		if (n < 0 && errno != EINTR)
			return;
		if (n <= 0)
			continue;
		/* the socket before signals: its EOF precedes the init's exit */
		if (p[P_SOCK].revents)
			on_sock(r, false);
		if (p[P_SIG].revents)
			on_signals(r);
		if (p[P_FIFO].revents)
			on_fifo(r);
		if (p[P_LISTEN].revents)
			attach_accept(r);
		for (size_t i = 0; i < ATTACH_MAX_CLIENTS; i++)
			if (p[P_CLIENTS + i].fd >= 0 && p[P_CLIENTS + i].revents &&
			    r->clients[i].fd == p[P_CLIENTS + i].fd)
				attach_on_client(r, &r->clients[i], p[P_CLIENTS + i].revents);
		if (p[P_STDIN].revents)
			stdin_flush(r);
		for (int s = 0; s < 2; s++)
			if (p[P_OUT + s].revents)
				on_output(r, s);
	}
}
