/* The parent/child protocol between the shim (monitor, on the host) and the
 * container init it clones, over a SOCK_SEQPACKET pair (one message per send,
 * both ends close-on-exec).
 *
 *   monitor                                   container init
 *   ───────                                   ──────────────
 *   STAGE_PREPARE  state dir, log, control FIFO
 *   STAGE_CGROUP   create group, write limits
 *   STAGE_CLONE    clone(NEWPID|NEWNS|...) ─►  STAGE_JOIN_CGROUP  v2: born inside (CLONE_INTO_CGROUP)
 *                                                                 v1: moves itself ("0" > tasks)
 *                                              STAGE_NAMESPACES   cgroupns, netns, lo, hostname
 *                                              STAGE_ROOTFS       mounts, pivot_root
 *                  ◄──────────────────────────  MSG_PTY + master   (--tty, after pivot_root)
 *                                              STAGE_SECURITY     uid/gid, caps, seccomp
 *                  ◄──────────────────────────  MSG_EXEC           about to execve
 *                  ◄───────── EOF ───────────   (execve closed the socket: started)
 *                  ◄──────── MSG_ERROR ──────   (any failure: errno + message, exit)
 *   STAGE_RUNNING  state "running", pump logs, forward signals, reap
 *   STAGE_CLEANUP  oom check, remove cgroup, state "exited"
 *
 * The init joins its cgroup before anything else it does, so all it allocates
 * is charged to the container; no message is needed for that, which saves a
 * round trip (see cgroup_join_self for why the init moves itself).
 *
 * Why a message before exec plus EOF after it: EOF alone cannot tell "exec
 * succeeded" from "died during setup"; MSG_EXEC alone cannot tell "exec
 * succeeded" from "exec failed". Together they can. */
#ifndef FLOTILLA_SHIM_PROTO_H
#define FLOTILLA_SHIM_PROTO_H

#include <stdint.h>

#include "error.h"

enum shim_stage {
	STAGE_PREPARE,
	STAGE_CGROUP,
	STAGE_CLONE,
	STAGE_JOIN_CGROUP,
	STAGE_NAMESPACES,
	STAGE_ROOTFS,
	STAGE_SECURITY,
	STAGE_EXEC,
	STAGE_RUNNING,
	STAGE_CLEANUP,
};

enum shim_msg_type {
	MSG_EXEC = 2,  /* init -> monitor: setup done, calling execve */
	MSG_ERROR = 3, /* init -> monitor: a step failed, see errnum/msg */
	MSG_PTY = 4,   /* init -> monitor: --tty, the pty master rides along (SCM_RIGHTS) */
};

struct shim_msg {
	uint32_t type;
	int32_t errnum;
	int32_t exit_code; /* MSG_ERROR: status to record (125/126/127) */
	char msg[SHIM_ERR_MSG_MAX];
};

#endif
