/* malloc: exercises the allocator paths a libc uses on top of brk/mmap/mremap.
 *
 *  1. many small blocks: 20000 rounds of malloc (16..1040 bytes) / free of a
 *     pseudo-randomly chosen slot in a table of 512 live blocks (brk heap);
 *  2. large blocks of 1, 8 and 64 MiB (mmap path), every page written;
 *  3. realloc growth of a big block from 1 MiB to 96 MiB in steps (mremap path
 *     in glibc; musl too for mmapped chunks), contents checked after each step;
 *  4. calloc of 16 MiB: must read as all zero, every page touched.
 *
 * Every block is filled with a pattern derived from its size/index only (never
 * from addresses), and checksums are printed, so the output is deterministic.
 * Exit 0 on success, 1 on any failure (with a line saying which).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024UL * 1024UL)
#define PAGE 4096UL

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}
#define FNV_INIT 0xCBF29CE484222325ULL

static int failures;
static void fail(const char *what)
{
    printf("FAIL: %s\n", what);
    failures++;
}

/* Fill a block with the byte pattern i*31+seed. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31u + seed);
}

static int check_fill(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31u + seed))
            return 0;
    return 1;
}

static void small_blocks(void)
{
    enum { SLOTS = 512, ROUNDS = 20000 };
    static unsigned char *slot[SLOTS];
    static size_t slot_len[SLOTS];
    uint64_t h = FNV_INIT;
    unsigned long allocs = 0, frees = 0;

    for (int r = 0; r < ROUNDS; r++) {
        unsigned i = (unsigned)(next_rand() % SLOTS);
        if (slot[i]) {
            if (!check_fill(slot[i], slot_len[i], i))
                fail("small block corrupted");
            h = fnv1a(slot[i], slot_len[i], h);
            free(slot[i]);
            slot[i] = NULL;
            frees++;
        } else {
            size_t len = 16 + (size_t)(next_rand() % 1025);
            slot[i] = malloc(len);
            if (!slot[i]) {
                fail("small malloc returned NULL");
                return;
            }
            slot_len[i] = len;
            fill(slot[i], len, i);
            allocs++;
        }
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slot[i]) {
            if (!check_fill(slot[i], slot_len[i], i))
                fail("small block corrupted at end");
            h = fnv1a(slot[i], slot_len[i], h);
            free(slot[i]);
            frees++;
        }
    }
    printf("small: %lu mallocs, %lu frees, checksum %016llx\n", allocs, frees,
           (unsigned long long)h);
}

static void large_block(size_t mib)
{
    size_t n = mib * MiB;
    unsigned char *p = malloc(n);
    if (!p) {
        fail("large malloc returned NULL");
        return;
    }
    /* touch every page with a page-dependent value, plus the last byte */
    for (size_t off = 0; off < n; off += PAGE) {
        uint64_t v = (uint64_t)mib << 32 | (off / PAGE);
        memcpy(p + off, &v, sizeof v);
    }
    p[n - 1] = 0x5A;
    uint64_t h = FNV_INIT;
    for (size_t off = 0; off < n; off += PAGE)
        h = fnv1a(p + off, 8, h);
    h = fnv1a(p + n - 1, 1, h);
    printf("large %zu MiB: pages %zu, checksum %016llx\n", mib, n / PAGE,
           (unsigned long long)h);
    free(p);
}

static void realloc_growth(void)
{
    size_t len = 1 * MiB;
    unsigned char *p = malloc(len);
    if (!p) {
        fail("realloc base malloc returned NULL");
        return;
    }
    fill(p, len, 7);
    static const size_t steps[] = {2, 5, 12, 24, 48, 96};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        size_t nlen = steps[s] * MiB;
        unsigned char *q = realloc(p, nlen);
        if (!q) {
            fail("realloc returned NULL");
            free(p);
            return;
        }
        p = q;
        if (!check_fill(p, len, 7)) {
            fail("realloc lost contents");
            free(p);
            return;
        }
        fill(p + len, nlen - len, (unsigned)(7 + 31 * len)); /* continue i*31+7 */
        len = nlen;
        printf("realloc -> %zu MiB: contents ok\n", steps[s]);
    }
    uint64_t h = fnv1a(p, len, FNV_INIT);
    printf("realloc final %zu MiB checksum %016llx\n", len / MiB, (unsigned long long)h);
    free(p);
}

static void calloc_block(void)
{
    size_t n = 16 * MiB;
    unsigned char *p = calloc(n / 16, 16);
    if (!p) {
        fail("calloc returned NULL");
        return;
    }
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero += p[i] != 0;
    for (size_t off = 0; off < n; off += PAGE)
        p[off] = (unsigned char)(off / PAGE);
    uint64_t h = FNV_INIT;
    for (size_t off = 0; off < n; off += PAGE)
        h = fnv1a(p + off, 1, h);
    printf("calloc 16 MiB: nonzero bytes %zu, checksum %016llx\n", nonzero,
           (unsigned long long)h);
    if (nonzero)
        fail("calloc memory not zero");
    free(p);

    /* calloc overflow must fail cleanly */
    volatile size_t huge = (size_t)-1 / 8; /* volatile: a real call, no warning */
    void *bad = calloc(huge, 16);
    printf("calloc overflow returns NULL: %s\n", bad == NULL ? "yes" : "no");
    if (bad)
        fail("calloc overflow did not return NULL");
}

int main(void)
{
    small_blocks();
    large_block(1);
    large_block(8);
    large_block(64);
    realloc_growth();
    calloc_block();
    printf("malloc: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
