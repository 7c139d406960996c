/* The terminal of a --tty container or exec, set up as runc does: a pty from
 * the container's own devpts instance (so the command sees /dev/pts/N), its
 * slave as stdin/stdout/stderr and controlling terminal, bound over
 * /dev/console for a container; the master goes to the monitor over the
 * protocol socket (SCM_RIGHTS) and never exists inside the container. */
#ifndef FLOTILLA_SHIM_PTY_H
#define FLOTILLA_SHIM_PTY_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* In the container (after pivot_root or setns): opens a pty, sends the master
 * as MSG_PTY over sock, returns the slave (close-on-exec), owned by uid when
 * chown_to_uid. With console, the slave is also bound over /dev/console. */
int pty_open_in_container(int sock, bool console, bool chown_to_uid, uid_t uid, struct shim_err *err);
/* In the monitor: receives one message and, if it carried one, a descriptor.
 * Returns the byte count of recv(2) (0 on EOF, -1 with errno). */
ssize_t recv_msg_fd(int sock, void *buf, size_t len, int *fd, bool block);
/* Makes the calling process's fd 0 its controlling terminal (after setsid). */
int pty_make_controlling(struct shim_err *err);
/* Sets the window size of the pty behind master. */
int pty_resize(int master, unsigned short rows, unsigned short cols);

#endif
