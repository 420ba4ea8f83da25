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

/* The filter's write lock: writes in normal mode and every mode change
 * take it exclusively; writes in degraded mode take it shared.
 */
extern pthread_rwlock_t livewatch_lock;

extern int service_start (void);
extern void service_stop (void);

#endif /* LIVEWATCH_SERVICE_H */
