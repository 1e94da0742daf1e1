/* Growable arrays: the one pattern every module needs. */
#ifndef RL_COMMON_GROW_H
#define RL_COMMON_GROW_H

#include <stdlib.h>

/* Room for one more element: returns items, reallocated to double the
 * capacity (`first` when empty) if n == *cap, or NULL on allocation failure
 * (items is then unchanged and still owned by the caller). */
static inline void *rl_grow(void *items, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return items;
    size_t c = *cap ? *cap * 2 : first;
    void *p = realloc(items, c * elem);
    if (p)
        *cap = c;
    return p;
}

#endif
