/* getpid: syscall round-trip benchmark guest.
 *   getpid [N=100000]
 * Issues N raw getpid syscalls with inline-asm `syscall` (so no libc caching
 * can elide them), then prints "getpid: N syscalls" and exits 0. Under the VMM
 * each one is a VM exit; (time - start-up time) / N is the per-syscall cost.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 100000;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "a"(39L) : "rcx", "r11", "memory");
        sum += ret > 0;
    }
    printf("getpid: %ld syscalls\n", n);
    return sum == n ? 0 : 1;
}
