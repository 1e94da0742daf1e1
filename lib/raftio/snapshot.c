#include "raftio/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"
#include "fs/fs.h"
#include "liblog.h"

#define SNAP_MAGIC 0x50414e53474f4c52ull /* "RLOGSNAP" */
#define SNAP_HDR 56u /* magic, index, term, conf_index, conf_len, visible, checksum */
/* The same plus reset_offset before the checksum; what is written now. */
#define SNAP_MAGIC2 0x32504e53474f4c52ull /* "RLOGSNP2" */
#define SNAP_HDR2 64u
#define SNAP_MAX_CONF (1u << 20)

/* Configuration: u64 count, then per server u64 id, u64 role, u64 address
 * length and the address padded to 8. (libraft 0.15 has no public decoder
 * for its own encoding.) */
static int conf_encode(const struct raft_configuration *conf, struct raft_buffer *out)
{
    size_t len = 8;
    for (unsigned i = 0; i < conf->n; i++)
        len += 24 + rl_pad8(strlen(conf->servers[i].address));
    unsigned char *b = raft_calloc(1, len), *p = b + 8;
    if (!b)
        return -ENOMEM;
    rl_put64(b, conf->n);
    for (unsigned i = 0; i < conf->n; i++) {
        size_t al = strlen(conf->servers[i].address);
        rl_put64(p, conf->servers[i].id);
        rl_put64(p + 8, (uint64_t)conf->servers[i].role);
        rl_put64(p + 16, al);
        memcpy(p + 24, conf->servers[i].address, al);
        p += 24 + rl_pad8(al);
    }
    out->base = b;
    out->len = len;
    return 0;
}

static int conf_decode(const unsigned char *b, size_t len, struct raft_configuration *conf)
{
    if (len < 8)
        return -1;
    uint64_t n = rl_get64(b);
    const unsigned char *p = b + 8, *end = b + len;
    if (n == 0 || n > 1024)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 24)
            return -1;
        uint64_t id = rl_get64(p), role = rl_get64(p + 8), al = rl_get64(p + 16);
        if (id == 0 || role > RAFT_SPARE || al == 0 || al > 255 || (uint64_t)(end - p - 24) < rl_pad8(al))
            return -1;
        char addr[256];
        memcpy(addr, p + 24, al);
        addr[al] = '\0';
        if (strlen(addr) != al || raft_configuration_add(conf, id, addr, (int)role) != 0)
            return -1;
        p += 24 + rl_pad8(al);
    }
    return p == end ? 0 : -1;
}

int rl_snapshot_save(const char *dir, uint64_t index, uint64_t term, uint64_t conf_index,
                     uint64_t visible, uint64_t reset_offset,
                     const struct raft_configuration *conf)
{
    struct raft_buffer cb;
    if (conf_encode(conf, &cb) != 0)
        return -ENOMEM;
    size_t len = SNAP_HDR2 + rl_pad8(cb.len);
    unsigned char *buf = calloc(1, len);
    if (!buf) {
        raft_free(cb.base);
        return -ENOMEM;
    }
    rl_put64(buf, SNAP_MAGIC2);
    rl_put64(buf + 8, index);
    rl_put64(buf + 16, term);
    rl_put64(buf + 24, conf_index);
    rl_put64(buf + 32, cb.len);
    rl_put64(buf + 40, visible);
    rl_put64(buf + 48, reset_offset);
    memcpy(buf + SNAP_HDR2, cb.base, cb.len);
    raft_free(cb.base);
    rl_put64(buf + 56, XXH3_64bits_withSeed(buf + SNAP_HDR2, len - SNAP_HDR2, XXH3_64bits(buf, 56)));

    int rv = rl_fs_replace(dir, "SNAPSHOT", buf, len);
    free(buf);
    return rv;
}

int rl_snapshot_load(const char *dir, struct rl_snapshot_desc *out, char *errmsg, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/SNAPSHOT", dir);
    memset(out, 0, sizeof *out);
    raft_configuration_init(&out->conf);
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv == -ENOENT)
        return 1;
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s: %s", path, strerror(-rv));
        return RLOG_EIO;
    }
    uint64_t size = 0;
    unsigned char *buf = NULL;
    size_t got = 0;
    int ret = RLOG_ECORRUPT;
    if (rl_fs_file_size(fd, &size) != 0 || size < SNAP_HDR || size > SNAP_HDR + SNAP_MAX_CONF)
        goto out;
    buf = malloc(size);
    if (!buf) {
        ret = RLOG_ENOMEM;
        goto out;
    }
    if (rl_fs_pread(fd, buf, size, 0, &got) != 0 || got != size)
        goto out;
    bool v2 = rl_get64(buf) == SNAP_MAGIC2;
    size_t hdr = v2 ? SNAP_HDR2 : SNAP_HDR;
    uint64_t conf_len = rl_get64(buf + 32);
    if ((!v2 && rl_get64(buf) != SNAP_MAGIC) || size < hdr || conf_len > size - hdr ||
        rl_pad8(conf_len) != size - hdr ||
        rl_get64(buf + hdr - 8) !=
            XXH3_64bits_withSeed(buf + hdr, size - hdr, XXH3_64bits(buf, hdr - 8)))
        goto out;
    out->index = rl_get64(buf + 8);
    out->term = rl_get64(buf + 16);
    out->conf_index = rl_get64(buf + 24);
    out->visible = rl_get64(buf + 40);
    out->reset_offset = v2 ? rl_get64(buf + 48) : RL_SNAPSHOT_NO_RESET;
    if (conf_decode(buf + hdr, conf_len, &out->conf) != 0)
        goto out;
    ret = 0;
out:
    if (ret == RLOG_ECORRUPT)
        snprintf(errmsg, errlen, "%s: damaged snapshot descriptor", path);
    free(buf);
    rl_fs_close(fd);
    return ret;
}

void rl_snapshot_desc_close(struct rl_snapshot_desc *d)
{
    raft_configuration_close(&d->conf);
}
