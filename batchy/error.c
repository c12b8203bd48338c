/*
 * error.c - the one error type: an HTTP status and a message for the user.
 * Every layer fills a bty_error and returns -1 (or NULL); the HTTP layer
 * alone turns it into a response.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "batchy.h"

/* Replace each byte that does not start a valid UTF-8 sequence with '?'.
 * Messages quote user text cut to a number of bytes ("%.200s"), which can
 * split a character, or cut at the end of the buffer; and the HTTP layer
 * sends them as JSON, which must be UTF-8. */
static void utf8_repair(char *s)
{
    for (size_t i = 0; s[i];) {
        unsigned char c = (unsigned char)s[i];
        size_t n = 0; /* the length a sequence with this lead byte has */
        if (c < 0x80)
            n = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            n = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4;
        if (n && strnlen(s + i, n) == n && utf8_valid(s + i, n))
            i += n;
        else
            s[i++] = '?';
    }
}

int bty_error_set(bty_error *err, int status, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    err->status = status;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    utf8_repair(err->message);
    return -1;
}
