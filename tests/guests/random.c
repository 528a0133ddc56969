/* random: getrandom(64 bytes) twice and reads 16 bytes from /dev/urandom.
 * Prints only deterministic checks, never the random bytes:
 *   getrandom #1: 64 bytes
 *   getrandom #2: 64 bytes
 *   different: yes
 *   getrandom not all zero: yes
 *   /dev/urandom: 16 bytes
 *   /dev/urandom not all zero: yes
 * Exit 0 if all checks pass, else 1.
 * (Probability of a false failure: 2^-512 resp. 2^-128.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int failures;

static void check(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "yes" : "no");
    if (!ok)
        failures++;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int main(void)
{
    unsigned char a[64], b[64], u[16];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(u, 0, sizeof u);

    ssize_t na = getrandom(a, sizeof a, 0);
    ssize_t nb = getrandom(b, sizeof b, 0);
    printf("getrandom #1: %zd bytes\n", na);
    printf("getrandom #2: %zd bytes\n", nb);
    if (na != 64 || nb != 64)
        failures++;
    check("different", memcmp(a, b, sizeof a) != 0);
    check("getrandom not all zero", !all_zero(a, sizeof a) && !all_zero(b, sizeof b));

    int fd = open("/dev/urandom", O_RDONLY);
    check("open /dev/urandom", fd >= 0);
    ssize_t nu = fd >= 0 ? read(fd, u, sizeof u) : -1;
    printf("/dev/urandom: %zd bytes\n", nu);
    if (nu != 16)
        failures++;
    check("/dev/urandom not all zero", !all_zero(u, sizeof u));
    if (fd >= 0)
        close(fd);

    printf("random: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
