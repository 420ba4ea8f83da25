/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: dropping root.  See lb_priv.h. */

#include <config.h>

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "lb_priv.h"

int
lb_drop_privileges (const char *user, char *err, size_t errlen)
{
  struct passwd *pw = getpwnam (user);

  if (pw == NULL) {
    snprintf (err, errlen, "--user=%s: no such user", user);
    return -1;
  }
  if (setgroups (0, NULL) == -1 || setgid (pw->pw_gid) == -1
      || setuid (pw->pw_uid) == -1) {
    snprintf (err, errlen, "--user=%s: %s", user, strerror (errno));
    return -1;
  }
  if (pw->pw_uid != 0 && setuid (0) == 0) {
    snprintf (err, errlen, "--user=%s: could regain root", user);
    return -1;
  }
  return 0;
}
