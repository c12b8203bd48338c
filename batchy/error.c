/*
 * error.c - the one error type: an HTTP status and a message for the user.
 * Every layer fills a bty_error and returns -1 (or NULL); the HTTP layer
 * alone turns it into a response.
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
    return -1;
}
