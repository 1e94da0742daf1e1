/*
 * metrics_many — one Prometheus exposition for many logs
 * (rlog_metrics_text_many). The format wants each family's lines together,
 * under one HELP and one TYPE, so the logs' texts (metrics.c) are merged
 * family by family rather than concatenated: a scraper would refuse a
 * family that comes twice.
 */
#include <stdlib.h>
#include <string.h>

#include "liblog.h"
#include "node/api.h"

struct family {
    const char *name; /* into a log's text: up to the first space */
    size_t name_len;
    const char *head; /* its HELP and TYPE lines */
    size_t head_len;
    char *samples;    /* every log's samples, in order */
    size_t len, cap;
};

struct merged {
    struct family *f;
    unsigned n, cap;
    bool oom;
};

static void append(struct merged *m, struct family *f, const char *p, size_t n)
{
    if (f->len + n > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < f->len + n)
            cap *= 2;
        char *grown = realloc(f->samples, cap);
        if (!grown) {
            m->oom = true;
            return;
        }
        f->samples = grown, f->cap = cap;
    }
    memcpy(f->samples + f->len, p, n);
    f->len += n;
}

/* The family named by a "# HELP name ..." line, found or added. */
static struct family *family_of(struct merged *m, const char *name, size_t n, const char *head)
{
    for (unsigned i = 0; i < m->n; i++)
        if (m->f[i].name_len == n && !memcmp(m->f[i].name, name, n))
            return &m->f[i];
    if (m->n == m->cap) {
        unsigned cap = m->cap ? 2 * m->cap : 64;
        struct family *grown = realloc(m->f, cap * sizeof *grown);
        if (!grown) {
            m->oom = true;
            return NULL;
        }
        m->f = grown, m->cap = cap;
    }
    m->f[m->n] = (struct family){.name = name, .name_len = n, .head = head};
    return &m->f[m->n++];
}

/* Adds one log's text: each "# HELP" starts a family; its "# TYPE" line
 * belongs to the head, every other line is a sample. */
static void add_text(struct merged *m, const char *text, size_t len)
{
    struct family *cur = NULL;
    const char *end = text + len;
    for (const char *line = text; line < end && !m->oom;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *next = nl ? nl + 1 : end;
        if (!strncmp(line, "# HELP ", 7)) {
            const char *name = line + 7;
            const char *sp = memchr(name, ' ', (size_t)(next - name));
            size_t n = sp ? (size_t)(sp - name) : (size_t)(next - name);
            cur = family_of(m, name, n, line);
            if (cur && cur->head == line)
                cur->head_len = (size_t)(next - line);
        } else if (!strncmp(line, "# TYPE ", 7)) {
            if (cur && cur->head + cur->head_len == line)
                cur->head_len += (size_t)(next - line); /* the first log's, after its HELP */
        } else if (cur) {
            append(m, cur, line, (size_t)(next - line));
        }
        line = next;
    }
}

static int render(struct merged *m, char **text, size_t *len)
{
    size_t total = 1;
    for (unsigned i = 0; i < m->n; i++)
        total += m->f[i].head_len + m->f[i].len;
    char *out = malloc(total), *p = out;
    if (!out)
        return RLOG_ENOMEM;
    for (unsigned i = 0; i < m->n; i++) {
        memcpy(p, m->f[i].head, m->f[i].head_len);
        p += m->f[i].head_len;
        if (m->f[i].len)
            memcpy(p, m->f[i].samples, m->f[i].len);
        p += m->f[i].len;
    }
    *p = '\0';
    *text = out;
    *len = (size_t)(p - out);
    return 0;
}

int rlog_metrics_text_many(rlog *const *logs, unsigned n, char **text, size_t *len)
{
    if ((!logs && n > 0) || !text || !len)
        return rl_fail(RLOG_EINVAL, "metrics: NULL argument");
    char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    struct merged m = {0};
    int rv = texts && lens ? 0 : RLOG_ENOMEM;
    for (unsigned i = 0; i < n && rv == 0; i++) {
        rv = rlog_metrics_text(logs[i], &texts[i], &lens[i]);
        if (rv == RLOG_ECLOSED)
            rv = 0, texts[i] = NULL; /* closing: left out */
    }
    for (unsigned i = 0; i < n && rv == 0; i++)
        if (texts[i])
            add_text(&m, texts[i], lens[i]);
    if (rv == 0)
        rv = m.oom ? RLOG_ENOMEM : render(&m, text, len);
    for (unsigned i = 0; i < m.n; i++)
        free(m.f[i].samples);
    free(m.f);
    for (unsigned i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    if (rv == RLOG_ENOMEM)
        rl_fail(rv, "metrics: out of memory");
    return rv;
}
