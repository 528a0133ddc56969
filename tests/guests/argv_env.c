/* argv_env: prints argc, every argv[i], and for every argv[i] (i >= 1) the
 * value of the environment variable of that name (or "(unset)"), then the
 * number of environ entries. Exit 0.
 * Deterministic when run with a controlled environment, e.g.
 *   env -i A=1 B=two ./argv_env A B C
 */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=\"%s\"\n", i, argv[i]);
    for (int i = 1; i < argc; i++) {
        const char *v = getenv(argv[i]);
        if (v)
            printf("env %s=\"%s\"\n", argv[i], v);
        else
            printf("env %s=(unset)\n", argv[i]);
    }
    int n = 0;
    for (char **e = environ; *e; e++)
        n++;
    printf("environ count=%d\n", n);
    if (argv[argc] != NULL) {
        printf("argv[argc] is not NULL\n");
        return 1;
    }
    return 0;
}
