/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: status documents, rendered as text or as JSON.
 *
 * lb and lbd answer --status by building one document of typed fields
 * and rendering it the way the reader asked, so that each value is
 * stated once and nothing is printed and then parsed back:
 *
 *   struct lb_status *d = lb_status_new ();
 *   struct lb_status *cl = lb_status_object (lb_status_array (d, "clients"),
 *                                            NULL);
 *   lb_status_str (cl, "name", "c1");
 *   lb_status_bool (cl, "connected", true);
 *   lb_status_layout (cl, "client {name}: {connected?up|down}\n");
 *   lb_status_render (d, LB_STATUS_JSON, stdout);
 *     -> {"clients":[{"name":"c1","connected":true}]}
 *   lb_status_render (d, LB_STATUS_TEXT, stdout);
 *     -> client c1: up
 *
 * A node is the document's root (an object), a nested object or array,
 * or a field.  Builders never fail visibly: out of memory, they return
 * NULL, every call on a NULL node does nothing, and lb_status_render
 * then reports the failure.  Not thread-safe; one document per thread.
 *
 * JSON: one object on one line, then a newline; keys and fields in the
 * order they were added; strings escaped as RFC 8259 requires (bytes
 * from 0x80 up pass through as they are).
 *
 * Text: an object with a layout (lb_status_layout) is written as its
 * layout says; an object without one as a line "KEY: VALUE" per field,
 * indented two spaces per level of nesting.  Then come its nested
 * objects and arrays, in order; a container writes no line of its own.
 */

#ifndef LIVEBACKUP_LB_STATUS_H
#define LIVEBACKUP_LB_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct lb_status;

enum lb_status_format {
  LB_STATUS_TEXT,
  LB_STATUS_JSON,
};

/* A new, empty document: its root object.  NULL if out of memory. */
extern struct lb_status *lb_status_new (void);
/* Free DOC (a root; NULL is fine) and every node in it. */
extern void lb_status_free (struct lb_status *doc);

/* The time a document's times are told against ("5 s ago"): when it
 * was made (lb_status_new), unless set here.  On the root DOC.
 */
extern void lb_status_set_now (struct lb_status *doc, uint64_t now);

/* Fields of object OBJ, each returning the new field.  KEY and string
 * values are copied.  In an array, KEY is ignored (pass NULL).  How
 * each type is written:
 *                           text                  JSON
 *   str, strf               as is                 string
 *   uint, int, bytes        decimal               number
 *   bool                    1 or 0                true or false
 *   time (seconds since     local time and how    number of seconds (0
 *   1970; 0: never)         long ago: "2026-12-   for never), and a
 *                           01 17:34:38 (5 s      member KEY_iso: ISO
 *                           ago)"; "never" for 0  8601 in UTC, or null
 *                           (lb_time.h)           for never
 *   size (bytes)            "512 bytes", "6.6     number of bytes
 *                           GiB", "212 MiB"
 *   rate (bytes per         "0 bytes/s", "1.5     number of bytes per
 *   second)                 MiB/s"                second
 *   seconds (a duration)    lb_duration: "1 min   number of seconds
 *                           5 s"
 *   percent (DONE of        "41.3%"; 100% only    number with one
 *   TOTAL; TOTAL 0: 100)    when DONE is TOTAL    decimal: 41.3
 * A layout chooses other words for a field with {KEY?...|...}.
 */
extern struct lb_status *lb_status_str (struct lb_status *obj,
                                        const char *key, const char *value);
extern struct lb_status *lb_status_strf (struct lb_status *obj,
                                         const char *key,
                                         const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
extern struct lb_status *lb_status_uint (struct lb_status *obj,
                                         const char *key, uint64_t value);
extern struct lb_status *lb_status_int (struct lb_status *obj,
                                        const char *key, int64_t value);
extern struct lb_status *lb_status_bool (struct lb_status *obj,
                                         const char *key, bool value);
extern struct lb_status *lb_status_bytes (struct lb_status *obj,
                                          const char *key, uint64_t bytes);
extern struct lb_status *lb_status_time (struct lb_status *obj,
                                         const char *key, uint64_t t);
extern struct lb_status *lb_status_size (struct lb_status *obj,
                                         const char *key, uint64_t bytes);
extern struct lb_status *lb_status_rate (struct lb_status *obj,
                                         const char *key,
                                         uint64_t bytes_per_s);
extern struct lb_status *lb_status_seconds (struct lb_status *obj,
                                            const char *key,
                                            uint64_t seconds);
extern struct lb_status *lb_status_percent (struct lb_status *obj,
                                            const char *key, uint64_t done,
                                            uint64_t total);

/* A nested object or array in OBJ under KEY (in an array: an element,
 * KEY NULL).  An object added to an object with KEY NULL is a group:
 * its fields are the parent's own in JSON, and in text it is a block of
 * its own (with its own layout, or as KEY: VALUE lines one level in).
 */
extern struct lb_status *lb_status_object (struct lb_status *obj,
                                           const char *key);
extern struct lb_status *lb_status_array (struct lb_status *obj,
                                          const char *key);

/* Leave FIELD out of JSON: a detail for people (a reason, an error
 * message) that programs have in other fields.  Returns FIELD.
 */
extern struct lb_status *lb_status_text_only (struct lb_status *field);

/* OBJ's text form, LAYOUT (kept, not copied: a string literal):
 *   {KEY}           the field's text
 *   {KEY?YES}       YES if the field is set (bool true, number not 0,
 *   {KEY?YES|NO}    string not empty), else NO (or nothing)
 *   {KEY=WORD?YES|NO}  YES if the field's text is WORD, else NO
 * YES and NO may hold {...} in turn; within them '|' and '}' cannot be
 * literal.  A KEY that OBJ lacks writes nothing and is not set.  Fields
 * the layout does not name are left out of the text.
 */
extern void lb_status_layout (struct lb_status *obj, const char *layout);

/* Write DOC to FP.  0, or -1: the document is incomplete (out of memory
 * while building it; errno ENOMEM) or FP had a write error.
 */
extern int lb_status_render (const struct lb_status *doc,
                             enum lb_status_format format, FILE *fp);

#endif /* LIVEBACKUP_LB_STATUS_H */
