/* handleprobe: the "shocker" primitive (open_by_handle_at).
 *
 *   handleprobe PATH
 *
 * Gets a file handle for PATH with name_to_handle_at, then tries to open
 * it again with open_by_handle_at (PATH itself, opened, names the mount).
 * The shocker escape (2014) brute-forced handles of host inodes this way; the kernel allows
 * open_by_handle_at only with CAP_DAC_READ_SEARCH in the initial user
 * namespace, and Docker's seccomp profile also denies it without that cap.
 *
 * Output:
 *   name_to_handle_at PATH: ok      or  ...: errno=N (...)
 *   open_by_handle_at: ok           or  open_by_handle_at: errno=N (...)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: handleprobe PATH\n");
		return 2;
	}
	struct file_handle *fh = malloc(sizeof *fh + MAX_HANDLE_SZ);
	int mount_id;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, argv[1], fh, &mount_id, 0) != 0) {
		printf("name_to_handle_at %s: errno=%d (%s)\n", argv[1], errno,
		       strerror(errno));
		/* Still try open_by_handle_at with an inode-2-style handle,
		 * as shocker did: the refusal must not depend on the first
		 * call having worked. */
		fh->handle_bytes = 8;
		fh->handle_type = 1; /* FILEID_INO32_GEN */
		memset(fh->f_handle, 0, 8);
		fh->f_handle[0] = 2;
	} else {
		printf("name_to_handle_at %s: ok\n", argv[1]);
	}
	int mfd = open(argv[1], O_RDONLY);
	int fd = open_by_handle_at(mfd, fh, O_RDONLY);
	if (fd >= 0)
		printf("open_by_handle_at: ok\n");
	else
		printf("open_by_handle_at: errno=%d (%s)\n", errno,
		       strerror(errno));
	return 0;
}
