/* The monitor's private state, shared by monitor.c (prepare, spawn, finish)
 * and events.c (the loop of STAGE_RUNNING). */
#ifndef FLOTILLA_SHIM_RUN_H
#define FLOTILLA_SHIM_RUN_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach.h"
#include "cgroup.h"
#include "config.h"
#include "error.h"
#include "logio.h"
#include "state.h"

/* After the init exits, output still buffered in the pipes is drained for at
 * most this long (something outside the container may hold a write end). */
#define DRAIN_MS 2000

struct run {
	const struct shim_config *cfg;
	struct shim_state st;
	struct cgroup cg;
	bool cg_made;
	char rootfs_dir[PATH_MAX];
	bool rootfs_made;
	char fifo_path[PATH_MAX];
	bool fifo_made;
	int state_lock;  /* flock'ed state dir */
	bool owns_state; /* we hold the lock: state.json is ours to write */

	int devnull, log_fd, fifo_fd, sfd, sock, report_fd;
	int out[2][2]; /* stdout/stderr pipes: [stream][read=0, write=1]; tty: [0][0] = pty master */
	pid_t pid;

	/* interactive I/O (attach.h); -1 when absent */
	int pidfd;          /* exec: the container init */
	int in[2];          /* --stdin without a tty: the command's stdin pipe */
	int stdin_w;        /* where client stdin goes: in[1], or a dup of the pty master */
	bool stdin_closing; /* close stdin_w once stdin_pending is written */
	struct strbuf stdin_pending;
	int pty_master;
	int listen_fd;
	bool listen_made;
	bool ever_attached;
	struct timespec wait_from; /* --attach-wait: when holding the output began */
	struct attach_client clients[ATTACH_MAX_CLIENTS];

	bool got_exec, sock_eof, started, exited;
	bool died_in_setup; /* EOF without MSG_EXEC or MSG_ERROR */
	int wstatus;
	uint64_t pending_sigs; /* forwarded signals that arrived before exec */

	struct shim_err start_err; /* set when the start failed */
	int start_code;

	struct log_pending pend[2];
	struct strbuf logbuf;
	long long log_size; /* bytes in the current log file */
};

void now_rfc3339(char out[SHIM_TIME_MAX]);
void close_fd(int *fd);
/* Records the first start failure (exit code + error); returns -1. */
int start_failed(struct run *r, int code, const struct shim_err *err);
/* Sends the start outcome line to the detached caller, once. */
void report(struct run *r, const char *line);
/* Appends the formatted log records buffered in r->logbuf to the log file. */
void write_log(struct run *r);
/* STAGE_RUNNING: until the init is reaped and its output drained. */
void run_loop(struct run *r);

/* io.c: the attach socket and stdin (see attach.h). */
int attach_listen(struct run *r, struct shim_err *err);
void attach_accept(struct run *r);
/* A client is readable (or hung up). */
void attach_on_client(struct run *r, struct attach_client *c, short revents);
/* Output of the command (stream 1 or 2) to every client. */
void attach_broadcast(struct run *r, int stream, const char *buf, size_t n);
/* Queued stdin into the command, as far as it goes without blocking. */
void stdin_flush(struct run *r);
/* After the exit: hands the clients what is queued (bounded), then closes them. */
void attach_close_all(struct run *r);
/* Whether the output is still held for the first client (--attach-wait). */
bool attach_holding(struct run *r);

#endif
