/* spin: prints one line, then loops forever without a syscall: the VMM must be able to stop it from outside
 * (a kick: signal + immediate_exit). Never run natively without a timeout. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("spinning\n");
    fflush(stdout);
    for (volatile unsigned long x = 0;; x++) {
    }
}
