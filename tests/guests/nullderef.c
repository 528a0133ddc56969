/* nullderef: prints a line, flushes, then writes through a NULL pointer:
 * dies by SIGSEGV (shell exit status 139). Nothing after the store may be printed. */
#include <stdio.h>

int main(void)
{
    printf("nullderef: writing through NULL\n");
    fflush(stdout);
    volatile int *p = (volatile int *)0;
    *p = 42;
    printf("nullderef: still alive (BUG)\n");
    return 1;
}
