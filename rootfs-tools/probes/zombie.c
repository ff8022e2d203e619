/* zombie: makes an orphan that exits while reparented to the container's
 * pid 1, then counts zombies in the pid namespace.
 *
 * The child forks a grandchild and exits at once; the grandchild sleeps
 * 200 ms (so it is reparented to pid 1) and exits. A pid 1 that reaps
 * (hutch --init) leaves no zombie; a command that is itself pid 1 and never
 * waits leaves one. After 1 s prints "zombies=N" (N = processes in state Z).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int count_zombies(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof buf, f)) {
			char *p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'Z')
				n++;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

int main(void)
{
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		if (fork() == 0) {
			struct timespec t = { 0, 200 * 1000 * 1000 };
			nanosleep(&t, NULL);
			_exit(0);
		}
		_exit(0);
	}
	waitpid(child, NULL, 0);
	sleep(1);
	printf("pid=%d zombies=%d\n", (int)getpid(), count_zombies());
	return 0;
}
