/* echo_server PORT [poll|epoll|select] [MAXREQ]: a single-threaded line-based key-value server on TCP PORT (IPv4, any
 * address), for the virtual network tests. Requests, one per line:
 *   SET key value -> "OK"      GET key -> "VALUE value" or "NONE"
 *   ECHO text     -> "text"    QUIT    -> "BYE", then the server ends
 *   COUNT         -> "COUNT n": the requests handled so far, this one included (exactly-once checks)
 * Several clients at once; non-blocking sockets multiplexed with poll(2) or select(2) (recv/send) or epoll (read/write).
 * Ends after MAXREQ requests (default 1000) or a QUIT; prints what happened to stdout (never addresses
 * of its own memory, never times). Exit 0, or 1 on a socket error. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXCLIENTS 64
#define MAXKEYS 64

struct client { int fd; int id; size_t len; char buf[1024]; };
static struct client clients[MAXCLIENTS];
static char keys[MAXKEYS][64], values[MAXKEYS][256];
static int nkeys, requests, maxreq = 1000, quit, use_epoll, use_select, epfd, accepted;

static void die(const char *what) { printf("error: %s: %s\n", what, strerror(errno)); exit(1); }

static void reply(struct client *c, const char *text)
{
    char out[1100];
    int n = snprintf(out, sizeof out, "%s\n", text);
    ssize_t w = use_epoll ? write(c->fd, out, (size_t)n) : send(c->fd, out, (size_t)n, MSG_NOSIGNAL);
    if (w != n) printf("client %d: short reply (%zd)\n", c->id, w);
}

static void handle(struct client *c, char *line)
{
    requests++;
    printf("client %d: %s\n", c->id, line);
    if (strncmp(line, "SET ", 4) == 0) {
        char *k = line + 4, *v = strchr(k, ' ');
        if (!v) { reply(c, "ERR"); return; }
        *v++ = 0;
        int i = 0;
        while (i < nkeys && strcmp(keys[i], k) != 0) i++;
        if (i == nkeys) { if (nkeys == MAXKEYS) { reply(c, "FULL"); return; } nkeys++; }
        snprintf(keys[i], sizeof keys[i], "%s", k);
        snprintf(values[i], sizeof values[i], "%s", v);
        reply(c, "OK");
    } else if (strncmp(line, "GET ", 4) == 0) {
        for (int i = 0; i < nkeys; i++)
            if (strcmp(keys[i], line + 4) == 0) { char out[300]; snprintf(out, sizeof out, "VALUE %s", values[i]); reply(c, out); return; }
        reply(c, "NONE");
    } else if (strncmp(line, "ECHO ", 5) == 0) {
        reply(c, line + 5);
    } else if (strcmp(line, "COUNT") == 0) {
        char out[32];
        snprintf(out, sizeof out, "COUNT %d", requests);
        reply(c, out);
    } else if (strcmp(line, "QUIT") == 0) {
        reply(c, "BYE");
        quit = 1;
    } else {
        reply(c, "ERR");
    }
}

static void drop(struct client *c)
{
    printf("client %d: closed\n", c->id);
    if (use_epoll) epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Reads what is there; handles complete lines; 0 when the client is gone. */
static int serve(struct client *c)
{
    for (;;) {
        ssize_t n = use_epoll ? read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len)
                              : recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (n < 0 && errno == EAGAIN) return 1;
        if (n <= 0) return 0;
        c->len += (size_t)n;
        char *start = c->buf, *nl;
        while (!quit && requests < maxreq && (nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
            *nl = 0;
            if (nl > start && nl[-1] == '\r') nl[-1] = 0;
            handle(c, start);
            start = nl + 1;
        }
        c->len -= (size_t)(start - c->buf);
        memmove(c->buf, start, c->len);
        if (c->len == sizeof c->buf - 1) return 0; /* line too long */
    }
}

static void accept_all(int lfd)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) { if (errno == EAGAIN) return; die("accept4"); }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
        int slot = 0;
        while (slot < MAXCLIENTS && clients[slot].fd >= 0) slot++;
        if (slot == MAXCLIENTS) { close(fd); continue; }
        struct client *c = &clients[slot];
        c->fd = fd; c->id = ++accepted; c->len = 0;
        printf("client %d: connected (%s, family %d)\n", c->id, plen == sizeof peer ? "sockaddr_in" : "?", peer.sin_family);
        if (use_epoll) {
            struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)slot };
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: echo_server PORT [poll|epoll] [MAXREQ]\n"); return 2; }
    int port = atoi(argv[1]);
    use_epoll = argc > 2 && strcmp(argv[2], "epoll") == 0;
    use_select = argc > 2 && strcmp(argv[2], "select") == 0;
    if (argc > 3) maxreq = atoi(argv[3]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < MAXCLIENTS; i++) clients[i].fd = -1;

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("SO_REUSEADDR");
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 16) < 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");
    printf("listening on port %d (%s)\n", ntohs(addr.sin_port), use_epoll ? "epoll" : use_select ? "select" : "poll");

    if (use_epoll) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0) die("epoll_create1");
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0xFFFF };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
    }
    while (!quit && requests < maxreq) {
        int ready[MAXCLIENTS + 1], nready = 0;
        if (use_epoll) {
            struct epoll_event evs[16];
            int n = epoll_wait(epfd, evs, 16, -1);
            if (n < 0) die("epoll_wait");
            if (n == 0) { printf("nothing more will come\n"); break; }
            for (int i = 0; i < n; i++) ready[nready++] = evs[i].data.u32 == 0xFFFF ? -1 : (int)evs[i].data.u32;
        } else if (use_select) {
            fd_set rfds;
            FD_ZERO(&rfds);
            FD_SET(lfd, &rfds);
            int maxfd = lfd;
            for (int i = 0; i < MAXCLIENTS; i++)
                if (clients[i].fd >= 0) { FD_SET(clients[i].fd, &rfds); if (clients[i].fd > maxfd) maxfd = clients[i].fd; }
            int r = select(maxfd + 1, &rfds, NULL, NULL, NULL);
            if (r < 0) die("select");
            if (r == 0) { printf("nothing more will come\n"); break; }
            if (FD_ISSET(lfd, &rfds)) ready[nready++] = -1;
            for (int i = 0; i < MAXCLIENTS; i++) if (clients[i].fd >= 0 && FD_ISSET(clients[i].fd, &rfds)) ready[nready++] = i;
        } else {
            struct pollfd pfds[MAXCLIENTS + 1];
            int slots[MAXCLIENTS + 1], n = 0;
            pfds[n].fd = lfd; pfds[n].events = POLLIN; slots[n++] = -1;
            for (int i = 0; i < MAXCLIENTS; i++)
                if (clients[i].fd >= 0) { pfds[n].fd = clients[i].fd; pfds[n].events = POLLIN | POLLRDHUP; slots[n++] = i; }
            int r = poll(pfds, (nfds_t)n, -1);
            if (r < 0) die("poll");
            if (r == 0) { printf("nothing more will come\n"); break; }
            for (int i = 0; i < n; i++) if (pfds[i].revents) ready[nready++] = slots[i];
        }
        for (int i = 0; i < nready && !quit && requests < maxreq; i++) {
            if (ready[i] < 0) { accept_all(lfd); continue; }
            struct client *c = &clients[ready[i]];
            if (c->fd >= 0 && !serve(c)) drop(c);
        }
    }
    int open_clients = 0;
    for (int i = 0; i < MAXCLIENTS; i++) if (clients[i].fd >= 0) { open_clients++; close(clients[i].fd); }
    close(lfd);
    printf("served %d requests from %d clients (%d still connected at the end)\n", requests, accepted, open_clients);
    return 0;
}
