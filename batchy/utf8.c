/*
 * utf8.c - the one UTF-8 decoder of Batchy and Waitsy, and what is built
 * on it: validation, repair of text cut at a byte count, and where to cut.
 *
 * Well-formed means Unicode's definition (table 3-7): the shortest encoding
 * of a scalar value, so overlong forms, surrogates (U+D800-U+DFFF), values
 * above U+10FFFF, stray continuation bytes and sequences cut short are all
 * invalid. Everything that decides whether text is UTF-8 (query parameters,
 * step names, error messages, Waitsy's progress line) asks this file, so
 * they cannot disagree.
 *
 * Pure: no I/O, no locale, and no other part of Batchy (error.c depends on
 * this file, not the other way round).
 */
#include <string.h>

#include "batchy.h"

/* A byte that continues a sequence: 10xxxxxx. */
static int is_continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* See batchy.h. The lead byte gives the length and the smallest value that
 * needs it; a value below that is an overlong form. */
size_t utf8_decode(const unsigned char *s, size_t left, uint32_t *cp)
{
    if (left == 0)
        return 0;
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5-FF */
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (!is_continuation(s[i]))
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* See batchy.h. NUL is refused because the text ends up in C strings and
 * JSON, where it would cut the value short. */
int utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0 || cp == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* See batchy.h. A sequence is never read past its NUL: strnlen bounds what
 * the decoder may look at. */
void utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    for (size_t i = 0; p[i];) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, strnlen(s + i, 4), &cp);
        if (n)
            i += n;
        else
            p[i++] = '?';
    }
}

/* See batchy.h. Backing off over continuation bytes is enough for valid
 * text, and for invalid text it still never ends inside a valid sequence. */
size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && is_continuation((unsigned char)s[n]))
        n--;
    return n;
}
