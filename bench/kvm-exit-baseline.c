/* kvm-exit-baseline: the floor for p2preplay's per-syscall cost on this machine.
 *
 * A minimal KVM VMM in C that runs a 64-bit long-mode guest at CPL3 set up the
 * way /work/shared/KVM-NOTES.md describes (and the way p2preplay's Guest/ does):
 *
 *   - identity-mapped page tables (2 MiB pages, all user-accessible),
 *   - GDT: null, kernel code64 (0x08), kernel data (0x10), user code32 (0x18,
 *     only as the STAR sysret base), user data (0x20), user code64 (0x28), TSS (0x30),
 *   - a TSS with an I/O-permission bitmap that allows exactly one port
 *     (kvm_pvm does not honour IOPL),
 *   - an IDT whose 256 gates lead to tiny CPL0 stubs reporting the vector on a
 *     second port (so a guest fault is reported instead of a triple fault),
 *   - EFER = LME|LMA|SCE, STAR = kernel 0x08 / sysret base 0x18, LSTAR = a
 *     user-accessible stub page holding `out %al,$PORT; sysretq`.
 *
 * Modes:
 *   syscall  (default) user code runs `syscall` N times (rax=39) and checks that
 *            each returns rax=0, then signals done with rax=0xD0E. Every syscall
 *            exits to the VMM through the LSTAR stub's `out`. The VMM does the
 *            minimum, with KVM_CAP_SYNC_REGS (kvm_valid_regs = REGS|SREGS,
 *            kvm_dirty_regs = REGS only): if sregs.cs.dpl == 3 (kvm_pvm: the
 *            syscall stayed at CPL3) it sets rip=rcx, rflags=r11, rax=0; else
 *            (VMX/SVM: CPL0 in the stub) it sets rax=0 and lets sysretq run.
 *   syscall-regs  the same, but SREGS are synced only on the first exit (to
 *            learn the stub's CPL, fixed per host); afterwards kvm_valid_regs =
 *            REGS only. Shows what the SREGS copy-out costs per exit.
 *   out      user code runs `out %al,$PORT` N times directly (TSS bitmap); the
 *            VMM only counts. The cost of a bare port-I/O exit from CPL3.
 *   immediate  N KVM_RUN ioctls with kvm_run->immediate_exit = 1 (each returns
 *            EINTR at once without entering the guest): the ioctl round trip.
 *
 * Usage: kvm-exit-baseline [syscall|syscall-regs|out|immediate|all] [N=20000] [REPS=5]
 * Prints one line per repetition and a summary line per mode:
 *   "<mode>: N exits in T s: X us/exit (median of REPS)"
 * Exit 0 on success, 1 on any setup failure or guest misbehaviour.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (4UL << 20)
#define PML4_ADDR 0x1000
#define PDPT_ADDR 0x2000
#define PD_ADDR 0x3000
#define GDT_ADDR 0x4000
#define TSS_ADDR 0x5000 /* 0x68 + 8192 + 1 bytes: up to 0x7069 */
#define IDT_ADDR 0x8000
#define IDT_STUBS 0x9000 /* 256 * 8 bytes */
#define LSTAR_ADDR 0xB000
#define CODE_ADDR 0x10000
#define USER_STACK 0x1F0000
#define KERNEL_STACK 0x1FF000

#define EXIT_PORT 0x10  /* the one port user mode may use */
#define FAULT_PORT 0xF1 /* CPL0 exception stubs report here */
#define SYS_NR 39
#define DONE_RAX 0xD0E
#define BAD_RAX 0xBAD

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UBASE 0x18
#define SEL_UDATA 0x20
#define SEL_UCODE 0x28
#define SEL_TSS 0x30

#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084

/* Guest code, assembled by gcc, copied into guest memory (position-independent). */
__asm__(".pushsection .rodata\n"
        /* syscall loop: r12 = N (set by the VMM) */
        "guest_syscall_start:\n"
        "1:  mov $" "39" ", %eax\n"
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 2f\n"
        "    dec %r12\n"
        "    jnz 1b\n"
        "    mov $0xD0E, %eax\n"
        "    syscall\n"
        "    jmp .\n"
        "2:  mov $0xBAD, %eax\n"
        "    syscall\n"
        "    jmp .\n"
        "guest_syscall_end:\n"
        /* out loop: r12 = N */
        "guest_out_start:\n"
        "    xor %eax, %eax\n"
        "1:  out %al, $0x10\n"
        "    dec %r12\n"
        "    jnz 1b\n"
        "    mov $0xD0E, %eax\n"
        "    out %al, $0x10\n"
        "    jmp .\n"
        "guest_out_end:\n"
        /* LSTAR stub */
        "guest_lstar_start:\n"
        "    out %al, $0x10\n"
        "    sysretq\n"
        "guest_lstar_end:\n"
        ".popsection\n");
extern const unsigned char guest_syscall_start[], guest_syscall_end[];
extern const unsigned char guest_out_start[], guest_out_end[];
extern const unsigned char guest_lstar_start[], guest_lstar_end[];

static int kvm_fd, vm_fd, vcpu_fd;
static struct kvm_run *run;
static unsigned char *mem;

static void die(const char *what)
{
    fprintf(stderr, "kvm-exit-baseline: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void put64(uint64_t gpa, uint64_t v) { memcpy(mem + gpa, &v, 8); }

static uint64_t seg_desc(uint8_t access, uint8_t flags)
{
    /* base 0, limit 0xFFFFF; access byte at bits 40-47, flags nibble at 52-55 */
    return 0xFFFFULL | (0xFULL << 48) | ((uint64_t)access << 40) | ((uint64_t)flags << 52);
}

static void setup_memory(void)
{
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap guest memory");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem};
    if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");

    /* page tables: identity map 0..4 MiB with 2 MiB pages, P|RW|US */
    put64(PML4_ADDR, PDPT_ADDR | 0x7);
    put64(PDPT_ADDR, PD_ADDR | 0x7);
    put64(PD_ADDR + 0, 0x000000 | 0x87);
    put64(PD_ADDR + 8, 0x200000 | 0x87);

    /* GDT */
    put64(GDT_ADDR + 0x00, 0);
    put64(GDT_ADDR + SEL_KCODE, seg_desc(0x9A, 0xA)); /* P, DPL0, code exec/read; G, L */
    put64(GDT_ADDR + SEL_KDATA, seg_desc(0x92, 0xC)); /* P, DPL0, data rw; G, DB */
    put64(GDT_ADDR + SEL_UBASE, seg_desc(0xFA, 0xC)); /* P, DPL3, code32 (sysret base) */
    put64(GDT_ADDR + SEL_UDATA, seg_desc(0xF2, 0xC)); /* P, DPL3, data rw */
    put64(GDT_ADDR + SEL_UCODE, seg_desc(0xFA, 0xA)); /* P, DPL3, code64 */
    uint64_t tss_limit = 0x68 + 8192; /* header + I/O bitmap + terminator byte */
    uint64_t lo = (tss_limit & 0xFFFF) | ((uint64_t)(TSS_ADDR & 0xFFFFFF) << 16) |
                  (0x89ULL << 40) /* P, type 9: available 64-bit TSS */ |
                  ((tss_limit >> 16 & 0xF) << 48) | ((uint64_t)(TSS_ADDR >> 24 & 0xFF) << 56);
    put64(GDT_ADDR + SEL_TSS, lo);
    put64(GDT_ADDR + SEL_TSS + 8, (uint64_t)TSS_ADDR >> 32);

    /* TSS: RSP0 for faults from CPL3, I/O bitmap allowing only EXIT_PORT */
    put64(TSS_ADDR + 4, KERNEL_STACK);
    uint16_t iomap = 0x68;
    memcpy(mem + TSS_ADDR + 0x66, &iomap, 2);
    memset(mem + TSS_ADDR + 0x68, 0xFF, 8192 + 1);
    mem[TSS_ADDR + 0x68 + EXIT_PORT / 8] &= (unsigned char)~(1u << (EXIT_PORT % 8));

    /* IDT: every vector -> stub "mov $vec,%al; out %al,$FAULT_PORT; hlt" at CPL0 */
    for (int v = 0; v < 256; v++) {
        uint64_t stub = IDT_STUBS + (uint64_t)v * 8;
        unsigned char *s = mem + stub;
        s[0] = 0xB0, s[1] = (unsigned char)v, s[2] = 0xE6, s[3] = FAULT_PORT, s[4] = 0xF4;
        uint64_t g0 = (stub & 0xFFFF) | ((uint64_t)SEL_KCODE << 16) | (0x8EULL << 40) |
                      ((stub >> 16 & 0xFFFF) << 48);
        put64(IDT_ADDR + (uint64_t)v * 16, g0);
        put64(IDT_ADDR + (uint64_t)v * 16 + 8, stub >> 32);
    }

    memcpy(mem + LSTAR_ADDR, guest_lstar_start, (size_t)(guest_lstar_end - guest_lstar_start));
}

static void setup_vcpu(void)
{
    vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
    if (vcpu_fd < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0)
        die("KVM_GET_VCPU_MMAP_SIZE");
    run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");

    /* CPUID: the host-supported set (VMX/SVM need LM and SYSCALL for EFER) */
    int n = 256;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + (size_t)n * sizeof(struct kvm_cpuid_entry2));
    cpuid->nent = (unsigned)n;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
        die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0)
        die("KVM_SET_CPUID2");
    free(cpuid);

    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[4];
    } msrs = {.hdr = {.nmsrs = 4},
              .e = {{.index = MSR_STAR, .data = ((uint64_t)SEL_UBASE | 3) << 48 | (uint64_t)SEL_KCODE << 32},
                    {.index = MSR_LSTAR, .data = LSTAR_ADDR},
                    {.index = MSR_CSTAR, .data = LSTAR_ADDR},
                    {.index = MSR_SFMASK, .data = 0x47700 /* TF DF IF IOPL NT AC */}}};
    if (ioctl(vcpu_fd, KVM_SET_MSRS, &msrs) != 4)
        die("KVM_SET_MSRS");
}

/* Put the vCPU at the start of user code at CPL3 with r12 = n. */
static void reset_vcpu(uint64_t code, uint64_t n)
{
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    struct kvm_segment ucode = {.base = 0, .limit = 0xFFFFFFFF, .selector = SEL_UCODE | 3, .type = 11,
                                .present = 1, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
    struct kvm_segment udata = {.base = 0, .limit = 0xFFFFFFFF, .selector = SEL_UDATA | 3, .type = 3,
                                .present = 1, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};
    sregs.cs = ucode;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = udata;
    sregs.tr = (struct kvm_segment){.base = TSS_ADDR, .limit = 0x68 + 8192, .selector = SEL_TSS,
                                    .type = 11 /* busy 64-bit TSS */, .present = 1, .s = 0};
    sregs.ldt = (struct kvm_segment){.selector = 0, .type = 2, .present = 0, .unusable = 1};
    sregs.gdt.base = GDT_ADDR, sregs.gdt.limit = SEL_TSS + 16 - 1;
    sregs.idt.base = IDT_ADDR, sregs.idt.limit = 256 * 16 - 1;
    sregs.cr0 = 0x80050033; /* PG WP NE ET MP PE */
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 = 0x620; /* PAE OSFXSR OSXMMEXCPT */
    sregs.efer = 0x501; /* LMA LME SCE */
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");

    struct kvm_regs regs = {0};
    regs.rip = code;
    regs.rsp = USER_STACK;
    regs.rflags = 0x2;
    regs.r12 = n;
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");
    run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
    run->kvm_dirty_regs = 0;
    run->immediate_exit = 0;
}

static void report_unexpected(void)
{
    struct kvm_regs *r = &run->s.regs.regs;
    fprintf(stderr, "kvm-exit-baseline: unexpected exit reason %u", run->exit_reason);
    if (run->exit_reason == KVM_EXIT_IO)
        fprintf(stderr, " (io port %#x dir %u)", run->io.port, run->io.direction);
    if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
        fprintf(stderr, " (hw reason %#llx)", (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
        fprintf(stderr, " (suberror %u)", run->internal.suberror);
    fprintf(stderr, " rip=%#llx rax=%#llx rsp=%#llx cs.dpl=%u cr2=%#llx\n", (unsigned long long)r->rip,
            (unsigned long long)r->rax, (unsigned long long)r->rsp, run->s.regs.sregs.cs.dpl,
            (unsigned long long)run->s.regs.sregs.cr2);
    if (run->exit_reason == KVM_EXIT_IO && run->io.port == FAULT_PORT) {
        /* CPL0 fault stub: frame at rsp = [error code] rip cs rflags rsp ss */
        uint64_t vec = r->rax & 0xFF, sp = r->rsp;
        uint64_t f[6];
        if (sp >= 0x1000 && sp + sizeof f <= MEM_SIZE) {
            memcpy(f, mem + sp, sizeof f);
            fprintf(stderr, "  guest exception vector %llu; frame: %#llx %#llx %#llx %#llx %#llx %#llx\n",
                    (unsigned long long)vec, (unsigned long long)f[0], (unsigned long long)f[1],
                    (unsigned long long)f[2], (unsigned long long)f[3], (unsigned long long)f[4],
                    (unsigned long long)f[5]);
        }
    }
    exit(1);
}

/* One repetition of syscall or out mode; returns elapsed seconds. */
static double run_guest(int syscall_mode, int regs_only, uint64_t n, int *cpl_seen)
{
    int dpl = -1;
    const unsigned char *s = syscall_mode ? guest_syscall_start : guest_out_start;
    const unsigned char *e = syscall_mode ? guest_syscall_end : guest_out_end;
    memcpy(mem + CODE_ADDR, s, (size_t)(e - s));
    reset_vcpu(CODE_ADDR, n);

    uint64_t exits = 0;
    double t0 = now();
    for (;;) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            die("KVM_RUN");
        }
        if (run->exit_reason != KVM_EXIT_IO || run->io.port != EXIT_PORT ||
            run->io.direction != KVM_EXIT_IO_OUT)
            report_unexpected();
        struct kvm_regs *r = &run->s.regs.regs;
        if (r->rax == DONE_RAX)
            break;
        if (syscall_mode) {
            if (r->rax != SYS_NR) {
                fprintf(stderr, "kvm-exit-baseline: guest reported rax=%#llx after %llu syscalls\n",
                        (unsigned long long)r->rax, (unsigned long long)exits);
                report_unexpected();
            }
            if (dpl < 0 || !regs_only) {
                dpl = run->s.regs.sregs.cs.dpl;
                if (regs_only) /* the CPL of the stub is fixed per host: stop syncing SREGS */
                    run->kvm_valid_regs = KVM_SYNC_X86_REGS;
            }
            *cpl_seen = dpl;
            if (dpl == 3) { /* kvm_pvm: the syscall stayed at CPL3, return by hand */
                r->rip = r->rcx;
                r->rflags = r->r11;
            } /* else VMX/SVM: at CPL0 in the stub, its sysretq returns */
            r->rax = 0;
            run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
        } else {
            run->kvm_dirty_regs = 0;
        }
        exits++;
    }
    double t = now() - t0;
    if (exits != n) {
        fprintf(stderr, "kvm-exit-baseline: expected %llu exits, saw %llu\n", (unsigned long long)n,
                (unsigned long long)exits);
        exit(1);
    }
    return t;
}

static double run_immediate(uint64_t n)
{
    run->immediate_exit = 1;
    run->kvm_dirty_regs = 0;
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) == 0 || errno != EINTR) {
            fprintf(stderr, "kvm-exit-baseline: KVM_RUN with immediate_exit did not return EINTR\n");
            exit(1);
        }
    }
    double t = now() - t0;
    run->immediate_exit = 0;
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(const char *mode, uint64_t n, int reps)
{
    double t[64];
    int cpl = -1;
    if (reps > 64)
        reps = 64;
    /* warm-up: fault in guest pages and shadow page tables */
    if (strcmp(mode, "immediate") == 0)
        run_immediate(n / 10 + 1);
    else
        run_guest(strcmp(mode, "out") != 0, strcmp(mode, "syscall-regs") == 0, n / 10 + 1, &cpl);
    for (int i = 0; i < reps; i++) {
        if (strcmp(mode, "immediate") == 0)
            t[i] = run_immediate(n);
        else
            t[i] = run_guest(strcmp(mode, "out") != 0, strcmp(mode, "syscall-regs") == 0, n, &cpl);
        printf("  %s rep %d: %llu exits in %.3f s: %.2f us/exit\n", mode, i + 1, (unsigned long long)n,
               t[i], t[i] * 1e6 / (double)n);
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    double med = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
    printf("%s: %llu exits in %.3f s: %.2f us/exit (median of %d; min %.2f us)", mode, (unsigned long long)n,
           med, med * 1e6 / (double)n, reps, t[0] * 1e6 / (double)n);
    if (strcmp(mode, "out") != 0 && strcmp(mode, "immediate") != 0)
        printf(" [syscall arrived at CPL%d: %s]", cpl,
               cpl == 3 ? "kvm_pvm path, rip=rcx by the VMM" : "VMX/SVM path, sysretq in the stub");
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "syscall";
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 0) : 20000;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (n == 0 || n > 0x7fffffff || reps < 1 ||
        (strcmp(mode, "syscall") && strcmp(mode, "syscall-regs") && strcmp(mode, "out") &&
         strcmp(mode, "immediate") && strcmp(mode, "all"))) {
        fprintf(stderr, "usage: kvm-exit-baseline [syscall|syscall-regs|out|immediate|all] [N=20000] [REPS=5]\n");
        return 2;
    }

    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0)
        die("open /dev/kvm");
    if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        die("KVM API version");
    int sync = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
    if (sync <= 0 || (sync & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) != (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) {
        fprintf(stderr, "kvm-exit-baseline: KVM_CAP_SYNC_REGS (REGS|SREGS) not supported (%d)\n", sync);
        return 1;
    }
    vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm_fd < 0)
        die("KVM_CREATE_VM");
    /* VMX without unrestricted guest wants a TSS area for real mode; harmless elsewhere */
    (void)ioctl(vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL);
    setup_memory();
    setup_vcpu();

    if (strcmp(mode, "all") == 0) {
        measure("immediate", n, reps);
        measure("out", n, reps);
        measure("syscall", n, reps);
        measure("syscall-regs", n, reps);
    } else {
        measure(mode, n, reps);
    }
    return 0;
}
