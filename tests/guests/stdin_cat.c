/* stdin_cat: copies stdin to stdout with read(2)/write(2) (4 KiB buffer),
 * handling short writes and EINTR, then prints "stdin_cat: N bytes" to stderr.
 * Exit 0 on success, 1 on a read or write error. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("stdin_cat: read");
            return 1;
        }
        if (n == 0)
            break;
        total += (unsigned long long)n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                perror("stdin_cat: write");
                return 1;
            }
            off += w;
        }
    }
    fprintf(stderr, "stdin_cat: %llu bytes\n", total);
    return 0;
}
