/* hostile: a syscall fuzzer guest.
 *
 *   hostile SEED COUNT [-v]
 *
 * Issues COUNT raw syscalls (inline-asm `syscall`, never a libc wrapper) with
 * numbers drawn from 0..460 and wild arguments: 0, small ints, fd-like ints,
 * flag words, huge values, -1/-100/-4096, pointers into its own stack scratch
 * buffer and its own heap scratch buffer (an mmap with guard pages, i.e. the
 * libc "large malloc" path), a read-only pointer, and unmapped addresses (0x1,
 * 0x1000, 0xdeadbeef000, -1, kernel and non-canonical addresses). The sequence
 * of numbers and non-pointer arguments is a pure function of SEED. At the end
 * it prints exactly one line to stdout: "hostile: done N syscalls", exit 0.
 * With -v every call is logged to stderr before it is made (and its result
 * after), so a VMM crash can be pinned to one call.
 *
 * The point is that the VMM survives: it must return an error (or a result) for
 * every call and never crash, hang or corrupt its own state. Natively the
 * program must be harmless too. Run it natively ONLY inside a throwaway
 * directory, ideally as an unprivileged user: it creates, renames and deletes
 * files with random names in its current directory.
 *
 * Safety measures (they hold natively, even as root):
 *  - Syscalls that end, block or reshape the process, or touch anything
 *    outside the process and its current directory, are never issued: see
 *    excluded[] below, one reason per entry.
 *  - Every pointer argument that lands in a scratch buffer is sanitised just
 *    before the call: the up to 255 bytes from the pointer contain no '/' and
 *    no '.', and a NUL follows. So every path the kernel sees is a single
 *    relative component other than "." and "..": files only ever appear in the
 *    current directory (or subdirectories the fuzzer itself made).
 *  - Before fuzzing, stdin/stdout/stderr are moved to a private scratch file
 *    (created in the current directory, then unlinked) and the real stdout and
 *    stderr are kept at high fds that no fuzzed argument may name. So garbage
 *    written to fds 0-2 never reaches the real output, and fchmod/fchown on
 *    fds 0-2 only touch the scratch file (never a tty or /dev/null). If the
 *    scratch file cannot be created, arg0 (and the second fd of sendfile,
 *    splice, tee, copy_file_range) is kept away from 0..2 instead.
 *  - close() never gets fds 0-2; read() never gets fd 0.
 *  - ioctl() requests are 16-bit values or a few harmless 32-bit "get"
 *    requests (so never FIFREEZE, FS_IOC_SETFLAGS, ...). fcntl() commands that
 *    arm signals or can block (F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETLEASE,
 *    F_NOTIFY, F_OFD_SETLKW) become F_GETFL.
 *  - RLIMIT_FSIZE is set to 4 MiB with SIGXFSZ ignored (writes fail with EFBIG
 *    instead of filling the disk) and RLIMIT_NOFILE to 64 (fd-like arguments
 *    then often name real fds, and kernel objects stay bounded).
 *  - The stack scratch buffer is the last thing in main's frame and the fuzz
 *    loop runs below it and keeps its state in globals, so an over-long write
 *    into it only reaches frames that are never returned to (the program ends
 *    with _exit). The heap scratch buffer has PROT_NONE guard pages.
 *
 * Exclusion list (number: name - reason). Also excluded implicitly: nothing
 * above 460 is tried.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <alloca.h>

static const struct {
    unsigned short nr;
    const char *why;
} excluded[] = {
    {7, "poll: blocks"},
    {9, "mmap: reshapes the address space"},
    {10, "mprotect: could revoke access to our own code/stack"},
    {11, "munmap: could unmap our own code/stack"},
    {12, "brk: reshapes the heap under malloc"},
    {13, "rt_sigaction: could install garbage handlers"},
    {14, "rt_sigprocmask: changes the signal mask"},
    {15, "rt_sigreturn: loads a garbage register frame"},
    {22, "pipe: a pipe fd makes later reads block"},
    {23, "select: blocks"},
    {25, "mremap: reshapes the address space"},
    {28, "madvise: MADV_DONTNEED on our own stack zeroes it"},
    {29, "shmget: creates system-wide SysV segments that outlive us"},
    {30, "shmat: SHM_REMAP could replace our own memory"},
    {31, "shmctl: IPC_RMID could remove other processes' segments"},
    {33, "dup2: could replace fds 0-2"},
    {34, "pause: blocks forever"},
    {35, "nanosleep: blocks (possibly for years)"},
    {37, "alarm: SIGALRM would kill us"},
    {38, "setitimer: SIGALRM/SIGVTALRM/SIGPROF would kill us"},
    {41, "socket: a socket fd makes later reads block"},
    {43, "accept: blocks"},
    {45, "recvfrom: blocks"},
    {47, "recvmsg: blocks"},
    {48, "shutdown: (brief) excluded"},
    {53, "socketpair: a socket fd makes later reads block"},
    {56, "clone: creates a process/thread"},
    {57, "fork: creates a process"},
    {58, "vfork: creates a process"},
    {59, "execve: replaces the process"},
    {60, "exit: ends the thread"},
    {61, "wait4: may block"},
    {62, "kill: signals us or (as root) anyone"},
    {64, "semget: system-wide SysV IPC"},
    {65, "semop: may block"},
    {66, "semctl: could remove other processes' semaphores"},
    {67, "shmdt: could detach memory"},
    {68, "msgget: system-wide SysV IPC"},
    {69, "msgsnd: may block"},
    {70, "msgrcv: blocks"},
    {71, "msgctl: could remove other processes' queues"},
    {73, "flock: two fds on one file deadlock us"},
    {101, "ptrace: touches other processes"},
    {103, "syslog: as root could clear the kernel log"},
    {128, "rt_sigtimedwait: blocks"},
    {129, "rt_sigqueueinfo: signals us or others"},
    {130, "rt_sigsuspend: blocks forever"},
    {131, "sigaltstack: changes signal delivery"},
    {133, "mknod: FIFOs block on open; as root device nodes"},
    {141, "setpriority: as root renices every process of a user"},
    {142, "sched_setparam: may target other pids"},
    {144, "sched_setscheduler: SCHED_FIFO could starve the machine"},
    {153, "vhangup: hangs up the terminal"},
    {155, "pivot_root: changes the root"},
    {157, "prctl: PR_SET_SECCOMP, PDEATHSIG, ... reshape the process"},
    {158, "arch_prctl: would change FS/GS base (TLS)"},
    {159, "adjtimex: as root changes the system clock"},
    {160, "setrlimit: could lower limits we rely on"},
    {161, "chroot: changes the root"},
    {163, "acct: as root enables process accounting"},
    {164, "settimeofday: as root sets the clock"},
    {165, "mount: as root"},
    {166, "umount2: as root"},
    {167, "swapon: as root"},
    {168, "swapoff: as root"},
    {169, "reboot: as root"},
    {170, "sethostname: as root"},
    {171, "setdomainname: as root"},
    {175, "init_module: as root"},
    {176, "delete_module: as root"},
    {179, "quotactl: as root"},
    {200, "tkill: signals"},
    {202, "futex: may block"},
    {203, "sched_setaffinity: may target other pids"},
    {208, "io_getevents: may block"},
    {216, "remap_file_pages: reshapes mappings"},
    {218, "set_tid_address: clear_child_tid write at exit"},
    {220, "semtimedop: may block"},
    {222, "timer_create: a timer signal would kill us"},
    {223, "timer_settime: timer signals"},
    {224, "timer_gettime: timer family"},
    {225, "timer_getoverrun: timer family"},
    {226, "timer_delete: timer family"},
    {227, "clock_settime: as root sets the clock"},
    {230, "clock_nanosleep: blocks"},
    {231, "exit_group: ends the process"},
    {232, "epoll_wait: blocks"},
    {234, "tgkill: signals"},
    {240, "mq_open: creates persistent message queues"},
    {241, "mq_unlink: could remove others' queues"},
    {242, "mq_timedsend: may block"},
    {243, "mq_timedreceive: blocks"},
    {244, "mq_notify: signals"},
    {245, "mq_getsetattr: mq family"},
    {246, "kexec_load: as root"},
    {247, "waitid: may block"},
    {248, "add_key: session keyring is shared"},
    {249, "request_key: may run an upcall"},
    {250, "keyctl: session keyring is shared"},
    {251, "ioprio_set: as root affects every process of a user"},
    {253, "inotify_init: an inotify fd makes reads block"},
    {256, "migrate_pages: targets other pids"},
    {259, "mknodat: FIFOs block on open; as root device nodes"},
    {270, "pselect6: blocks"},
    {271, "ppoll: blocks"},
    {279, "move_pages: targets other pids"},
    {281, "epoll_pwait: blocks"},
    {282, "signalfd: a signalfd makes reads block"},
    {283, "timerfd_create: a timerfd makes reads block"},
    {284, "eventfd: an eventfd makes reads block"},
    {288, "accept4: blocks"},
    {289, "signalfd4: a signalfd makes reads block"},
    {290, "eventfd2: an eventfd makes reads block"},
    {292, "dup3: could replace fds 0-2"},
    {293, "pipe2: a pipe fd makes later reads block"},
    {294, "inotify_init1: an inotify fd makes reads block"},
    {297, "rt_tgsigqueueinfo: signals"},
    {298, "perf_event_open: unsure, excluded"},
    {299, "recvmmsg: blocks"},
    {300, "fanotify_init: as root watches the whole system; reads block"},
    {302, "prlimit64: could lower limits we rely on, or other pids'"},
    {304, "open_by_handle_at: as root opens any file on the disk"},
    {305, "clock_adjtime: as root changes the clock"},
    {310, "process_vm_readv: touches other processes"},
    {311, "process_vm_writev: writes other processes' memory"},
    {313, "finit_module: as root"},
    {314, "sched_setattr: realtime policies could starve the machine"},
    {317, "seccomp: could kill us on a later call"},
    {320, "kexec_file_load: as root"},
    {321, "bpf: as root"},
    {322, "execveat: replaces the process"},
    {323, "userfaultfd: faults then block"},
    {329, "pkey_mprotect: like mprotect"},
    {330, "pkey_alloc: after pkey_free(0) could deny access to all memory"},
    {331, "pkey_free: pkey 0 can be freed"},
    {333, "io_pgetevents: may block"},
    {334, "rseq: registers a restartable-sequence area"},
    {335, "uretprobe: SIGILL when not called from a uprobe trampoline"},
    {424, "pidfd_send_signal: signals"},
    {425, "io_uring_setup: io_uring_enter may then block"},
    {426, "io_uring_enter: may block"},
    {427, "io_uring_register: io_uring family"},
    {428, "open_tree: mount API (as root)"},
    {429, "move_mount: mount API (as root)"},
    {430, "fsopen: mount API (as root)"},
    {431, "fsconfig: mount API (as root)"},
    {432, "fsmount: mount API (as root)"},
    {433, "fspick: mount API (as root)"},
    {434, "pidfd_open: pidfds of other processes"},
    {435, "clone3: creates a process/thread"},
    {436, "close_range: could close fds 0-2 and our saved fds"},
    {438, "pidfd_getfd: steals other processes' fds"},
    {440, "process_madvise: like madvise, on other processes"},
    {441, "epoll_pwait2: blocks"},
    {442, "mount_setattr: mount API (as root)"},
    {443, "quotactl_fd: as root"},
    {448, "process_mrelease: other processes"},
    {449, "futex_waitv: blocks"},
    {453, "map_shadow_stack: reshapes the address space"},
    {454, "futex_wake: futex family"},
    {455, "futex_wait: blocks"},
    {456, "futex_requeue: futex family"},
    {460, "lsm_set_self_attr: changes our security context"},
};

#define MAX_NR 460
#define STACK_SCRATCH (64 * 1024)
#define HEAP_SCRATCH (1024 * 1024)
#define PAGE 4096UL

/* All fuzzer state is global (see the header comment). */
static unsigned char allowed[MAX_NR + 1];
static uint64_t rng;
static unsigned char *stack_buf, *heap_buf;
static int saved_out = -1, saved_err = -1;
static int redirected;
static int verbose;
static unsigned long count, done;
static const char ro_string[] = "hostile-ro-name";
static char logbuf[256];

static uint64_t next_rand(void)
{
    /* xorshift64*: deterministic for a seed, libc-independent */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static long raw_syscall6(long n, long a0, long a1, long a2, long a3, long a4, long a5)
{
    long ret;
    register long r10 __asm__("r10") = a3;
    register long r8 __asm__("r8") = a4;
    register long r9 __asm__("r9") = a5;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static int in_buf(uint64_t v, const unsigned char *b, size_t n)
{
    return v >= (uint64_t)(uintptr_t)b && v < (uint64_t)(uintptr_t)b + n;
}

/* Make the string at p (inside [b, b+n)) a harmless single path component. */
static void sanitize(uint64_t v, unsigned char *b, size_t n)
{
    unsigned char *p = (unsigned char *)(uintptr_t)v;
    unsigned char *end = b + n - 1;
    unsigned char *lim = p + 255 < end ? p + 255 : end;
    for (; p < lim; p++) {
        if (*p == '/' || *p == '.')
            *p = 'x';
    }
    *lim = 0;
}

static uint64_t gen_arg(void)
{
    uint64_t r = next_rand();
    switch (r % 16) {
    case 0:
    case 1:
        return 0;
    case 2:
        return 1 + (r >> 8) % 16; /* small int */
    case 3:
    case 4:
        return 3 + (r >> 8) % 40; /* fd-like (RLIMIT_NOFILE is 64) */
    case 5:
        return (r >> 8) % 65536; /* medium */
    case 6: /* a flag word: one or two bits */
        return (1ULL << ((r >> 8) % 32)) | (((r >> 16) & 1) ? 1ULL << ((r >> 24) % 32) : 0);
    case 7: { /* huge / boundary values */
        static const uint64_t huge[] = {
            0xffffffffffffffffULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
            0xffffffffULL, 0x80000000ULL, 0x7fffffffULL, 0x100000000ULL,
            0xfffffffffffff000ULL};
        return huge[(r >> 8) % 8];
    }
    case 8:
        return next_rand(); /* any 64-bit value */
    case 9: { /* negative small */
        static const int64_t neg[] = {-1, -100 /* AT_FDCWD */, -4096, -2};
        return (uint64_t)neg[(r >> 8) % 4];
    }
    case 10:
    case 11: /* into the stack scratch buffer */
        return (uint64_t)(uintptr_t)(stack_buf + (r >> 8) % STACK_SCRATCH);
    case 12:
    case 13: /* into the heap scratch buffer, sometimes right before the guard page */
        if ((r >> 8) % 8 == 0)
            return (uint64_t)(uintptr_t)(heap_buf + HEAP_SCRATCH - 1 - (r >> 16) % 64);
        return (uint64_t)(uintptr_t)(heap_buf + (r >> 8) % HEAP_SCRATCH);
    case 14: /* read-only memory */
        return (uint64_t)(uintptr_t)ro_string;
    default: { /* unmapped / invalid pointers */
        static const uint64_t bad[] = {
            0x1, 0x1000, 0xdeadbeef000ULL, 0xffffffffffffffffULL,
            0xffff800000000000ULL /* kernel */, 0x800000000000ULL /* non-canonical */,
            0x7ffffffff000ULL, 0x10};
        return bad[(r >> 8) % 8];
    }
    }
}

static int is_saved_fd(uint64_t v)
{
    uint32_t lo = (uint32_t)v; /* the kernel truncates fd arguments to int */
    return (saved_out >= 0 && lo == (uint32_t)saved_out) ||
           (saved_err >= 0 && lo == (uint32_t)saved_err);
}

static uint64_t away_from_stdio(uint64_t v)
{
    return (uint32_t)v <= 2 ? 3 + (v & 7) : v;
}

static void fix_args(long nr, uint64_t a[6])
{
    for (int i = 0; i < 6; i++) {
        if (is_saved_fd(a[i]))
            a[i] = 3;
        if (in_buf(a[i], stack_buf, STACK_SCRATCH))
            sanitize(a[i], stack_buf, STACK_SCRATCH);
        else if (in_buf(a[i], heap_buf, HEAP_SCRATCH))
            sanitize(a[i], heap_buf, HEAP_SCRATCH);
    }
    if (!redirected) {
        a[0] = away_from_stdio(a[0]);
        if (nr == 40 /* sendfile in_fd */ || nr == 276 /* tee fd_out */)
            a[1] = away_from_stdio(a[1]);
        if (nr == 275 /* splice fd_out */ || nr == 326 /* copy_file_range fd_out */)
            a[2] = away_from_stdio(a[2]);
    }
    if (nr == 3 /* close */)
        a[0] = away_from_stdio(a[0]);
    if (nr == 0 /* read */ && (uint32_t)a[0] == 0)
        a[0] = 3;
    if (nr == 16) { /* ioctl */
        static const uint32_t safe32[] = {
            0x80086601 /* FS_IOC_GETFLAGS */, 0x80087601 /* FS_IOC_GETVERSION */,
            0x5401 /* TCGETS */, 0x5413 /* TIOCGWINSZ */, 0x541B /* FIONREAD */,
            0x5421 /* FIONBIO */, 0x5451 /* FIOCLEX */, 0x5450 /* FIONCLEX */};
        uint64_t r = next_rand();
        a[1] = (r & 1) ? safe32[(r >> 8) % 8] : (r >> 16) & 0xffff;
    }
    if (nr == 72) { /* fcntl */
        switch ((uint32_t)a[1]) {
        case 8:    /* F_SETOWN */
        case 10:   /* F_SETSIG */
        case 15:   /* F_SETOWN_EX */
        case 38:   /* F_OFD_SETLKW */
        case 1024: /* F_SETLEASE */
        case 1026: /* F_NOTIFY */
            a[1] = 3; /* F_GETFL */
        }
    }
}

static void log_line(const char *s)
{
    if (saved_err >= 0)
        write(saved_err, s, strlen(s));
}

__attribute__((noinline)) static void fuzz_loop(void)
{
    for (done = 0; done < count; done++) {
        long nr;
        do
            nr = (long)(next_rand() % (MAX_NR + 1));
        while (!allowed[nr]);
        uint64_t a[6];
        for (int i = 0; i < 6; i++)
            a[i] = gen_arg();
        fix_args(nr, a);
        if (verbose) {
            snprintf(logbuf, sizeof logbuf, "hostile: #%lu nr=%ld %#llx %#llx %#llx %#llx %#llx %#llx",
                     done, nr, (unsigned long long)a[0], (unsigned long long)a[1],
                     (unsigned long long)a[2], (unsigned long long)a[3],
                     (unsigned long long)a[4], (unsigned long long)a[5]);
            log_line(logbuf);
        }
        long ret = raw_syscall6(nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3],
                                (long)a[4], (long)a[5]);
        if (verbose) {
            snprintf(logbuf, sizeof logbuf, " -> %ld\n", ret);
            log_line(logbuf);
        }
    }
}

__attribute__((noinline, noreturn)) static void finish(void)
{
    if (redirected) {
        dup2(saved_out, 1);
        dup2(saved_err, 2);
    }
    printf("hostile: done %lu syscalls\n", done);
    fflush(stdout);
    _exit(0);
}

__attribute__((noinline)) static int setup(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hostile SEED COUNT [-v]\n");
        return -1;
    }
    rng = strtoull(argv[1], NULL, 0) * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    if (rng == 0)
        rng = 1;
    count = strtoul(argv[2], NULL, 0);
    verbose = argc > 3 && strcmp(argv[3], "-v") == 0;

    memset(allowed, 1, sizeof allowed);
    for (size_t i = 0; i < sizeof excluded / sizeof excluded[0]; i++)
        allowed[excluded[i].nr] = 0;

    /* heap scratch: mmap'd block with a PROT_NONE guard page on each side */
    unsigned char *m = mmap(NULL, HEAP_SCRATCH + 2 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("hostile: mmap");
        return -1;
    }
    mprotect(m, PAGE, PROT_NONE);
    mprotect(m + PAGE + HEAP_SCRATCH, PAGE, PROT_NONE);
    heap_buf = m + PAGE;
    for (size_t i = 0; i < HEAP_SCRATCH; i++)
        heap_buf[i] = (unsigned char)next_rand();

    /* limits: bounded files, few fds; EFBIG instead of SIGXFSZ */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit fsz = {4 << 20, 4 << 20};
    setrlimit(RLIMIT_FSIZE, &fsz);

    /* start from a known fd table: only 0-2 open */
    if (raw_syscall6(436 /* close_range */, 3, ~0L, 0, 0, 0, 0) != 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);

    /* keep the real stdout/stderr out of reach, put a private file on 0-2 */
    saved_out = fcntl(1, F_DUPFD_CLOEXEC, 500);
    saved_err = fcntl(2, F_DUPFD_CLOEXEC, 501);
    static const char scratch_name[] = "hostile-stdio.tmp";
    int fd = saved_out >= 0 && saved_err >= 0
                 ? open(scratch_name, O_RDWR | O_CREAT | O_TRUNC, 0600)
                 : -1;
    if (fd >= 0) {
        fflush(stdout);
        fflush(stderr);
        if (dup2(fd, 0) == 0 && dup2(fd, 1) == 1 && dup2(fd, 2) == 2)
            redirected = 1;
        if (fd > 2)
            close(fd);
        unlink(scratch_name);
    }
    if (!redirected && saved_out >= 0) {
        /* could not redirect: restore whatever we half-did */
        dup2(saved_out, 1);
        dup2(saved_err, 2);
    }
    struct rlimit nof = {64, 64};
    setrlimit(RLIMIT_NOFILE, &nof);
    return 0;
}

int main(int argc, char **argv)
{
    if (setup(argc, argv) < 0)
        return 2;
    /* the stack scratch buffer: everything below it in the stack belongs to
       fuzz_loop, everything above it is never returned to */
    stack_buf = alloca(STACK_SCRATCH);
    for (size_t i = 0; i < STACK_SCRATCH; i++)
        stack_buf[i] = (unsigned char)next_rand();
    fuzz_loop();
    finish();
}
