/* nsprobe: system calls Docker's default seccomp profile refuses.
 *
 * Tries, in order, and prints "NAME: ok" or "NAME: errno=N (...)":
 *   keyctl   KEYCTL_GET_KEYRING_ID of the session keyring (kernel keyrings
 *            are not namespaced)
 *   add_key  a "user" key in the session keyring
 *   unshare  unshare(CLONE_NEWUSER) (nested user namespace: the kernel
 *            allows it; the profile refuses it)
 *   clone3   a plain clone3 (no flags: a fork). seccomp cannot inspect
 *            clone3's flags, so the profile answers ENOSYS for every
 *            clone3 and libcs fall back to clone. On success the child
 *            exits at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static void report(const char *name, long rc)
{
	if (rc >= 0)
		printf("%s: ok\n", name);
	else
		printf("%s: errno=%d (%s)\n", name, errno, strerror(errno));
	fflush(stdout);
}

int main(void)
{
	report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
				 KEY_SPEC_SESSION_KEYRING, 0));
	report("add_key", syscall(SYS_add_key, "user", "nsprobe", "x", 1,
				  KEY_SPEC_SESSION_KEYRING));
	report("unshare", unshare(CLONE_NEWUSER));

	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	report("clone3", pid);
	return 0;
}
