/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a hash index over an array the caller keeps.
 *
 * The index files element numbers (positions in the caller's array)
 * under 64-bit hashes of their keys, and gives back for a hash every
 * element filed under it.  It never sees the keys: the caller compares
 * them, so a collision costs one comparison, never a wrong answer, and
 * the array may move (realloc) without the index noticing.
 *
 *   struct lb_index ix = LB_INDEX_EMPTY;
 *   uint64_t h = lb_index_hash (LB_INDEX_HASH_START, key, keylen);
 *   size_t pos = 0, e;
 *   while (lb_index_next (&ix, h, &pos, &e))
 *     if (same_key (&array[e], key)) ... found ...
 *   if (lb_index_add (&ix, h, n) == -1) ... ENOMEM ...
 *   array[n++] = ...;
 *   lb_index_free (&ix);
 *
 * Open addressing with linear probing, never more than half full, 16
 * bytes a slot: with a hash that spreads, a look-up or an addition
 * costs a probe or two whatever the number of elements (lbd.conf's
 * whole-file checks, lb_config_whole.c, stay linear in the file's size
 * this way).  There is no removal.
 *
 * Why not libc's hsearch_r: its keys are strings, its size is fixed
 * when it is made, and its string hash keeps only the first few bytes,
 * so 10000 image paths under one folder (/srv/lbd/images/...) collide
 * and take 1.4 s to insert where this takes milliseconds.  tsearch
 * compares without a context pointer, so each entry would need its own
 * allocated copy of its key.
 */

#ifndef LIVEBACKUP_LB_INDEX_H
#define LIVEBACKUP_LB_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lb_index_slot;

struct lb_index {
  struct lb_index_slot *slot;
  size_t cap, n;                /* cap: 0 or a power of two */
};

#define LB_INDEX_EMPTY { NULL, 0, 0 }

/* FNV-1a, 64 bits: H continued over the N bytes at DATA; start with
 * LB_INDEX_HASH_START.  Fast and unkeyed: fit for keys that come from a
 * config's author, who has no reason to make them collide, not for keys
 * an attacker chooses.
 */
#define LB_INDEX_HASH_START UINT64_C (0xcbf29ce484222325)
extern uint64_t lb_index_hash (uint64_t h, const void *data, size_t n);

/* File element ELEM under HASH.  Returns 0, or -1 with errno ENOMEM
 * (the index is unchanged).  Adding an element twice files it twice.
 */
extern int lb_index_add (struct lb_index *ix, uint64_t hash, size_t elem);

/* The next element filed under HASH: start with *POS = 0 and call until
 * it returns false; each true return sets *ELEM.  Elements filed under
 * other hashes are never returned; the order is unspecified.  No
 * lb_index_add between the calls of one look-up.
 */
extern bool lb_index_next (const struct lb_index *ix, uint64_t hash,
                           size_t *pos, size_t *elem);

/* Free the slots and leave IX empty. */
extern void lb_index_free (struct lb_index *ix);

#endif /* LIVEBACKUP_LB_INDEX_H */
