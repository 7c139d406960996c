/* The container's filesystem view, built inside its new mount namespace:
 * overlay (or bind) rootfs, /proc, /sys, a minimal /dev, the user's bind and
 * tmpfs mounts, pivot_root, masked /proc paths, optional read-only root. */
#ifndef FLOTILLA_SHIM_ROOTFS_H
#define FLOTILLA_SHIM_ROOTFS_H

#include <stddef.h>

#include "config.h"
#include "error.h"

/* Formats "lowerdir=L1:L2,upperdir=U,workdir=W" (pure). Returns the length, or
 * -1 if it does not fit in size (mount(2) takes at most one page). */
int overlay_options(const struct shim_config *cfg, char *out, size_t size);

/* Runs in the container init, in its own mount namespace, before the
 * privilege drop. target is the directory the rootfs is mounted on (the
 * overlay mount point, or cfg->rootfs itself). On return the process is
 * chrooted by pivot_root into the new root, cwd set. */
int rootfs_setup(const struct shim_config *cfg, const char *target, struct shim_err *err);

#endif
