/* The container init side of the protocol (see proto.h): runs in the cloned
 * child, sets everything up and execs the command. Never returns. */
#ifndef FLOTILLA_SHIM_CONTAINER_H
#define FLOTILLA_SHIM_CONTAINER_H

#include "cgroup.h"
#include "config.h"

struct container_io {
	int sock;     /* our end of the protocol socket */
	int stdin_fd; /* what becomes fd 0, 1, 2 of the command */
	int stdout_fd;
	int stderr_fd;
	int netns_fd; /* --netns PATH: namespace to join, else -1 */
	const char *rootfs_target;
	const struct cgroup *cg;
	bool in_cgroup; /* clone3(CLONE_INTO_CGROUP) already put us there */
	int pidfd;      /* exec: pidfd of the container init whose namespaces to join */
};

__attribute__((noreturn)) void container_main(const struct shim_config *cfg, const struct container_io *io);
/* The exec side: runs in a child the monitor cloned into the container's pid
 * namespace; joins its cgroup and other namespaces, then as container_main. */
__attribute__((noreturn)) void exec_main(const struct shim_config *cfg, const struct container_io *io);

/* Builds the command's environment (pure): the --env values, plus PATH and
 * HOSTNAME defaults when not given. envp must hold n_env + 3 entries; the
 * strings are owned by the caller-provided buffers. */
void container_env(const struct shim_config *cfg, const char **envp, char *hostname_var, size_t hostname_size);

#endif
