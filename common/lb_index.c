/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a hash index over an array the caller keeps.  See
 * lb_index.h.
 */

#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "lb_index.h"

struct lb_index_slot {
  uint64_t hash;
  size_t elem;                  /* element + 1; 0: an empty slot */
};

uint64_t
lb_index_hash (uint64_t h, const void *data, size_t n)
{
  const unsigned char *b = data;
  size_t i;

  for (i = 0; i < n; i++)
    h = (h ^ b[i]) * UINT64_C (0x100000001b3);
  return h;
}

/* Put S in the first empty slot of its probe sequence in SLOT (CAP
 * slots, a power of two, at least one empty).
 */
static void
lb_index_place (struct lb_index_slot *slot, size_t cap,
                const struct lb_index_slot *s)
{
  size_t pos;

  for (pos = s->hash; slot[pos & (cap - 1)].elem; pos++)
    ;
  slot[pos & (cap - 1)] = *s;
}

int
lb_index_add (struct lb_index *ix, uint64_t hash, size_t elem)
{
  const struct lb_index_slot s = { .hash = hash, .elem = elem + 1 };
  size_t i;

  if (elem == SIZE_MAX) {
    errno = ENOMEM;
    return -1;
  }
  /* At most half full: every probe sequence ends at an empty slot, and
   * soon.
   */
  if (2 * (ix->n + 1) > ix->cap) {
    size_t ncap = ix->cap ? ix->cap * 2 : 16;
    struct lb_index_slot *ns;

    if (ncap < ix->cap || (ns = calloc (ncap, sizeof *ns)) == NULL) {
      errno = ENOMEM;
      return -1;
    }
    for (i = 0; i < ix->cap; i++)
      if (ix->slot[i].elem)
        lb_index_place (ns, ncap, &ix->slot[i]);
    free (ix->slot);
    ix->slot = ns;
    ix->cap = ncap;
  }
  lb_index_place (ix->slot, ix->cap, &s);
  ix->n++;
  return 0;
}

bool
lb_index_next (const struct lb_index *ix, uint64_t hash, size_t *pos,
               size_t *elem)
{
  if (ix->cap == 0)
    return false;
  for (;;) {
    const struct lb_index_slot *s = &ix->slot[(hash + *pos) & (ix->cap - 1)];
    (*pos)++;
    if (s->elem == 0)
      return false;
    if (s->hash == hash) {
      *elem = s->elem - 1;
      return true;
    }
  }
}

void
lb_index_free (struct lb_index *ix)
{
  free (ix->slot);
  ix->slot = NULL;
  ix->cap = ix->n = 0;
}
