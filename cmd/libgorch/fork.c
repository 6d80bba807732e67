// fork.c: notice fork(2) so every export can refuse to run in a forked
// child, where the Go runtime has only the forking thread and a call that
// needs a goroutine hangs (golang/go#15538). C definitions may not sit in
// the preamble of a file with //export, hence this file.
#include <pthread.h>

int gorch_forked = 0;

static void gorch_after_fork_child(void) { gorch_forked = 1; }

__attribute__((constructor)) static void gorch_register_atfork(void) {
	pthread_atfork(0, 0, gorch_after_fork_child);
}
