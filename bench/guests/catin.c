/* catin: a stdin-heavy guest for the record/replay benchmark: reads stdin in 4 KiB reads and prints a checksum,
 * so every read logs its bytes. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    unsigned long long sum = 0, total = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)buf[i];
        total += (unsigned long long)n;
    }
    printf("catin: %llu bytes, checksum %016llx\n", total, sum);
    return n < 0;
}
