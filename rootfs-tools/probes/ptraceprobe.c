/* ptraceprobe: can this process PTRACE_ATTACH to a target?
 *
 *   ptraceprobe PID     attach to PID (e.g. 1, hutch's non-dumpable reaper
 *                       under --init)
 *   ptraceprobe child   fork a child that sleeps and attach to it: the
 *                       control, which a same-uid parent may always do
 *
 * Output: "attach PID: ok" (then detaches) or "attach PID: errno=N (...)".
 * Exit 0 either way; 2 on bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ptraceprobe PID|child\n");
		return 2;
	}
	pid_t pid, child = 0;
	if (strcmp(argv[1], "child") == 0) {
		child = fork();
		if (child == 0) {
			sleep(30);
			_exit(0);
		}
		pid = child;
	} else {
		pid = atoi(argv[1]);
	}
	if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) {
		int st;
		waitpid(pid, &st, __WALL); /* the attach stop */
		printf("attach %s: ok\n", argv[1]);
		ptrace(PTRACE_DETACH, pid, 0, 0);
	} else {
		printf("attach %s: errno=%d (%s)\n", argv[1], errno,
		       strerror(errno));
	}
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	return 0;
}
