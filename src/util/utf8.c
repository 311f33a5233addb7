/* UTF-8 validation (RFC 3629); see include/vportfs/utf8.h. */
#include "vportfs/utf8.h"

bool vp_utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned char c = *s;
		unsigned need, min;
		unsigned long cp;

		if (c < 0x80) {
			s++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			need = 1, min = 0x80, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2, min = 0x800, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= need; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false; /* also stops at the NUL */
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += need + 1;
	}
	return true;
}
