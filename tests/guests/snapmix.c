/* snapmix: a workload for VM snapshot tests and benchmarks. Touches a heap of argv[1] MiB (default 4; every page
 * written with a byte pattern, or with an xorshift stream when argv[3] is "random"), then runs argv[2] rounds (default 200) that each read random bytes and the clock (logged
 * inputs), write a line into a pipe that stays open, now and then move pipe bytes into a file in a new directory,
 * and change heap bytes. At the end it prints checksums of the heap, the file and what is left in the pipe, cleans
 * up and exits 0. Output depends only on the inputs, never on addresses.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 4;
    int rounds = argc > 2 ? atoi(argv[2]) : 200;
    size_t size = mib << 20;
    unsigned char *heap = malloc(size);
    if (!heap) {
        printf("FAIL: malloc\n");
        return 1;
    }
    if (argc > 3 && strcmp(argv[3], "random") == 0) {
        uint64_t x = 0x9E3779B97F4A7C15ULL;
        for (size_t i = 0; i + 8 <= size; i += 8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            uint64_t v = x * 2685821657736338717ULL;
            memcpy(heap + i, &v, 8);
        }
    } else {
        for (size_t page = 0; page < size / 4096; page++) memset(heap + page * 4096, (int)(page * 7 + 1), 4096);
    }
    printf("heap %zu MiB touched\n", mib);
    fflush(stdout);

    int p[2];
    if (pipe(p) != 0 || mkdir("snapdir", 0755) != 0) {
        printf("FAIL: pipe/mkdir\n");
        return 1;
    }
    int fd = open("snapdir/data", O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) {
        printf("FAIL: open\n");
        return 1;
    }
    uint64_t clocks = 0;
    for (int round = 0; round < rounds; round++) {
        unsigned char r[16];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) printf("FAIL: getrandom\n");
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        clocks = clocks * 31 + (uint64_t)ts.tv_nsec;
        char line[64];
        int n = snprintf(line, sizeof line, "round %d %02x%02x\n", round, r[0], r[1]);
        if (write(p[1], line, (size_t)n) != n) printf("FAIL: pipe write\n");
        if (round % 3 == 0) {
            char buf[48];
            ssize_t m = read(p[0], buf, sizeof buf);
            if (m > 0 && write(fd, buf, (size_t)m) != m) printf("FAIL: file write\n");
        }
        heap[((size_t)round * 4096 * 13 + r[2]) % size] += r[3];
        if (round % 50 == 0) {
            printf("round %d at %lld\n", round, (long long)lseek(fd, 0, SEEK_CUR));
            fflush(stdout);
        }
    }
    unsigned char file[65536];
    lseek(fd, 0, SEEK_SET);
    ssize_t flen = read(fd, file, sizeof file);
    close(p[1]);
    unsigned char rest[65536];
    ssize_t rlen = read(p[0], rest, sizeof rest);
    printf("heap %016llx file %zd %016llx pipe %zd %016llx clocks %016llx\n", (unsigned long long)fnv(heap, size, 0xCBF29CE484222325ULL),
           flen, (unsigned long long)fnv(file, flen > 0 ? (size_t)flen : 0, 0xCBF29CE484222325ULL), rlen,
           (unsigned long long)fnv(rest, rlen > 0 ? (size_t)rlen : 0, 0xCBF29CE484222325ULL), (unsigned long long)clocks);
    close(fd);
    close(p[0]);
    unlink("snapdir/data");
    rmdir("snapdir");
    free(heap);
    return 0;
}
