/*
 * Replays fuzz inputs through a fuzz target without libFuzzer, so the corpus
 * runs as a regression test under gcc (`make fuzz-replay`).
 *
 *   replay_<target> [-n NAME] DIR_OR_FILE...
 *
 * Every regular file (directories are read one level deep, in name order) is
 * passed to LLVMFuzzerTestOneInput in a child process, so one crashing
 * input is reported by name and the others still run. Prints one line per
 * failure and a summary "NAME: P passed, F failed"; exits 1 if any failed
 * (or no input was found).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned passed, failed;

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 65536;
            unsigned char *p = realloc(buf, nc);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void run_one(const char *path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "replay: fork: %s\n", strerror(errno));
        exit(2);
    }
    if (pid == 0) {
        size_t len = 0;
        unsigned char *buf = read_file(path, &len);
        if (!buf) {
            fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(errno));
            _exit(3);
        }
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        exit(0); /* atexit handlers clean up the target's temp files */
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "replay: waitpid: %s\n", strerror(errno));
            exit(2);
        }
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        passed++;
    } else {
        failed++;
        if (WIFSIGNALED(st))
            printf("FAIL %s (signal %d)\n", path, WTERMSIG(st));
        else
            printf("FAIL %s (exit %d)\n", path, WEXITSTATUS(st));
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        failed++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p)
                exit(2);
            names = p;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n])
            exit(2);
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            run_one(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const char *name = "replay";
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "-n")) {
        name = argv[2];
        i = 3;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-n NAME] DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    for (; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed++;
        } else if (S_ISDIR(st.st_mode)) {
            run_dir(argv[i]);
        } else {
            run_one(argv[i]);
        }
    }
    printf("%s: %u passed, %u failed\n", name, passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
