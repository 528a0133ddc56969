/* devnull: write-path benchmark guest.
 *   devnull [N=100000]
 * Opens /dev/null and issues N 1-byte write(2)s to it, then prints
 * "devnull: N writes" and exits 0 (1 if open or any write fails).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 100000;
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) {
        perror("devnull: open /dev/null");
        return 1;
    }
    char c = 'x';
    for (long i = 0; i < n; i++)
        if (write(fd, &c, 1) != 1) {
            perror("devnull: write");
            return 1;
        }
    close(fd);
    printf("devnull: %ld writes\n", n);
    return 0;
}
