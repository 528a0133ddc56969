/* abort: prints a line, flushes, then calls abort(): dies by SIGABRT
 * (shell exit status 134). Nothing after abort() may be printed. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("abort: calling abort()\n");
    fflush(stdout);
    abort();
    printf("abort: still alive (BUG)\n");
    return 1;
}
