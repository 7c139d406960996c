/* The shim's C unit tests: the check macros and one runner per area (see main.c).
 * Each CHECK counts once; a failed one prints its place and the test run fails. */
#ifndef SHIM_TEST_CHECK_H
#define SHIM_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

extern int failures, checks;

#define CHECK(cond)                                                                                                    \
	do {                                                                                                           \
		checks++;                                                                                              \
		if (!(cond)) {                                                                                         \
			failures++;                                                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                       \
		}                                                                                                      \
	} while (0)

#define CHECK_STR(a, b)                                                                                                \
	do {                                                                                                           \
		checks++;                                                                                              \
		const char *a_ = (a), *b_ = (b);                                                                       \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                                 \
			failures++;                                                                                    \
			fprintf(stderr, "%s:%d: got \"%s\"\n    want \"%s\"\n", __FILE__, __LINE__,                    \
			        a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                               \
		}                                                                                                      \
	} while (0)

#define CHECK_INT(a, b)                                                                                                \
	do {                                                                                                           \
		checks++;                                                                                              \
		long long a_ = (long long)(a), b_ = (long long)(b);                                                    \
		if (a_ != b_) {                                                                                        \
			failures++;                                                                                    \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #a, a_, b_);              \
		}                                                                                                      \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                                                    \
	do {                                                                                                           \
		checks++;                                                                                              \
		if (strstr((hay), (needle)) == NULL) {                                                                 \
			failures++;                                                                                    \
			fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, (hay),          \
			        (needle));                                                                             \
		}                                                                                                      \
	} while (0)

/* One per test file, in the order main.c runs them. */
void run_args_tests(void);    /* args_test.c: sizes, signals, ids, mounts, the command line */
void run_attach_tests(void);  /* attach_test.c: output frames, control lines, exec/resize options */
void run_cgroup_tests(void);  /* cgroup_test.c: the v1/v2 write plans and the OOM decision */
void run_log_tests(void);     /* log_test.c: JSON escaping, timestamps, log lines, the state file */
void run_runtime_tests(void); /* runtime_test.c: overlay options, env, caps, seccomp, errors */

#endif
