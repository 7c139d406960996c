/* Error reporting and cleanup helpers shared by every part of the shim.
 *
 * Convention: a function that can fail returns a negative value and fills a
 * `struct shim_err` with the errno and a message naming the step that failed.
 * Callers add their own context in front with shim_wrap(), so a message reads
 * from the outermost step to the innermost one and ends with strerror():
 *
 *   cgroup memory: write memory.limit_in_bytes: Device or resource busy
 */
#ifndef FLOTILLA_SHIM_ERROR_H
#define FLOTILLA_SHIM_ERROR_H

#include <stdlib.h>
#include <unistd.h>

#define SHIM_ERR_MSG_MAX 1024

struct shim_err {
	int errnum;                 /* errno of the innermost failure, 0 if not a syscall error */
	char msg[SHIM_ERR_MSG_MAX]; /* "step: step: strerror" */
};

/* Fills err with the formatted step name followed by ": strerror(errnum)" when
 * errnum is not 0. Always returns -1 so callers can `return shim_fail(...)`. */
int shim_fail(struct shim_err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with "context: ". Returns -1. */
int shim_wrap(struct shim_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void shim_err_clear(struct shim_err *err)
{
	err->errnum = 0;
	err->msg[0] = '\0';
}

/* ---- cleanup attributes: resources released when the variable goes out of scope ---- */

static inline void shim_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void shim_freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(shim_closep)))
#define _cleanup_free_  __attribute__((cleanup(shim_freep)))

/* Hands a descriptor out of a _cleanup_close_ variable without closing it. */
static inline int shim_steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

#define SHIM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
