/*
 * rawsend — test helper: connects to a Unix stream socket (unix PATH) or a
 * TCP port (tcp HOST PORT), sends stdin as is, then shuts down its sending
 * side and waits up to 2 s for the peer to answer or close. Prints
 * "received N bytes" (N may be 0) and exits 0; exits 1 if it cannot connect.
 * Used to throw garbage at liblog's sockets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int fd;
    if (argc == 3 && strcmp(argv[1], "unix") == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(argv[2]) >= sizeof sa.sun_path)
            return 1;
        strcpy(sa.sun_path, argv[2]);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("rawsend: connect");
            return 1;
        }
    } else if (argc == 4 && strcmp(argv[1], "tcp") == 0) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1)
            return 1;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("rawsend: connect");
            return 1;
        }
    } else {
        fprintf(stderr, "usage: rawsend unix PATH | tcp HOST PORT  < bytes\n");
        return 1;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
            break; /* the peer may close on us: that is an answer too */
    }
    shutdown(fd, SHUT_WR);
    size_t total = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 2000) > 0) {
        n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    printf("received %zu bytes\n", total);
    close(fd);
    return 0;
}
