/* shmfill: fills a tmpfs until the kernel says no.
 *
 *   shmfill FILE [SECONDS]
 *
 * Writes 1 MiB chunks to FILE until a write fails, prints
 *   wrote BYTES errno=N (...)
 * then "full" and holds the file for SECONDS (default 0) so a test can
 * measure free space elsewhere while it is full. A size-limited tmpfs stops
 * the writes with ENOSPC at its size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: shmfill FILE [SECONDS]\n");
		return 2;
	}
	static char chunk[1 << 20];
	memset(chunk, 'x', sizeof chunk);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		printf("open %s: errno=%d (%s)\n", argv[1], errno,
		       strerror(errno));
		return 1;
	}
	long long total = 0;
	int err = 0;
	/* Bounded: at most 1 GiB even if nothing stops us. */
	while (total < (1LL << 30)) {
		ssize_t n = write(fd, chunk, sizeof chunk);
		if (n <= 0) {
			err = n < 0 ? errno : 0;
			break;
		}
		total += n;
	}
	printf("wrote %lld errno=%d (%s)\nfull\n", total, err, strerror(err));
	fflush(stdout);
	sleep(argc > 2 ? atoi(argv[2]) : 0);
	return 0;
}
