/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the service thread.
 *
 * One thread, started in after_fork, that carries out the consumer's
 * requests (barrier, degrade, resume) with the write lock held, and that
 * degrades the channel when the consumer dies in normal mode.  Requests
 * go through a thread rather than being done by the consumer itself so
 * that the consumer never holds a lock that writes wait on.
 */

#ifndef LIVEWATCH_SERVICE_H
#define LIVEWATCH_SERVICE_H

#include <pthread.h>

/* The filter's lock: every write holds it shared until it has recorded
 * itself (capture.h); the service thread takes it exclusively for
 * barriers and the mode changes the consumer asks for.
 */
extern pthread_rwlock_t livewatch_lock;

extern int service_start (void);
extern void service_stop (void);

#endif /* LIVEWATCH_SERVICE_H */
