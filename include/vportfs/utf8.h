/*
 * Port names end up in JSON (.events), in file names and in the guest's
 * sysfs: we accept only well-formed UTF-8 without NUL.
 */
#ifndef VPORTFS_UTF8_H
#define VPORTFS_UTF8_H

#include <stdbool.h>

/* Is the NUL-terminated string well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF)? */
bool vp_utf8_valid(const char *s);

#endif
