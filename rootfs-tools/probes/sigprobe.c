/* sigprobe: checks that signals sent to `hutch run` reach the command.
 *
 * Prints "ready" once its handlers are installed, then sleeps up to 30 s
 * (or argv[1] seconds).
 *   SIGTERM -> prints "got TERM", exits 143 (128+15)
 *   SIGHUP  -> prints "got HUP",  exits 129 (128+1)
 *   SIGINT  -> prints "got INT",  exits 130 (128+2)
 *   SIGQUIT -> prints "got QUIT", exits 131 (128+3)
 *   SIGUSR1 -> prints "got USR1" and keeps running
 *   SIGUSR2 -> prints "got USR2" and keeps running
 *   SIGWINCH -> prints "got WINCH" and keeps running
 * Exits 0 after the timeout with "timeout". Works as pid 1, where the kernel
 * would drop signals that have no handler.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void say(const char *s)
{
	ssize_t r = write(1, s, strlen(s));
	(void)r;
}

static void on_signal(int sig)
{
	switch (sig) {
	case SIGTERM:
		say("got TERM\n");
		_exit(128 + SIGTERM);
	case SIGHUP:
		say("got HUP\n");
		_exit(128 + SIGHUP);
	case SIGINT:
		say("got INT\n");
		_exit(128 + SIGINT);
	case SIGQUIT:
		say("got QUIT\n");
		_exit(128 + SIGQUIT);
	case SIGUSR1:
		say("got USR1\n");
		break;
	case SIGUSR2:
		say("got USR2\n");
		break;
	case SIGWINCH:
		say("got WINCH\n");
		break;
	}
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 30;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	int sigs[] = { SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
	for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
	say("ready\n");

	struct timespec end, now;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += seconds;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= end.tv_sec)
			break;
		struct timespec left = { end.tv_sec - now.tv_sec, 0 };
		nanosleep(&left, NULL); /* EINTR after USR1/2, WINCH: loop again */
	}
	say("timeout\n");
	return 0;
}
