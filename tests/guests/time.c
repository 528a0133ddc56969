/* time: clock_gettime(CLOCK_REALTIME, CLOCK_MONOTONIC), gettimeofday, time(),
 * nanosleep(20 ms). Prints only deterministic yes/no checks, never a time value:
 *   realtime after 2020: yes
 *   gettimeofday agrees with realtime (within 5 s): yes
 *   time() agrees with realtime (within 5 s): yes
 *   monotonic advanced: yes
 *   slept >= 20ms: yes
 *   realtime advanced across sleep: yes
 *   nanosleep rejects tv_nsec=1e9 with EINVAL: yes
 * Exit 0 if every check is "yes", else 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static int failures;

static void check(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "yes" : "no");
    if (!ok)
        failures++;
}

static int64_t ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int main(void)
{
    struct timespec rt0, rt1, m0, m1, m2;
    struct timeval tv;

    int ok = clock_gettime(CLOCK_REALTIME, &rt0) == 0;
    ok &= clock_gettime(CLOCK_MONOTONIC, &m0) == 0;
    ok &= gettimeofday(&tv, NULL) == 0;
    time_t t = time(NULL);
    check("clock_gettime/gettimeofday succeed", ok);

    check("realtime after 2020", rt0.tv_sec > 1577836800LL); /* 2020-01-01 UTC */
    check("realtime nsec in range", rt0.tv_nsec >= 0 && rt0.tv_nsec < 1000000000L);
    int64_t d = (int64_t)tv.tv_sec - (int64_t)rt0.tv_sec;
    check("gettimeofday agrees with realtime (within 5 s)", d >= 0 && d <= 5);
    check("gettimeofday usec in range", tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    d = (int64_t)t - (int64_t)rt0.tv_sec;
    check("time() agrees with realtime (within 5 s)", d >= 0 && d <= 5);

    /* busy-read the monotonic clock until it moves (bounded) */
    int moved = 0;
    for (int i = 0; i < 1000000 && !moved; i++) {
        clock_gettime(CLOCK_MONOTONIC, &m1);
        moved = ns(&m1) > ns(&m0);
    }
    check("monotonic advanced", moved && ns(&m1) >= ns(&m0));

    struct timespec req = {0, 20 * 1000 * 1000};
    int r = nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    clock_gettime(CLOCK_REALTIME, &rt1);
    check("nanosleep returns 0", r == 0);
    check("slept >= 20ms", ns(&m2) - ns(&m1) >= 20 * 1000 * 1000LL);
    check("realtime advanced across sleep", ns(&rt1) > ns(&rt0));

    struct timespec bad = {0, 1000000000L};
    errno = 0;
    r = nanosleep(&bad, NULL);
    check("nanosleep rejects tv_nsec=1e9 with EINVAL", r == -1 && errno == EINVAL);

    printf("time: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
