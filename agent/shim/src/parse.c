/* Parsers of single option values (sizes, signals, users, mount specs, ids,
 * paths). Pure, unit tested. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

/* Upper bound for any path argument: joined with a few fixed components into
 * PATH_MAX buffers, it can never be truncated. */
#define SHIM_ARG_PATH_MAX 1024

int parse_u64(const char *s, long long min, long long max, long long *out)
{
	if (s == NULL || *s == '\0' || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > (unsigned long long)max || (long long)v < min)
		return -1;
	*out = (long long)v;
	return 0;
}

int parse_size(const char *s, long long *out)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	unsigned shift = 0;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 'b':
		shift = 0;
		end++;
		break;
	case 'k':
		shift = 10;
		end++;
		break;
	case 'm':
		shift = 20;
		end++;
		break;
	case 'g':
		shift = 30;
		end++;
		break;
	case 't':
		shift = 40;
		end++;
		break;
	default:
		return -1;
	}
	/* allow "64m", "64mb", "64MiB" */
	if (shift != 0 && (*end == 'i' || *end == 'I'))
		end++;
	if (shift != 0 && (*end == 'b' || *end == 'B'))
		end++;
	if (*end != '\0' || v == 0)
		return -1;
	if (v > ((unsigned long long)INT64_MAX >> shift))
		return -1;
	*out = (long long)(v << shift);
	return 0;
}

static const struct {
	const char *name;
	int num;
} signal_names[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
    {"TERM", SIGTERM}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"ABRT", SIGABRT}, {"ALRM", SIGALRM},
};

int parse_signal(const char *s, int *out)
{
	long long n;
	if (parse_u64(s, 1, 64, &n) == 0) {
		*out = (int)n;
		return 0;
	}
	if (s == NULL)
		return -1;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < SHIM_ARRAY_LEN(signal_names); i++) {
		if (strcasecmp(s, signal_names[i].name) == 0) {
			*out = signal_names[i].num;
			return 0;
		}
	}
	return -1;
}

int parse_user(const char *s, uid_t *uid, gid_t *gid)
{
	char buf[64];
	if (s == NULL || strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	char *colon = strchr(buf, ':');
	if (colon != NULL)
		*colon = '\0';
	long long u, g;
	/* (uid_t)-1 means "unchanged" to setresuid: keep it out of range */
	if (parse_u64(buf, 0, UINT32_MAX - 1, &u) < 0)
		return -1;
	g = u;
	if (colon != NULL && parse_u64(colon + 1, 0, UINT32_MAX - 1, &g) < 0)
		return -1;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}

bool valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 128 || !isalnum((unsigned char)id[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

bool valid_rel_path(const char *p)
{
	if (p == NULL || *p == '\0' || *p == '/' || strlen(p) > SHIM_ARG_PATH_MAX)
		return false;
	/* reject any ".." component: the path must stay below its root */
	for (const char *c = p; *c;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return false;
		if (!slash)
			break;
		c = slash + 1;
	}
	return true;
}

bool path_is_abs(const char *p)
{
	return p != NULL && p[0] == '/' && valid_rel_path(p[1] ? p + 1 : "x");
}

/* Overlay option strings separate layers with ':' and options with ',':
 * such characters cannot be escaped through mount(2), so refuse them early. */
bool overlay_safe_path(const char *p)
{
	return strpbrk(p, ",:\\") == NULL;
}

int parse_mount(char *spec, struct shim_mount *m, struct shim_err *err)
{
	char *parts[5] = {0};
	size_t n = 0;
	for (char *save = NULL, *tok = strtok_r(spec, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
		if (n == SHIM_ARRAY_LEN(parts))
			return shim_fail(err, 0, "--mount: too many ':' fields");
		parts[n++] = tok;
	}
	if (n == 0)
		return shim_fail(err, 0, "--mount: empty");
	memset(m, 0, sizeof(*m));
	m->size = -1;
	if (strcmp(parts[0], "bind") == 0) {
		if (n < 3 || n > 4)
			return shim_fail(err, 0, "--mount: expected bind:SRC:DST[:ro]");
		m->kind = SHIM_MOUNT_BIND;
		m->src = parts[1];
		m->dst = parts[2];
		if (n == 4) {
			if (strcmp(parts[3], "ro") == 0)
				m->readonly = true;
			else if (strcmp(parts[3], "rw") != 0)
				return shim_fail(err, 0, "--mount: bind option must be ro or rw, not \"%s\"", parts[3]);
		}
		if (!path_is_abs(m->src))
			return shim_fail(err, 0, "--mount: bind source \"%s\" must be an absolute path without ..",
			                 m->src);
	} else if (strcmp(parts[0], "tmpfs") == 0) {
		if (n < 2 || n > 3)
			return shim_fail(err, 0, "--mount: expected tmpfs:DST[:SIZE]");
		m->kind = SHIM_MOUNT_TMPFS;
		m->dst = parts[1];
		if (n == 3 && parse_size(parts[2], &m->size) < 0)
			return shim_fail(err, 0, "--mount: invalid tmpfs size \"%s\"", parts[2]);
	} else {
		return shim_fail(err, 0, "--mount: unknown kind \"%s\" (bind or tmpfs)", parts[0]);
	}
	if (!path_is_abs(m->dst) || strcmp(m->dst, "/") == 0)
		return shim_fail(err, 0, "--mount: destination \"%s\" must be an absolute path without .. and not /",
		                 m->dst);
	return 0;
}
