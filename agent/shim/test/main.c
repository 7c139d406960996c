/* Runs the shim's C unit tests (one file per area, see check.h) and prints the count.
 * Run by `make test` and `make asan`. */
#include <stdio.h>

#include "check.h"

int failures, checks;

int main(void)
{
	run_args_tests();
	run_attach_tests();
	run_cgroup_tests();
	run_log_tests();
	run_runtime_tests();
	printf("%d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
