/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: bytes — byte order, the all-zero test, powers of two.
 *
 * The one place for these.  The wire protocol (lb_proto.h) is
 * little-endian, NBD (lbd/nbd.h) big-endian; both use the helpers here,
 * which take unaligned pointers.
 */

#ifndef LIVEBACKUP_LB_BYTES_H
#define LIVEBACKUP_LB_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* --- little-endian --- */
static inline void
lb_put_le16 (uint8_t *p, uint16_t v)
{
  p[0] = v; p[1] = v >> 8;
}
static inline void
lb_put_le32 (uint8_t *p, uint32_t v)
{
  p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}
static inline void
lb_put_le64 (uint8_t *p, uint64_t v)
{
  lb_put_le32 (p, (uint32_t) v);
  lb_put_le32 (p + 4, (uint32_t) (v >> 32));
}
static inline uint16_t
lb_get_le16 (const uint8_t *p)
{
  return p[0] | (uint16_t) (p[1] << 8);
}
static inline uint32_t
lb_get_le32 (const uint8_t *p)
{
  return p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}
static inline uint64_t
lb_get_le64 (const uint8_t *p)
{
  return lb_get_le32 (p) | (uint64_t) lb_get_le32 (p + 4) << 32;
}

/* --- big-endian --- */
static inline void
lb_put_be16 (uint8_t *p, uint16_t v)
{
  p[0] = v >> 8; p[1] = v;
}
static inline void
lb_put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static inline void
lb_put_be64 (uint8_t *p, uint64_t v)
{
  lb_put_be32 (p, (uint32_t) (v >> 32));
  lb_put_be32 (p + 4, (uint32_t) v);
}
static inline uint16_t
lb_get_be16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8) | p[1];
}
static inline uint32_t
lb_get_be32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
         | (uint32_t) p[2] << 8 | p[3];
}
static inline uint64_t
lb_get_be64 (const uint8_t *p)
{
  return (uint64_t) lb_get_be32 (p) << 32 | lb_get_be32 (p + 4);
}

/* Are all LEN bytes at P zero?  (LEN 0: yes.)  The first byte is tested
 * alone, then the buffer against itself shifted by one: memcmp runs at
 * memory speed and needs no table of zeroes.
 */
static inline bool
lb_is_zero (const void *p, size_t len)
{
  const uint8_t *b = p;
  return len == 0 || (b[0] == 0 && memcmp (b, b + 1, len - 1) == 0);
}

/* Is V a power of two (and not 0)? */
static inline bool
lb_is_pow2 (uint64_t v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

#endif /* LIVEBACKUP_LB_BYTES_H */
