/* The monitor's private state, shared by monitor.c (prepare, spawn, finish)
 * and events.c (the loop of STAGE_RUNNING). */
#ifndef FLOTILLA_SHIM_RUN_H
#define FLOTILLA_SHIM_RUN_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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
	int state_lock;         /* flock'ed state dir */
	bool owns_state;        /* we hold the lock: state.json is ours to write */

	int devnull, log_fd, fifo_fd, sfd, sock, report_fd;
	int out[2][2];          /* stdout/stderr pipes: [stream][read=0, write=1] */
	pid_t pid;

	bool got_exec, sock_eof, started, exited;
	bool died_in_setup;     /* EOF without MSG_EXEC or MSG_ERROR */
	int wstatus;
	uint64_t pending_sigs;  /* forwarded signals that arrived before exec */

	struct shim_err start_err; /* set when the start failed */
	int start_code;

	struct log_pending pend[2];
	struct strbuf logbuf;
	long long log_size;     /* bytes in the current log file */
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

#endif
