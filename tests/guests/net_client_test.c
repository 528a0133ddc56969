/* net_client_test: the socket API against the program's own listener on 127.0.0.1 (no outside network), for
 * differential tests: listen on an ephemeral port, connect to it, accept, exchange bytes both ways, poll and epoll
 * readiness, half close, socket options, and errors (EBADF, ENOTSOCK, EINVAL, ENOTCONN, EAGAIN, ECONNREFUSED,
 * EFAULT, ENOPROTOOPT, EAFNOSUPPORT) printed by name. Prints only deterministic facts (never ports or addresses
 * of its own memory). Ends with "ok" and exit 0, or "FAILED" and exit 1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;

static const char *name(int e)
{
    switch (e) {
    case 0: return "0";
    case EBADF: return "EBADF"; case ENOTSOCK: return "ENOTSOCK"; case EINVAL: return "EINVAL";
    case ENOTCONN: return "ENOTCONN"; case EAGAIN: return "EAGAIN"; case ECONNREFUSED: return "ECONNREFUSED";
    case EFAULT: return "EFAULT"; case ENOPROTOOPT: return "ENOPROTOOPT"; case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EISCONN: return "EISCONN"; case EPIPE: return "EPIPE"; case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "other";
    }
}

static void check(const char *what, long got, long want)
{
    printf("%-44s %ld%s\n", what, got, got == want ? "" : "  <-- unexpected");
    if (got != want) failures++;
}

static void err(const char *what, long r, int want)
{
    int e = r < 0 ? errno : 0;
    printf("%-44s %s%s\n", what, name(e), e == want ? "" : "  <-- unexpected");
    if (e != want) failures++;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    check("setsockopt SO_REUSEADDR", setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    check("bind 127.0.0.1:0", bind(l, (struct sockaddr *)&a, sizeof a), 0);
    check("listen", listen(l, 4), 0);
    socklen_t alen = sizeof a;
    check("getsockname", getsockname(l, (struct sockaddr *)&a, &alen), 0);
    check("  port assigned", ntohs(a.sin_port) != 0, 1);
    int v = -1; socklen_t vlen = sizeof v;
    check("SO_ACCEPTCONN on the listener", (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen), v), 1);

    int c = socket(AF_INET, SOCK_STREAM, 0);
    check("connect to the listener", connect(c, (struct sockaddr *)&a, sizeof a), 0);
    err("connect again", connect(c, (struct sockaddr *)&a, sizeof a), EISCONN);
    check("send before accept", send(c, "ping", 4, MSG_NOSIGNAL), 4);
    struct sockaddr_in peer; socklen_t plen = sizeof peer;
    int s = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    check("accept4", s > c, 1);
    check("  peer is 127.0.0.1", peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK), 1);
    check("  peer length", plen, sizeof peer);
    int avail = -1;
    check("FIONREAD", (ioctl(s, FIONREAD, &avail), avail), 4);
    char buf[64] = {0};
    check("recv", recv(s, buf, sizeof buf, 0), 4);
    check("  bytes are ping", memcmp(buf, "ping", 4) == 0, 1);

    struct pollfd p = { .fd = s, .events = POLLIN | POLLOUT };
    check("poll: writable, nothing to read", poll(&p, 1, 0), 1);
    check("  revents", p.revents, POLLOUT);
    check("write pong", write(s, "pong", 4), 4);
    struct pollfd pc = { .fd = c, .events = POLLIN };
    check("poll client: readable", poll(&pc, 1, 1000), 1);
    check("  revents", pc.revents, POLLIN);
    check("read", read(c, buf, sizeof buf), 4);
    check("  bytes are pong", memcmp(buf, "pong", 4) == 0, 1);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = 7 }, out[2];
    check("epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev), 0);
    check("epoll_wait: nothing yet", epoll_wait(ep, out, 2, 0), 0);
    check("shutdown client SHUT_WR", shutdown(c, SHUT_WR), 0);
    check("epoll_wait: the client's FIN", epoll_wait(ep, out, 2, 1000), 1);
    check("  events", out[0].events, EPOLLIN | EPOLLRDHUP);
    check("  data", out[0].data.u32, 7);
    check("read at end of stream", read(s, buf, sizeof buf), 0);
    err("send after SHUT_WR", send(c, "x", 1, MSG_NOSIGNAL), EPIPE);

    v = 1; vlen = sizeof v;
    check("TCP_NODELAY set", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v), 0);
    v = 0;
    check("TCP_NODELAY get", (getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &vlen), v != 0), 1);
    v = 4096;
    check("SO_RCVBUF set 4096", setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
    check("SO_RCVBUF get (doubled)", (getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &vlen), v), 8192);
    check("SO_TYPE", (getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vlen), v), SOCK_STREAM);
    check("SO_ERROR", (getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &vlen), v), 0);

    err("listen on fd -1", listen(-1, 1), EBADF);
    err("listen on stdout", listen(1, 1), ENOTSOCK);
    err("accept on a connected socket", accept(s, NULL, NULL), EINVAL);
    err("getpeername on the listener", getpeername(l, (struct sockaddr *)&peer, &plen), ENOTCONN);
    err("bind with a short address", bind(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&a, 4), EINVAL);
    err("bind with a bad pointer", bind(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)1, sizeof a), EFAULT);
    err("setsockopt unknown option", setsockopt(s, SOL_SOCKET, 9999, &v, sizeof v), ENOPROTOOPT);
    err("socket AF_APPLETALK", socket(5, SOCK_STREAM, 0), EAFNOSUPPORT);
    err("recv MSG_OOB (no urgent data)", recv(s, buf, 1, MSG_OOB), EINVAL);

    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in b = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(nb, (struct sockaddr *)&b, sizeof b);
    listen(nb, 1);
    err("non-blocking accept, nobody waiting", accept(nb, NULL, NULL), EAGAIN);
    socklen_t blen = sizeof b;
    getsockname(nb, (struct sockaddr *)&b, &blen);
    close(nb);
    err("connect to a closed port", connect(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&b, sizeof b), ECONNREFUSED);

    close(c);
    close(s);
    close(l);
    close(ep);
    puts(failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
