/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of status documents (common/lb_status.h) and control
 * sockets (common/lb_ctl.h): every type in text and in JSON, escaping,
 * nesting and groups, layouts, failures, and the socket's protocol,
 * time limit and clean-up.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "lb_ctl.h"
#include "lb_status.h"
#include "tap.h"

/* DOC rendered in FORMAT, malloc'd; NULL if rendering failed. */
static char *
render (const struct lb_status *doc, enum lb_status_format format)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);
  int r;

  if (fp == NULL)
    return NULL;
  r = lb_status_render (doc, format, fp);
  fclose (fp);
  if (r == -1) {
    free (buf);
    return NULL;
  }
  return buf;
}

/* Does DOC render in FORMAT as exactly WANT?  Shows what it got if not. */
static bool
renders (const struct lb_status *doc, enum lb_status_format format,
         const char *want)
{
  char *got = render (doc, format);
  bool same = got && strcmp (got, want) == 0;

  if (!same)
    printf ("# want: %s# got:  %s", want, got ? got : "(failed)\n");
  free (got);
  return same;
}

static void
test_types (void)
{
  struct lb_status *d = lb_status_new ();

  lb_status_str (d, "s", "text");
  lb_status_strf (d, "f", "%016llx", 0xd67c68da36c0403dull);
  lb_status_uint (d, "u", UINT64_MAX);
  lb_status_int (d, "i", -42);
  lb_status_bool (d, "yes", true);
  lb_status_bool (d, "no", false);
  lb_status_bytes (d, "b", 16777216);
  lb_status_time (d, "t", 1796146478);
  lb_status_time (d, "never", 0);
  lb_status_size (d, "z", 7088373350);
  lb_status_rate (d, "r", 222298112);
  lb_status_seconds (d, "d", 3725);
  lb_status_percent (d, "p", 413, 1000);
  lb_status_set_now (d, 1796146478 + 65);
  tap_ok (renders (d, LB_STATUS_JSON,
                   "{\"s\":\"text\",\"f\":\"d67c68da36c0403d\","
                   "\"u\":18446744073709551615,\"i\":-42,\"yes\":true,"
                   "\"no\":false,\"b\":16777216,\"t\":1796146478,"
                   "\"t_iso\":\"2026-12-01T17:34:38Z\","
                   "\"never\":0,\"never_iso\":null,\"z\":7088373350,"
                   "\"r\":222298112,\"d\":3725,\"p\":41.3}\n"),
          "every type in JSON, in the order added, on one line; times "
          "with their ISO 8601 twin");
  tap_ok (renders (d, LB_STATUS_TEXT,
                   "s: text\nf: d67c68da36c0403d\nu: 18446744073709551615\n"
                   "i: -42\nyes: 1\nno: 0\nb: 16777216\n"
                   "t: 2026-12-01 17:34:38 (1 min 5 s ago)\nnever: never\n"
                   "z: 6.6 GiB\nr: 212 MiB/s\nd: 1 h 2 min\np: 41.3%\n"),
          "every type in text: times in local time and how long ago, 0 is "
          "never; sizes, rates and durations for people");
  lb_status_free (d);

  d = lb_status_new ();
  lb_status_size (d, "z0", 0);
  lb_status_size (d, "z1", 1023);
  lb_status_size (d, "z2", 1024);
  lb_status_size (d, "z3", 1048575);
  lb_status_size (d, "z4", UINT64_MAX);
  lb_status_rate (d, "r", 512);
  lb_status_percent (d, "p0", 0, 0);
  lb_status_percent (d, "p1", 9999, 10000);
  lb_status_percent (d, "p2", 12, 10);
  lb_status_percent (d, "p3", UINT64_MAX - 1, UINT64_MAX);
  lb_status_time (d, "ahead", 1796146478 + 10);
  lb_status_set_now (d, 1796146478);
  tap_ok (renders (d, LB_STATUS_TEXT,
                   "z0: 0 bytes\nz1: 1023 bytes\nz2: 1.0 KiB\n"
                   "z3: 1023 KiB\nz4: 15.9 EiB\nr: 512 bytes/s\n"
                   "p0: 100.0%\np1: 99.9%\np2: 100.0%\np3: 99.9%\n"
                   "ahead: 2026-12-01 17:34:48 (in 10 s)\n"),
          "sizes round down and change unit at 1024; 100%% only when done; "
          "a time ahead of the document's is 'in'");
  lb_status_free (d);

  d = lb_status_new ();
  tap_ok (renders (d, LB_STATUS_JSON, "{}\n"), "an empty document: {}");
  tap_ok (renders (d, LB_STATUS_TEXT, ""), "... and no text");
  lb_status_free (d);
}

static void
test_escaping (void)
{
  struct lb_status *d = lb_status_new ();

  lb_status_str (d, "q\"k", "a \"quoted\" \\ back\\slash");
  lb_status_str (d, "ctl", "tab\tnl\n\001\037 del\177");
  lb_status_str (d, "utf8", "caf\xc3\xa9");
  lb_status_str (d, "null", NULL);
  tap_ok (renders (d, LB_STATUS_JSON,
                   "{\"q\\\"k\":\"a \\\"quoted\\\" \\\\ back\\\\slash\","
                   "\"ctl\":\"tab\\u0009nl\\u000a\\u0001\\u001f del\177\","
                   "\"utf8\":\"caf\xc3\xa9\",\"null\":\"\"}\n"),
          "keys and strings escaped: quote, backslash, controls; UTF-8 "
          "and DEL as they are; a NULL string is empty");
  lb_status_free (d);
}

static void
test_nesting (void)
{
  struct lb_status *d = lb_status_new ();
  struct lb_status *a, *o, *g;

  lb_status_uint (d, "top", 1);
  a = lb_status_array (d, "list");
  o = lb_status_object (a, NULL);
  lb_status_str (o, "name", "one");
  lb_status_array (o, "empty");
  o = lb_status_object (a, "ignored in an array");
  lb_status_str (o, "name", "two");
  lb_status_object (o, "inner");
  a = lb_status_array (d, "numbers");
  lb_status_uint (a, NULL, 7);
  lb_status_uint (a, "ignored", 8);
  g = lb_status_object (d, NULL);
  lb_status_uint (g, "grouped", 2);
  lb_status_bool (lb_status_object (g, "deep"), "x", true);
  lb_status_uint (d, "last", 3);
  tap_ok (renders (d, LB_STATUS_JSON,
                   "{\"top\":1,\"list\":[{\"name\":\"one\",\"empty\":[]},"
                   "{\"name\":\"two\",\"inner\":{}}],\"numbers\":[7,8],"
                   "\"grouped\":2,\"deep\":{\"x\":true},\"last\":3}\n"),
          "arrays, objects, empty ones; a group's fields are its parent's");
  tap_ok (renders (d, LB_STATUS_TEXT,
                   "top: 1\n"
                   "    name: one\n"
                   "    name: two\n"
                   "  numbers: 7\n  numbers: 8\n"
                   "  grouped: 2\n"
                   "    x: 1\n"
                   "last: 3\n"),
          "text: KEY: VALUE, two spaces more per level, containers "
          "without lines of their own");
  lb_status_free (d);
}

static void
test_layouts (void)
{
  struct lb_status *d = lb_status_new ();
  struct lb_status *c, *x;

  lb_status_uint (d, "unit", 1);
  lb_status_bool (d, "up", true);
  lb_status_bool (d, "down", false);
  lb_status_str (d, "word", "last-consistent");
  lb_status_str (d, "empty", "");
  lb_status_uint (d, "n", 1);
  lb_status_uint (d, "zero", 0);
  lb_status_time (d, "when", 1796146478);
  lb_status_text_only (lb_status_str (d, "why", "a reason"));
  lb_status_uint (d, "json_only", 9);
  lb_status_layout (d,
    "unit {unit}: {up?up|down}, {down?up|down}{down?, never shown}\n"
    "{word=last-consistent?kept since {when}|live}; {word=live?no|yes}\n"
    "{n} reader{n=1?|s}, {zero} reader{zero=1?|s}\n"
    "{empty?not empty|empty}, {missing}[{missing?set|unset}]"
    "{missing=x?x|not x}\n"
    "{up?{down?both|only up, {n=1?and {unit}|never}}}\n"
    "why: {why}\n"
    "lone | and } and ? stay\n");
  c = lb_status_object (d, NULL);
  lb_status_str (c, "grouped", "g");
  x = lb_status_object (lb_status_array (d, "items"), NULL);
  lb_status_uint (x, "id", 5);
  lb_status_layout (x, "  item {id}\n");
  lb_status_set_now (d, 1796146478 + 5);
  tap_ok (renders (d, LB_STATUS_TEXT,
                   "unit 1: up, down\n"
                   "kept since 2026-12-01 17:34:38 (5 s ago); yes\n"
                   "1 reader, 0 readers\n"
                   "empty, [unset]not x\n"
                   "only up, and 1\n"
                   "why: a reason\n"
                   "lone | and } and ? stay\n"
                   "  grouped: g\n"
                   "  item 5\n"),
          "layout: values, conditions, comparisons, nesting, missing "
          "keys; unnamed fields left out; then groups and containers");
  tap_ok (renders (d, LB_STATUS_JSON,
                   "{\"unit\":1,\"up\":true,\"down\":false,"
                   "\"word\":\"last-consistent\",\"empty\":\"\",\"n\":1,"
                   "\"zero\":0,\"when\":1796146478,"
                   "\"when_iso\":\"2026-12-01T17:34:38Z\",\"json_only\":9,"
                   "\"grouped\":\"g\",\"items\":[{\"id\":5}]}\n"),
          "JSON ignores layouts and leaves text-only fields out");
  lb_status_free (d);

  d = lb_status_new ();
  lb_status_str (d, "k", "v");
  lb_status_layout (d, "a {k?b {k");
  tap_ok (renders (d, LB_STATUS_TEXT, "a b "),
          "an unterminated layout ends where it ends");
  lb_status_free (d);
}

static void
test_failures (void)
{
  struct lb_status *d = lb_status_new ();
  struct lb_status *f;

  tap_ok (lb_status_str (NULL, "k", "v") == NULL
          && lb_status_object (NULL, "k") == NULL
          && lb_status_text_only (NULL) == NULL,
          "builders on NULL do nothing");
  lb_status_layout (NULL, "x");
  f = lb_status_uint (d, "f", 1);
  tap_ok (lb_status_uint (f, "g", 2) == NULL, "a field holds no fields");
  errno = 0;
  tap_ok (render (d, LB_STATUS_JSON) == NULL && errno == EINVAL,
          "... and the document then fails to render (EINVAL)");
  lb_status_free (d);

  d = lb_status_new ();
  tap_ok (lb_status_uint (d, NULL, 1) == NULL,
          "a field in an object needs a key");
  tap_ok (render (d, LB_STATUS_TEXT) == NULL, "... or the document fails");
  lb_status_free (d);
  lb_status_free (NULL);
  tap_ok (lb_status_render (NULL, LB_STATUS_TEXT, stdout) == -1
          && errno == ENOMEM,
          "no document (lb_status_new failed) renders as ENOMEM");
}

/* --- control sockets ------------------------------------------------- */

static char dir[] = "/tmp/test-status.XXXXXX";

static int
build (struct lb_status *doc, void *arg)
{
  lb_status_str (doc, "who", arg);
  lb_status_layout (doc, "who: {who}\n");
  return 7;
}

struct server {
  struct lb_ctl *ctl;
  int requests;
};

/* Serve S->requests requests, waiting for each. */
static void *
serve (void *arg)
{
  struct server *s = arg;
  int i;

  for (i = 0; i < s->requests; i++) {
    fd_set rd;
    FD_ZERO (&rd);
    FD_SET (s->ctl->fd, &rd);
    select (s->ctl->fd + 1, &rd, NULL, NULL, NULL);
    lb_ctl_serve (s->ctl, build, "lb \"1\"");
  }
  return NULL;
}

/* Ask PATH (for its verdict too, with VERDICT); the answer, malloc'd
 * (NULL unless answered), *A the outcome.
 */
static char *
ask_verdict (const char *path, enum lb_status_format format, int timeout_ms,
             enum lb_ctl_answer *a, int *verdict, char *err, size_t errlen)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);

  *a = lb_ctl_ask (path, format, timeout_ms, fp, verdict, err, errlen);
  fclose (fp);
  if (*a != LB_CTL_ANSWERED) {
    free (buf);
    return NULL;
  }
  return buf;
}

static char *
ask (const char *path, enum lb_status_format format, int timeout_ms,
     enum lb_ctl_answer *a, char *err, size_t errlen)
{
  return ask_verdict (path, format, timeout_ms, a, NULL, err, errlen);
}

static void
test_ctl (void)
{
  char path[LB_CTL_PATH_MAX], abs[LB_CTL_PATH_MAX], err[512], *got;
  char cwd[4096], longp[200];
  struct lb_ctl ctl, other;
  struct server srv = { .ctl = &ctl, .requests = 5 };  /* in_use's too */
  enum lb_ctl_answer a;
  pthread_t th;
  struct stat st;
  int fd, verdict = -2;

  if (mkdtemp (dir) == NULL) {
    tap_ok (0, "mkdtemp: %s", strerror (errno));
    return;
  }
  snprintf (path, sizeof path, "%s/s.ctl", dir);

  tap_ok (getcwd (cwd, sizeof cwd) && lb_ctl_path ("x.ctl", abs, err,
                                                   sizeof err) == 0
          && strncmp (abs, cwd, strlen (cwd)) == 0
          && strcmp (abs + strlen (cwd), "/x.ctl") == 0,
          "a relative path is taken from the working folder: %s", abs);
  memset (longp, 'a', sizeof longp - 1);
  longp[0] = '/';
  longp[sizeof longp - 1] = '\0';
  tap_ok (lb_ctl_path (longp, abs, err, sizeof err) == -1
          && strstr (err, "too long") != NULL,
          "a path too long for a socket is refused: %.40s...", err);

  got = ask (path, LB_STATUS_TEXT, 1000, &a, err, sizeof err);
  tap_ok (a == LB_CTL_UNREACHED && errno == ENOENT
          && strstr (err, path) != NULL,
          "nothing there: unreached, ENOENT, the path named (%s)", err);
  tap_ok (!lb_ctl_in_use (path), "... and not in use");

  /* A regular file where the socket goes, as a dead daemon's would be. */
  fd = open (path, O_CREAT | O_WRONLY, 0644);
  close (fd);
  tap_ok (lb_ctl_listen (&ctl, path, err, sizeof err) == 0,
          "listen replaces what is at the path");
  tap_ok (stat (path, &st) == 0 && S_ISSOCK (st.st_mode)
          && (st.st_mode & 0777) == 0600, "a socket, mode 0600 (%o)",
          (unsigned) st.st_mode & 0777);
  tap_ok (lb_ctl_holds (&ctl), "the listener holds its path");
  tap_ok (lb_ctl_in_use (path), "a listening socket is in use");
  pthread_create (&th, NULL, serve, &srv);
  got = ask (path, LB_STATUS_TEXT, 5000, &a, err, sizeof err);
  tap_ok (a == LB_CTL_ANSWERED && got && strcmp (got, "who: lb \"1\"\n") == 0,
          "text asked, text answered");
  free (got);
  got = ask (path, LB_STATUS_JSON, 5000, &a, err, sizeof err);
  tap_ok (a == LB_CTL_ANSWERED && got
          && strcmp (got, "{\"who\":\"lb \\\"1\\\"\"}\n") == 0,
          "JSON asked, JSON answered");
  free (got);
  got = ask_verdict (path, LB_STATUS_JSON, 5000, &a, &verdict, err,
                     sizeof err);
  tap_ok (a == LB_CTL_ANSWERED && verdict == 7 && got
          && strcmp (got, "{\"who\":\"lb \\\"1\\\"\"}\n") == 0,
          "the verdict asked for comes, and only the document is copied "
          "(verdict %d)", verdict);
  free (got);
  /* A reader that asks nothing gets text once the second is up. */
  {
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char buf[64] = "";
    ssize_t n;
    int c = socket (AF_UNIX, SOCK_STREAM, 0);
    memcpy (sun.sun_path, path, strlen (path));
    connect (c, (struct sockaddr *) &sun, sizeof sun);
    n = read (c, buf, sizeof buf - 1);
    tap_ok (n > 0 && strcmp (buf, "who: lb \"1\"\n") == 0,
            "a reader that sends nothing gets text after a second");
    close (c);
  }
  pthread_join (th, NULL);

  /* Stopped: something listens but nobody answers. */
  got = ask (path, LB_STATUS_TEXT, 300, &a, err, sizeof err);
  tap_ok (a == LB_CTL_SILENT && strstr (err, "no answer") != NULL,
          "a daemon that does not answer: silent after the time limit (%s)",
          err);

  /* Another daemon took the path: closing must not remove its socket. */
  tap_ok (lb_ctl_listen (&other, path, err, sizeof err) == 0,
          "a second listener takes the path");
  tap_ok (!lb_ctl_holds (&ctl) && lb_ctl_holds (&other),
          "... which the first one no longer holds");
  lb_ctl_close (&ctl);
  tap_ok (stat (path, &st) == 0 && st.st_ino == other.ino,
          "closing the first leaves the second's socket");
  close (other.fd);
  got = ask (path, LB_STATUS_TEXT, 1000, &a, err, sizeof err);
  tap_ok (a == LB_CTL_UNREACHED && errno == ECONNREFUSED,
          "a socket left by a dead daemon: unreached, ECONNREFUSED");
  tap_ok (!lb_ctl_in_use (path), "... and not in use");
  other.fd = socket (AF_UNIX, SOCK_STREAM, 0);
  lb_ctl_close (&other);
  tap_ok (stat (path, &st) == -1 && errno == ENOENT,
          "closing removes the daemon's own socket");
  ctl.fd = -1;
  lb_ctl_close (&ctl);
  rmdir (dir);
}

int
main (void)
{
  /* Local time is UTC here, so that times read the same everywhere. */
  setenv ("TZ", "UTC", 1);
  tzset ();
  test_types ();
  test_escaping ();
  test_nesting ();
  test_layouts ();
  test_failures ();
  test_ctl ();
  return tap_done ();
}
