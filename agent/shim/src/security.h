/* Privileges of the container process: identity (uid, gid, groups),
 * capabilities, no_new_privs and the default seccomp filter. */
#ifndef FLOTILLA_SHIM_SECURITY_H
#define FLOTILLA_SHIM_SECURITY_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* Docker's default capability set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD
 * NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL
 * AUDIT_WRITE, i.e. 0x00000000a80425fb as /proc/PID/status prints it. */
uint64_t default_cap_mask(void);

/* Sets no_new_privs, shrinks the bounding set, switches uid/gid/groups and sets
 * effective/permitted/inheritable to the default set, ambient empty.
 * Runs as root in the container's namespaces, right before exec. */
int security_apply(const struct shim_config *cfg, struct shim_err *err);

/* the allow-list as a search tree plus the argument checks (~1,000 today) */
#define SECCOMP_MAX_INSNS 2048
/* Builds the default filter (pure). Returns the instruction count, 0 when this
 * architecture has no profile. */
size_t seccomp_build(struct sock_filter *out, size_t max);
/* Installs the default filter; needs no_new_privs already set. */
int seccomp_install(struct shim_err *err);

#endif
