/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: sending and receiving protocol messages.  See lb_wire.h. */

#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/uio.h>

#include "lb_wire.h"

int
lbw_send (struct lb_conn *c, const struct lbp_msg *m, const void *payload,
          size_t payload_len)
{
  uint8_t head[LBP_HDR_SIZE + 64];
  struct iovec iov[2];
  size_t n = lbp_encode (m, payload_len, head);

  iov[0].iov_base = head;
  iov[0].iov_len = n;
  iov[1].iov_base = (void *) payload;
  iov[1].iov_len = payload_len;
  return lb_conn_sendv (c, iov, payload_len ? 2 : 1, -1);
}

void
lbw_send_error (struct lb_conn *c, uint32_t code, const char *text)
{
  struct lbp_msg m = { .type = LBP_ERROR, .code = code };
  size_t len = strlen (text);

  if (len > LBP_MAX_TEXT)
    len = LBP_MAX_TEXT;
  lbw_send (c, &m, text, len);
}

enum lbw_recv_outcome
lbw_recv (struct lb_conn *c, struct lbp_msg *m, uint8_t **buf, size_t *cap,
          int timeout_ms, const char **why)
{
  uint8_t hdr[LBP_HDR_SIZE];
  uint16_t type;
  uint32_t len;
  ssize_t n;

  *why = NULL;
  if (timeout_ms >= 0 && !lb_conn_pending (c)) {
    struct pollfd pfd = { .fd = lb_conn_fd (c), .events = POLLIN };
    int r = poll (&pfd, 1, timeout_ms);
    if (r == 0) {
      *why = "timed out waiting for the peer";
      return LBW_RECV_BROKEN;
    }
  }
  /* The first read tells an orderly end (between messages) from a
   * message cut short.
   */
  do
    n = lb_conn_recv (c, hdr, sizeof hdr);
  while (n == LB_CONN_AGAIN);
  if (n == 0)
    return LBW_RECV_END;
  if (n < 0) {
    *why = lb_conn_error (c);
    return LBW_RECV_BROKEN;
  }
  if ((size_t) n < sizeof hdr
      && lb_conn_recv_all (c, hdr + n, sizeof hdr - n, 60000) == -1) {
    *why = "connection ended inside a message header";
    return LBW_RECV_BROKEN;
  }
  if ((*why = lbp_check_header (hdr, &type, &len)) != NULL)
    return LBW_RECV_BAD;
  /* Bounded by lbp_check_header: at most LBP_MAX_BODY. */
  if (*cap < len || *buf == NULL) {
    size_t want = len > 65536 ? len : 65536;
    void *p = realloc (*buf, want);
    if (p == NULL) {
      *why = "out of memory";
      return LBW_RECV_BROKEN;
    }
    *buf = p;
    *cap = want;
  }
  if (len > 0 && lb_conn_recv_all (c, *buf, len, -1) == -1) {
    *why = "connection ended inside a message";
    return LBW_RECV_BROKEN;
  }
  if ((*why = lbp_decode (type, *buf, len, m)) != NULL)
    return LBW_RECV_BAD;
  return LBW_RECV_MSG;
}
