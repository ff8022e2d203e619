/* suidprobe: installed setuid root (04755) in the test rootfs.
 *
 * Prints the real and effective uid/gid, the effective capability set
 * (CapEff from /proc/self/status), and, when given a path, whether that path
 * can be opened for writing. Tests use it to check that a setuid-root binary
 * inside the container gains container root at most: it must not be able to
 * write a host-root-owned file bind-mounted in, and its CapEff must not exceed
 * the container's default set.
 *
 * Output (one line each, stable for tests to grep):
 *   ruid=1000 euid=0 rgid=1000 egid=1000
 *   CapEff:\t00000000a80425fb
 *   write /path: ok            or   write /path: errno=13 (Permission denied)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	printf("ruid=%u euid=%u rgid=%u egid=%u\n", (unsigned)getuid(),
	       (unsigned)geteuid(), (unsigned)getgid(), (unsigned)getegid());

	FILE *st = fopen("/proc/self/status", "r");
	if (st) {
		char line[256];
		while (fgets(line, sizeof line, st))
			if (strncmp(line, "CapEff:", 7) == 0)
				fputs(line, stdout);
		fclose(st);
	} else {
		printf("CapEff: unknown (errno=%d)\n", errno);
	}

	int rc = 0;
	if (argc > 1) {
		int fd = open(argv[1], O_WRONLY | O_APPEND);
		if (fd >= 0) {
			ssize_t n = write(fd, "suidprobe\n", 10);
			if (n == 10)
				printf("write %s: ok\n", argv[1]);
			else
				printf("write %s: errno=%d (%s)\n", argv[1], errno,
				       strerror(errno));
			close(fd);
		} else {
			printf("write %s: errno=%d (%s)\n", argv[1], errno,
			       strerror(errno));
			rc = 1;
		}
	}
	fflush(stdout);
	return rc;
}
