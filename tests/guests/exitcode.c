/* exitcode: exits with the code given in argv[1] (default 0).
 *
 * argv[2] selects how it exits:
 *   "return" (default)  return from main: stdio is flushed
 *   "exit"              exit(code): stdio is flushed
 *   "_exit"             _exit(code): buffered stdio is NOT flushed
 *
 * Before exiting it writes one line with printf into a fully buffered stdout
 * (setvbuf _IOFBF), so under "_exit" that line must NOT appear, and one line
 * with write(2) directly, which always appears.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[4096];

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 0;
    const char *how = argc > 2 ? argv[2] : "return";

    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    static const char direct[] = "exitcode: direct write\n";
    write(1, direct, sizeof direct - 1);
    printf("exitcode: buffered line (code %d, via %s)\n", code, how);

    if (strcmp(how, "_exit") == 0)
        _exit(code);
    if (strcmp(how, "exit") == 0)
        exit(code);
    return code;
}
