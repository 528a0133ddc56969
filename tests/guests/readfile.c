/* readfile: prints the files named by its arguments (paths inside the VM image),
 * each as "PATH: N bytes, fnv1a 0xHASH" followed by its content, then "done".
 * Used by the replicated-image test: the data file reaches every copy only
 * through the content-addressed image. Exit 1 if a file cannot be read. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) {
            printf("%s: cannot open\n", argv[i]);
            return 1;
        }
        static char buffer[65536];
        uint64_t hash = 1469598103934665603ULL;
        long total = 0;
        ssize_t n;
        while ((n = read(fd, buffer, sizeof buffer)) > 0) {
            for (ssize_t j = 0; j < n; j++) hash = (hash ^ (unsigned char)buffer[j]) * 1099511628211ULL;
            total += n;
            if (total <= 4096) fwrite(buffer, 1, (size_t)n, stdout);
        }
        close(fd);
        printf("\n%s: %ld bytes, fnv1a 0x%016llx\n", argv[i], total, (unsigned long long)hash);
    }
    printf("done\n");
    return 0;
}
