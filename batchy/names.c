/*
 * names.c - what a workflow or step name may be (SPEC section 5), and the
 * constant-time comparison used for the API token.
 *
 * Workflow names become Redis keys and parts of file paths (cfg/<wf>.yaml),
 * so they are a small ASCII alphabet that cannot climb out of a directory
 * and cannot be mistaken for a snapshot key (<wf>-<batch_id>,
 * <wf>-<epoch>-init). Step names are hash fields and infa section headers:
 * any printable UTF-8 except the brackets of the header.
 *
 * Pure: no locale (character classes are written out in ASCII), no I/O.
 * UTF-8 is decoded by utf8.c.
 */
#include <string.h>

#include "batchy.h"

#define WORKFLOW_MAX 128
#define STEP_MAX     256

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* See batchy.h. The messages name the rule broken but do not echo the name,
 * which may hold anything. */
int name_workflow_check(const char *name, bty_error *err)
{
    static const char rule[] = "workflow name must be 1-128 characters of A-Z a-z 0-9 _ . -, "
                               "starting with a letter, digit or _";
    if (!name)
        return bty_error_set(err, 400, "%s", rule);
    size_t len = strnlen(name, WORKFLOW_MAX + 1);
    if (len == 0 || len > WORKFLOW_MAX)
        return bty_error_set(err, 400, "%s", rule);
    unsigned char first = (unsigned char)name[0];
    if (!is_alpha(first) && !is_digit(first) && first != '_')
        return bty_error_set(err, 400, "%s", rule);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '.' && c != '-')
            return bty_error_set(err, 400, "%s", rule);
    }
    if (key_looks_like_snapshot(name, len))
        return bty_error_set(err, 400,
                             "workflow name must not end in -<digits> or -<digits>-init: "
                             "those are batch snapshot keys");
    return 0;
}

/* See batchy.h. "Printable" here means: no C0 control (U+0000-U+001F), no
 * DEL (U+007F), no C1 control (U+0080-U+009F); every other scalar value,
 * space included, is allowed. */
int name_step_check(const char *name, bty_error *err)
{
    if (!name)
        return bty_error_set(err, 400, "step name must be 1-256 bytes");
    size_t len = strnlen(name, STEP_MAX + 1);
    if (len == 0 || len > STEP_MAX)
        return bty_error_set(err, 400, "step name must be 1-256 bytes");
    const unsigned char *s = (const unsigned char *)name;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            return bty_error_set(err, 400, "step name must be valid UTF-8");
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return bty_error_set(err, 400, "step name must not contain control characters");
        if (cp == '[' || cp == ']')
            return bty_error_set(err, 400,
                                 "step name must not contain [ or ]: they delimit infa sections");
        i += n;
    }
    return 0;
}

/* See batchy.h. Runs over every byte of b whatever a holds: a is read up to
 * its NUL and then its NUL is re-read, so the time depends only on the two
 * lengths (strlen of a cannot be avoided with NUL-terminated strings), and
 * differences are accumulated without branching or returning early.
 * NULL for either argument compares unequal. */
int secret_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t la = strlen(a);
    size_t lb = strlen(b);
    volatile unsigned char diff = 0;
    size_t lendiff = la ^ lb;

    for (size_t i = 0; i < lb; i++) {
        size_t in_a = (size_t)0 - (size_t)(i < la); /* all ones while i < la */
        size_t ia = (i & in_a) | (la & ~in_a);
        diff |= (unsigned char)(a[ia] ^ b[i]);
    }
    /* Fold the length difference into one byte without a branch. */
    unsigned char lenbits = 0;
    for (size_t k = 0; k < sizeof(lendiff); k++)
        lenbits |= (unsigned char)(lendiff >> (8 * k));
    return (diff | lenbits) == 0;
}
