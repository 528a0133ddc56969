/* hello: the smallest stdio program. Expected stdout "hello, world\n", exit 0. */
#include <stdio.h>

int main(void)
{
    printf("hello, world\n");
    return 0;
}
