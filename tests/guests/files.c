/* files: file-system syscalls, run inside a fresh directory named by argv[1]
 * (a relative path such as "work"; it must not exist yet and is removed at the
 * end, so the program can be run again).
 *
 * Covers mkdir, chdir, open(O_CREAT|O_EXCL|O_TRUNC|O_APPEND), write, read,
 * pread/pwrite (including a hole), lseek SEEK_SET/CUR/END, fstat/stat (only size
 * and file type are printed: never times, inodes, devices or modes), ftruncate
 * (shrink and grow), rename, dup, readdir (getdents64; names sorted before
 * printing), unlink, rmdir, and the errors ENOENT, EEXIST, ENOTEMPTY, ENOTDIR,
 * EISDIR, EBADF, printed by name.
 *
 * Every step prints one line; a failed expectation prints "FAIL ..." and the
 * program exits 1 at the end. Exit 2 if argv[1] is missing or the directory
 * cannot be created.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

static const char *errname(int e)
{
    switch (e) {
    case 0: return "OK";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EFAULT: return "EFAULT";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ESPIPE: return "ESPIPE";
    default: return "E?";
    }
}

/* Print "label: OK" or "label: ENAME", compare with the expected errno. */
static void expect(const char *label, long ret, int want_errno)
{
    int got = ret < 0 ? errno : 0;
    printf("%s: %s\n", label, errname(got));
    if (got != want_errno) {
        printf("FAIL %s: expected %s, got %s (%d)\n", label, errname(want_errno),
               errname(got), got);
        failures++;
    }
}

static void expect_val(const char *label, long got, long want)
{
    printf("%s: %ld\n", label, got);
    if (got != want) {
        printf("FAIL %s: expected %ld\n", label, want);
        failures++;
    }
}

static void print_escaped(const char *label, const unsigned char *p, size_t n)
{
    printf("%s: \"", label);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            printf("\\n");
        else if (p[i] >= 32 && p[i] < 127 && p[i] != '"' && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
    printf("\"\n");
}

static void print_stat(const char *label, int fd, const char *path)
{
    struct stat st;
    int r = fd >= 0 ? fstat(fd, &st) : stat(path, &st);
    if (r < 0) {
        printf("%s: %s\n", label, errname(errno));
        failures++;
        return;
    }
    /* a directory's st_size depends on the file system: print it for files only */
    if (S_ISREG(st.st_mode))
        printf("%s: size=%lld reg=1 dir=0\n", label, (long long)st.st_size);
    else
        printf("%s: reg=0 dir=%d\n", label, S_ISDIR(st.st_mode) ? 1 : 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_dir(const char *label, const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        printf("%s: opendir %s\n", label, errname(errno));
        failures++;
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL)
        if (n < 64)
            names[n++] = strdup(de->d_name);
    if (errno) {
        printf("%s: readdir %s\n", label, errname(errno));
        failures++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    printf("%s: %d entries:", label, n);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: files DIR (relative, must not exist)\n");
        return 2;
    }
    const char *dir = argv[1];
    char buf[256];
    long r;

    if (mkdir(dir, 0755) < 0) {
        printf("mkdir %s: %s (directory must not exist)\n", "DIR", errname(errno));
        return 2;
    }
    printf("mkdir DIR: OK\n");
    expect("mkdir DIR again", mkdir(dir, 0755), EEXIST);
    print_stat("stat DIR", -1, dir);
    expect("chdir DIR", chdir(dir), 0);

    /* missing file */
    expect("open missing.txt O_RDONLY", open("missing.txt", O_RDONLY), ENOENT);
    expect("stat missing.txt", stat("missing.txt", (struct stat[1]){0}), ENOENT);
    expect("unlink missing.txt", unlink("missing.txt"), ENOENT);

    /* create and write */
    int fd = open("a.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    expect("open a.txt O_CREAT|O_WRONLY|O_TRUNC", fd, 0);
    expect("open a.txt O_CREAT|O_EXCL", open("a.txt", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
    static const char line1[] = "hello files\n";
    expect_val("write a.txt", write(fd, line1, sizeof line1 - 1), (long)sizeof line1 - 1);
    expect("read on O_WRONLY fd", read(fd, buf, 1), EBADF);
    expect_val("lseek cur", lseek(fd, 0, SEEK_CUR), 12);
    print_stat("fstat a.txt", fd, NULL);
    expect("close a.txt", close(fd), 0);
    expect("close a.txt again", close(fd), EBADF);

    /* read/write fd, pread/pwrite, lseek */
    fd = open("a.txt", O_RDWR);
    expect("open a.txt O_RDWR", fd, 0);
    memset(buf, 0, sizeof buf);
    expect_val("read a.txt", read(fd, buf, sizeof buf), 12);
    print_escaped("contents", (unsigned char *)buf, 12);
    expect_val("read at EOF", read(fd, buf, sizeof buf), 0);
    expect_val("lseek SEEK_SET 6", lseek(fd, 6, SEEK_SET), 6);
    expect_val("write FILES", write(fd, "FILES", 5), 5);
    expect_val("lseek SEEK_CUR -11", lseek(fd, -11, SEEK_CUR), 0);
    expect_val("lseek SEEK_END 0", lseek(fd, 0, SEEK_END), 12);
    expect_val("lseek SEEK_END +8", lseek(fd, 8, SEEK_END), 20);
    expect("lseek SEEK_SET -1", lseek(fd, -1, SEEK_SET), EINVAL);
    expect_val("pwrite at 24", pwrite(fd, "tail", 4, 24), 4);
    expect_val("lseek cur after pwrite", lseek(fd, 0, SEEK_CUR), 20);
    print_stat("fstat after pwrite", fd, NULL);
    memset(buf, 0, sizeof buf);
    expect_val("pread 0..64", pread(fd, buf, 64, 0), 28);
    print_escaped("contents", (unsigned char *)buf, 28);
    memset(buf, 0, sizeof buf);
    expect_val("pread 6..11", pread(fd, buf, 5, 6), 5);
    print_escaped("pread", (unsigned char *)buf, 5);
    expect_val("pread past EOF", pread(fd, buf, 5, 1000), 0);

    /* ftruncate shrink / grow */
    expect("ftruncate 5", ftruncate(fd, 5), 0);
    print_stat("fstat after ftruncate 5", fd, NULL);
    expect("ftruncate 10", ftruncate(fd, 10), 0);
    print_stat("fstat after ftruncate 10", fd, NULL);
    memset(buf, 0xff, sizeof buf);
    expect_val("pread after truncate", pread(fd, buf, 64, 0), 10);
    print_escaped("contents", (unsigned char *)buf, 10);

    /* dup shares the offset */
    int fd2 = dup(fd);
    expect("dup", fd2, 0);
    expect_val("lseek fd SEEK_SET 3", lseek(fd, 3, SEEK_SET), 3);
    expect_val("lseek dup SEEK_CUR", lseek(fd2, 0, SEEK_CUR), 3);
    expect("close dup", close(fd2), 0);
    expect("close a.txt", close(fd), 0);

    /* O_APPEND */
    fd = open("a.txt", O_WRONLY | O_APPEND);
    expect("open a.txt O_APPEND", fd, 0);
    expect_val("lseek SEEK_SET 0", lseek(fd, 0, SEEK_SET), 0);
    expect_val("append write", write(fd, "+app\n", 5), 5);
    print_stat("fstat after append", fd, NULL);
    expect("close", close(fd), 0);

    /* rename */
    expect("rename a.txt b.txt", rename("a.txt", "b.txt"), 0);
    expect("open a.txt after rename", open("a.txt", O_RDONLY), ENOENT);
    fd = open("b.txt", O_RDONLY);
    expect("open b.txt", fd, 0);
    memset(buf, 0, sizeof buf);
    r = read(fd, buf, sizeof buf);
    expect_val("read b.txt", r, 15);
    print_escaped("contents b.txt", (unsigned char *)buf, r > 0 ? (size_t)r : 0);
    expect("close", close(fd), 0);

    /* subdirectory, directory errors */
    expect("mkdir sub", mkdir("sub", 0755), 0);
    fd = open("sub/c.txt", O_CREAT | O_WRONLY, 0600);
    expect("open sub/c.txt O_CREAT", fd, 0);
    expect_val("write sub/c.txt", write(fd, "c\n", 2), 2);
    expect("close", close(fd), 0);
    expect("open b.txt/x (ENOTDIR)", open("b.txt/x", O_RDONLY), ENOTDIR);
    expect("open sub O_WRONLY (EISDIR)", open("sub", O_WRONLY), EISDIR);
    fd = open("sub", O_RDONLY | O_DIRECTORY);
    expect("open sub O_DIRECTORY", fd, 0);
    expect("read on directory fd", read(fd, buf, sizeof buf), EISDIR);
    expect("close", close(fd), 0);
    expect("open b.txt O_DIRECTORY", open("b.txt", O_RDONLY | O_DIRECTORY), ENOTDIR);
    expect("rmdir sub (not empty)", rmdir("sub"), ENOTEMPTY);
    expect("rmdir b.txt", rmdir("b.txt"), ENOTDIR);
    expect("unlink sub (a directory)", unlink("sub"), EISDIR);
    print_stat("stat sub", -1, "sub");
    print_stat("stat sub/c.txt", -1, "sub/c.txt");
    expect("mkdir sub again", mkdir("sub", 0755), EEXIST);

    /* listing */
    fd = open("z.txt", O_CREAT | O_WRONLY, 0644);
    expect("create z.txt", fd, 0);
    expect("close", close(fd), 0);
    fd = open("m.txt", O_CREAT | O_WRONLY, 0644);
    expect("create m.txt", fd, 0);
    expect("close", close(fd), 0);
    list_dir("list .", ".");
    list_dir("list sub", "sub");

    /* cleanup */
    expect("unlink sub/c.txt", unlink("sub/c.txt"), 0);
    expect("rmdir sub", rmdir("sub"), 0);
    expect("rmdir sub again", rmdir("sub"), ENOENT);
    expect("unlink b.txt", unlink("b.txt"), 0);
    expect("unlink m.txt", unlink("m.txt"), 0);
    expect("unlink z.txt", unlink("z.txt"), 0);
    list_dir("list . after cleanup", ".");
    expect("chdir ..", chdir(".."), 0);
    expect("rmdir DIR", rmdir(dir), 0);
    expect("stat DIR after rmdir", stat(dir, (struct stat[1]){0}), ENOENT);
    expect("close 12345 (bad fd)", close(12345), EBADF);

    printf("files: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
