/* pingprobe: one ICMP echo to 127.0.0.1 over an ICMP datagram socket
 * (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)), the way iputils' ping works
 * without CAP_NET_RAW. The kernel allows that socket only to groups within
 * the network namespace's net.ipv4.ping_group_range.
 *
 * Prints "ping: ok" when the echo reply arrives within 2 s, otherwise
 * "ping: STEP errno=N (...)" or "ping: no reply", and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *step)
{
    printf("ping: %s errno=%d (%s)\n", step, errno, strerror(errno));
    return 1;
}

int main(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0)
        return fail("socket");
    struct sockaddr_in to = {.sin_family = AF_INET};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct icmphdr echo = {.type = ICMP_ECHO};
    echo.un.echo.sequence = htons(1);
    /* The kernel fills in the id and the checksum. */
    if (sendto(fd, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0)
        return fail("sendto");
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (int i = 0; i < 20; i++) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        struct icmphdr reply;
        if (recv(fd, &reply, sizeof reply, 0) >= (ssize_t)sizeof reply &&
            reply.type == ICMP_ECHOREPLY) {
            printf("ping: ok\n");
            return 0;
        }
    }
    printf("ping: no reply\n");
    return 1;
}
