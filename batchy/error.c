/*
 * error.c - the one error type: an HTTP status and a message for the user.
 * Every layer fills a bty_error and returns -1 (or NULL); the HTTP layer
 * alone turns it into a response.
 *
 * Messages quote user text cut to a number of bytes ("%.200s"), which can
 * split a character, or are cut at the end of the buffer; and the HTTP
 * layer sends them as JSON, which must be UTF-8. So every message is
 * repaired (utf8.c) before it is returned.
 */
#include <stdarg.h>
#include <stdio.h>

#include "batchy.h"

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
