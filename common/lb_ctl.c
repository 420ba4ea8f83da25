/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: control sockets.  See lb_ctl.h. */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "lb_array.h"
#include "lb_ctl.h"
#include "lb_err.h"
#include "lb_time.h"

/* An answer longer than this is not a status document. */
#define LB_CTL_ANSWER_MAX (16u << 20)

static_assert (sizeof ((struct sockaddr_un *) 0)->sun_path
               == LB_CTL_PATH_MAX, "LB_CTL_PATH_MAX is sun_path's size");

int
lb_ctl_path (const char *path, char out[LB_CTL_PATH_MAX], char *err,
             size_t errlen)
{
  char cwd[4096];
  int n;

  if (path[0] == '/')
    n = snprintf (out, LB_CTL_PATH_MAX, "%s", path);
  else if (getcwd (cwd, sizeof cwd) == NULL) {
    lb_errf (err, errlen, "%s: working folder: %s", path, strerror (errno));
    return -1;
  }
  else
    n = snprintf (out, LB_CTL_PATH_MAX, "%s/%s", cwd, path);
  if (n < 0 || n >= LB_CTL_PATH_MAX) {
    lb_errf (err, errlen, "%s: path too long for a socket (%d bytes at "
             "most)", path, LB_CTL_PATH_MAX - 1);
    return -1;
  }
  return 0;
}

int
lb_ctl_listen (struct lb_ctl *ctl, const char *path, char *err,
               size_t errlen)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct stat st;
  mode_t old;
  int r;

  ctl->fd = -1;
  if (lb_ctl_path (path, ctl->path, err, errlen) == -1)
    return -1;
  memcpy (sun.sun_path, ctl->path, sizeof sun.sun_path);
  ctl->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (ctl->fd == -1) {
    lb_errf (err, errlen, "%s: socket: %s", ctl->path, strerror (errno));
    return -1;
  }
  unlink (ctl->path);
  old = umask (0177);
  r = bind (ctl->fd, (struct sockaddr *) &sun, sizeof sun);
  umask (old);
  if (r == -1 || listen (ctl->fd, 8) == -1
      || lstat (ctl->path, &st) == -1) {
    lb_errf (err, errlen, "%s: %s", ctl->path, strerror (errno));
    close (ctl->fd);
    ctl->fd = -1;
    return -1;
  }
  ctl->dev = st.st_dev;
  ctl->ino = st.st_ino;
  return 0;
}

/* Send LEN bytes of BUF on FD (whose send timeout bounds each part). */
static void
lb_ctl_send_all (int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    buf += n;
    len -= n;
  }
}

void
lb_ctl_serve_args (struct lb_ctl *ctl, lb_ctl_build_args_fn *build,
                   void *arg)
{
  struct timeval tv = { .tv_sec = 1 };
  enum lb_status_format format;
  struct lb_status *doc;
  char req[LB_CTL_ARGS_MAX + 32] = "", *buf = NULL, *args, *nl;
  bool want_verdict;
  size_t len = 0;
  FILE *mem;
  ssize_t n;
  int fd, verdict = 0;

  fd = accept4 (ctl->fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd == -1)
    return;
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  n = recv (fd, req, sizeof req - 1, 0);
  if (n > 0)
    req[n] = '\0';
  if ((nl = strchr (req, '\n')) != NULL)
    *nl = '\0';
  format = strncmp (req, "json", 4) == 0 ? LB_STATUS_JSON : LB_STATUS_TEXT;
  want_verdict = strncmp (req + 4, " verdict", 8) == 0;
  args = req + (strlen (req) < 4 ? strlen (req) : 4);
  if (want_verdict)
    args += 8;
  args += *args == ' ';

  doc = lb_status_new ();
  if (doc)
    verdict = build (doc, args, arg);
  mem = open_memstream (&buf, &len);
  if (mem) {
    int r;
    if (want_verdict)
      fprintf (mem, "verdict %d\n", verdict & 255);
    r = lb_status_render (doc, format, mem);
    if (fclose (mem) == 0 && r == 0)
      lb_ctl_send_all (fd, buf, len);
    free (buf);
  }
  lb_status_free (doc);
  close (fd);
}

/* lb_ctl_serve's builder, under lb_ctl_serve_args. */
struct lb_ctl_plain {
  lb_ctl_build_fn *build;
  void *arg;
};

static int
lb_ctl_build_plain (struct lb_status *doc, const char *args, void *arg)
{
  struct lb_ctl_plain *p = arg;

  (void) args;
  return p->build (doc, p->arg);
}

void
lb_ctl_serve (struct lb_ctl *ctl, lb_ctl_build_fn *build, void *arg)
{
  struct lb_ctl_plain p = { build, arg };

  lb_ctl_serve_args (ctl, lb_ctl_build_plain, &p);
}

bool
lb_ctl_holds (const struct lb_ctl *ctl)
{
  struct stat st;

  return ctl->fd != -1 && lstat (ctl->path, &st) == 0
         && st.st_dev == ctl->dev && st.st_ino == ctl->ino;
}

void
lb_ctl_close (struct lb_ctl *ctl)
{
  bool ours = lb_ctl_holds (ctl);

  if (ctl->fd == -1)
    return;
  close (ctl->fd);
  ctl->fd = -1;
  if (ours)
    unlink (ctl->path);
}

/* A non-blocking connection to the socket at PATH, or -1 (errno). */
static int
lb_ctl_connect (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd, e;

  if (strlen (path) >= sizeof sun.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy (sun.sun_path, path, strlen (path));
  /* Non-blocking: a daemon that is stopped with its queue full must not
   * hold us in connect.
   */
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1 || connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    e = errno;
    if (fd != -1)
      close (fd);
    errno = e;
    return -1;
  }
  return fd;
}

bool
lb_ctl_in_use (const char *path)
{
  int fd = lb_ctl_connect (path);

  if (fd == -1)
    return errno == EAGAIN;
  close (fd);
  return true;
}

/* Read FD to its end into *BUF (LEN bytes, CAP allocated) by DEADLINE
 * (lb_now_ms).  0, or -1 with ERR.
 */
static int
lb_ctl_read_all (int fd, uint64_t deadline, int timeout_ms, char **buf,
                 size_t *len, size_t *cap, char *err, size_t errlen)
{
  for (;;) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    uint64_t now = lb_now_ms ();
    ssize_t n;

    if (now >= deadline || poll (&pfd, 1, deadline - now) == 0) {
      lb_errf (err, errlen, "no answer within %g s (is it stopped?)",
               timeout_ms / 1000.0);
      return -1;
    }
    if (lb_array_grow (buf, cap, *len + 4096, 1) == -1) {
      lb_errf (err, errlen, "out of memory");
      return -1;
    }
    n = read (fd, *buf + *len, *cap - *len);
    if (n == 0)
      return 0;
    if (n == -1 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n == -1) {
      lb_errf (err, errlen, "%s", strerror (errno));
      return -1;
    }
    *len += n;
    if (*len > LB_CTL_ANSWER_MAX) {
      lb_errf (err, errlen, "an answer of more than %u bytes",
               LB_CTL_ANSWER_MAX);
      return -1;
    }
  }
}

/* Take the verdict line off the LEN bytes of answer at BUF into
 * *VERDICT (-1 if there is none); returns the bytes it took.
 */
static size_t
lb_ctl_verdict (const char *buf, size_t len, int *verdict)
{
  const char *nl = memchr (buf, '\n', len);
  char line[16];
  int n, v;

  *verdict = -1;
  if (nl == NULL || (size_t) (nl - buf) >= sizeof line)
    return 0;
  memcpy (line, buf, nl - buf);
  line[nl - buf] = '\0';
  if (sscanf (line, "verdict %d%n", &v, &n) != 1 || line[n] != '\0'
      || v < 0 || v > 255)
    return 0;
  *verdict = v;
  return nl + 1 - buf;
}

enum lb_ctl_answer
lb_ctl_ask (const char *path, enum lb_status_format format, int timeout_ms,
            FILE *out, int *verdict, char *err, size_t errlen)
{
  return lb_ctl_ask_args (path, format, NULL, timeout_ms, out, verdict, err,
                          errlen);
}

enum lb_ctl_answer
lb_ctl_ask_args (const char *path, enum lb_status_format format,
                 const char *args, int timeout_ms, FILE *out, int *verdict,
                 char *err, size_t errlen)
{
  const char *req = format == LB_STATUS_JSON ? "json" : "text";
  uint64_t deadline = lb_now_ms () + timeout_ms;
  enum lb_ctl_answer r = LB_CTL_SILENT;
  char why[256], line[LB_CTL_ARGS_MAX + 32], *buf = NULL;
  size_t len = 0, cap = 0, skip = 0;
  int fd, e;

  if (args && strlen (args) > LB_CTL_ARGS_MAX) {
    lb_errf (err, errlen, "%s: request too long", path);
    return LB_CTL_UNREACHED;
  }
  snprintf (line, sizeof line, "%s%s%s%s\n", req, verdict ? " verdict" : "",
            args && *args ? " " : "", args ? args : "");
  fd = lb_ctl_connect (path);
  if (fd == -1) {
    e = errno;
    if (e == ENAMETOOLONG)
      lb_errf (err, errlen, "%s: path too long for a socket", path);
    else
      lb_errf (err, errlen, "%s: %s%s", path,
               e == EAGAIN ? "no answer (is it stopped?): " : "",
               strerror (e));
    errno = e;
    return e == EAGAIN ? LB_CTL_SILENT : LB_CTL_UNREACHED;
  }
  if (send (fd, line, strlen (line), MSG_NOSIGNAL) != (ssize_t) strlen (line))
    lb_errf (err, errlen, "%s: %s", path, strerror (errno));
  else if (lb_ctl_read_all (fd, deadline, timeout_ms, &buf, &len, &cap, why,
                            sizeof why) == -1)
    lb_errf (err, errlen, "%s: %s", path, why);
  else if (len == 0)
    lb_errf (err, errlen, "%s: an empty answer", path);
  else {
    if (verdict)
      skip = lb_ctl_verdict (buf, len, verdict);
    fwrite (buf + skip, 1, len - skip, out);
    r = LB_CTL_ANSWERED;
  }
  free (buf);
  close (fd);
  return r;
}
