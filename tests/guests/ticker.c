// A long-running guest for replicated VMs: prints N numbered lines, each with a clock reading and random bytes
// (both logged inputs), sleeping between them, then a checksum line that depends on everything it printed.
// Usage: ticker [COUNT] [MILLISECONDS]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 10;
    int ms = argc > 2 ? atoi(argv[2]) : 100;
    unsigned long long sum = 0;
    for (int i = 1; i <= count; i++) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        unsigned int value = 0;
        if (getrandom(&value, sizeof value, 0) != sizeof value) return 2;
        sum = sum * 31 + (unsigned long long)now.tv_nsec + value + (unsigned long long)i;
        printf("tick %d at %lld.%09ld random %08x\n", i, (long long)now.tv_sec, now.tv_nsec, value);
        fflush(stdout);
        struct timespec pause = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&pause, NULL);
    }
    printf("checksum %016llx after %d ticks\n", sum, count);
    return 0;
}
