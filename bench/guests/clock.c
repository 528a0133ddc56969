/* clock: a clock-heavy guest for the record/replay benchmark.
 *   clock [N=100000]
 * Reads CLOCK_MONOTONIC N times through clock_gettime (a syscall under p2preplay: there is no vDSO), so every
 * exit logs one input. Prints "clock: N reads" and exits 0 when time never went backwards. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 100000;
    struct timespec last = {0, 0}, now;
    int backwards = 0;
    for (long i = 0; i < n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < last.tv_sec || (now.tv_sec == last.tv_sec && now.tv_nsec < last.tv_nsec)) backwards = 1;
        last = now;
    }
    printf("clock: %ld reads\n", n);
    return backwards;
}
