/* See fuzz_store_dir.h. */
#include "fuzz_store_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/format.h"

int fz_write_file(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd);
}

int fz_write_format(const char *dir)
{
    char body[256], text[320];
    int n = snprintf(body, sizeof body, "liblog data directory\nformat %u\ndir-id %016" PRIx64 "\n",
                     RL_FORMAT_VERSION, (uint64_t)FZ_DIR_ID);
    snprintf(text, sizeof text, "%schecksum %016" PRIx64 "\n", body,
             (uint64_t)XXH3_64bits(body, (size_t)n));
    return fz_write_file(dir, "FORMAT", text, strlen(text));
}

void fz_meta_encode(unsigned char buf[FZ_META_SIZE], uint64_t seq, uint32_t gen,
                    uint64_t first_index, uint64_t first_offset)
{
    struct rl_meta m = {.seq = seq, .gen = gen, .first_index = first_index,
                        .first_offset = first_offset, .dir_id = FZ_DIR_ID};
    rl_meta_encode(buf, &m);
}

void fz_meta_seal(unsigned char buf[FZ_META_SIZE])
{
    rl_put64(buf + 88, XXH3_64bits(buf, 88));
}
