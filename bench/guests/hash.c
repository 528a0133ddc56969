/* hash: compute-bound benchmark guest.
 *   hash [MiB=256]
 * Fills MiB mebibytes with a deterministic pattern (xorshift64 stream) and
 * hashes them with a 4-lane multiply-rotate hash (xxhash-like, written here),
 * then prints "hash: MiB MiB -> 0x<64-bit hash>". The only syscalls are the
 * allocation (mmap / page faults) and the final write: the time is guest CPU
 * time plus first-touch page faults, the cost the VMM adds to a pure
 * computation. Exit 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t round64(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 256;
    size_t words = mib * 1024 * 1024 / 8;
    uint64_t *buf = malloc(words * 8 + 8);
    if (!buf) {
        fprintf(stderr, "hash: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    uint64_t x = 0x243F6A8885A308D3ULL;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = x;
    }
    uint64_t a = P1 + P2, b = P2, c = 0, d = -P1;
    size_t i = 0;
    for (; i + 4 <= words; i += 4) {
        a = round64(a, buf[i]);
        b = round64(b, buf[i + 1]);
        c = round64(c, buf[i + 2]);
        d = round64(d, buf[i + 3]);
    }
    for (; i < words; i++)
        a = round64(a, buf[i]);
    uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + (uint64_t)words * 8;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    printf("hash: %zu MiB -> 0x%016llx\n", mib, (unsigned long long)h);
    free(buf);
    return 0;
}
