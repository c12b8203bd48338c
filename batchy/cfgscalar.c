/*
 * cfgscalar.c - what a scalar of a workflow file means: its text, style
 * and tag -> a JSON value, as PyYAML's safe loader (YAML 1.1) makes it,
 * since existing workflow files were written for it (SPEC section 3).
 *
 *   - untagged plain scalars are resolved by PyYAML's implicit types:
 *     null (~, null, Null, NULL, empty), booleans (yes/no, true/false,
 *     on/off in lower, Capitalised or UPPER case), integers (decimal, 0x
 *     hex, leading-0 octal, 0b binary, base 60, '_' separators) and floats
 *     (1.5, -2., .5, 1.0e+3, base 60); anything else stays a string;
 *   - quoted and block scalars, and the non-specific tag "!", are strings,
 *     verbatim;
 *   - a standard tag (!!str, !!int, !!float, !!bool, !!null) must fit the
 *     text, with what PyYAML's constructors also accept under it (any case
 *     for !!bool, Python float() forms for !!float); !!map and !!seq fit
 *     mappings and sequences only; any other tag is an error;
 *   - what JSON cannot keep is an error, not a silent change: integers
 *     beyond +-2^53 (they would lose digits), .inf and .nan.
 *
 * Reasons come back in a bty_error without a place: cfgload.c, which knows
 * the line and column, adds them (cfgscalar.h says why this is not in
 * batchy.h). Pure: no I/O, no globals.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfgscalar.h"

#define TAG_PREFIX     "tag:yaml.org,2002:"
#define TAG_PREFIX_LEN (sizeof(TAG_PREFIX) - 1)
#define INT_LIMIT      9007199254740992ULL /* 2^53: larger integers lose digits */

/* See cfgscalar.h. */
const char *cfg_shown(const char *s, char out[CFG_SHOWN_MAX + 4])
{
    size_t len = strnlen(s, CFG_SHOWN_MAX + 1);
    size_t n = utf8_prefix(s, len, CFG_SHOWN_MAX);
    memcpy(out, s, n);
    strcpy(out + n, n < len ? "..." : "");
    return out;
}

/* ------------------------------------------------------------ scalars
 * The YAML 1.1 implicit types of PyYAML's resolver, matched by hand: each
 * matcher takes the whole scalar (s, n) and says whether its regex matches
 * all of it. */

static int is_dec(char c)
{
    return c >= '0' && c <= '9';
}

static int in_set(char c, const char *set)
{
    return c && strchr(set, c);
}

/* Index after the run of characters of `set` starting at i. */
static size_t run(const char *s, size_t n, size_t i, const char *set)
{
    while (i < n && in_set(s[i], set))
        i++;
    return i;
}

#define DEC_ "0123456789_"

/* (:[0-5]?[0-9])* from i, greedily; returns the index after the groups. */
static size_t base60_groups(const char *s, size_t n, size_t i)
{
    while (i < n && s[i] == ':') {
        size_t k = i + 1;
        if (k >= n || !is_dec(s[k]))
            break;
        if (k + 1 < n && is_dec(s[k + 1])) {
            if (s[k] > '5')
                break;
            k += 2;
        } else {
            k += 1;
        }
        i = k;
    }
    return i;
}

/* ~, null, Null, NULL or empty. */
static int match_null(const char *s, size_t n)
{
    return n == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* yes/no/true/false/on/off, lower, Capitalised or UPPER (any case when
 * any_case is set, as PyYAML accepts under an explicit !!bool): 1 with
 * *value. */
static int match_bool(const char *s, int any_case, int *value)
{
    static const char *const yes[] = {"yes",  "Yes", "YES", "true", "True",
                                      "TRUE", "on",  "On",  "ON"};
    static const char *const no[] = {"no",    "No",  "NO",  "false", "False",
                                     "FALSE", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        int is_yes = any_case ? !strcasecmp(s, yes[i]) : !strcmp(s, yes[i]);
        if (is_yes || (any_case ? !strcasecmp(s, no[i]) : !strcmp(s, no[i]))) {
            *value = is_yes;
            return 1;
        }
    }
    return 0;
}

/* [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
 * | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+ */
static int match_int(const char *s, size_t n)
{
    size_t i = n && (s[0] == '-' || s[0] == '+');
    if (i >= n)
        return 0;
    if (s[i] == '0' && i + 1 < n && s[i + 1] == 'b')
        return n > i + 2 && run(s, n, i + 2, "01_") == n;
    if (s[i] == '0' && i + 1 < n && s[i + 1] == 'x')
        return n > i + 2 && run(s, n, i + 2, "0123456789abcdefABCDEF_") == n;
    if (s[i] == '0')
        return run(s, n, i + 1, "01234567_") == n;
    if (s[i] < '1' || s[i] > '9')
        return 0;
    size_t j = run(s, n, i + 1, DEC_);
    return j == n || (s[j] == ':' && base60_groups(s, n, j) == n);
}

enum int_result { INT_OK, INT_RANGE, INT_NO_DIGITS };

/* The value of a string matching match_int, computed as PyYAML does:
 * '_' ignored, then 0b, 0x, leading 0 (octal) or base-60 groups. */
static enum int_result int_value(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int negative = 0;
    if (s[0] == '-' || s[0] == '+')
        negative = s[i++] == '-';
    unsigned base = 10;
    int digits = 0;
    if (s[i] == '0' && i + 1 < n && (s[i + 1] == 'b' || s[i + 1] == 'x')) {
        base = s[i + 1] == 'b' ? 2 : 16;
        i += 2;
    } else if (s[i] == '0') {
        base = 8; /* "0" alone is 0 whatever the base */
        digits = 1;
        i++;
    }
    uint64_t total = 0, part = 0;
    int groups = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '_')
            continue;
        if (c == ':') {
            total = total * 60 + part;
            part = 0;
            groups++;
            if (total > INT_LIMIT)
                return INT_RANGE;
            continue;
        }
        unsigned d = is_dec(c) ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
        part = part * base + d;
        digits = 1;
        if (part > INT_LIMIT)
            return INT_RANGE;
    }
    if (!digits)
        return INT_NO_DIGITS;
    total = groups ? total * 60 + part : part;
    if (total > INT_LIMIT)
        return INT_RANGE;
    *out = negative ? -(int64_t)total : (int64_t)total;
    return INT_OK;
}

/* ([eE][-+][0-9]+)? up to the end, from j; sign_optional relaxes [-+]. */
static int exponent_to_end(const char *s, size_t n, size_t j, int sign_optional)
{
    if (j == n)
        return 1;
    if (s[j] != 'e' && s[j] != 'E')
        return 0;
    j++;
    if (j < n && (s[j] == '-' || s[j] == '+'))
        j++;
    else if (!sign_optional)
        return 0;
    return j < n && is_dec(s[j]) && run(s, n, j, "0123456789") == n;
}

enum float_match { FLOAT_NO, FLOAT_YES, FLOAT_INF_NAN };

/* [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9][0-9_]*([eE][-+][0-9]+)?
 * | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* ; FLOAT_INF_NAN for
 * [-+]?\.(inf|Inf|INF) and \.(nan|NaN|NAN). The second branch is PyYAML
 * 6's (older releases had \.[0-9_]+, which made "._" a float and failed). */
static enum float_match match_float(const char *s, size_t n)
{
    size_t i = n && (s[0] == '-' || s[0] == '+');
    const char *r = s + i;
    if (strcmp(r, ".inf") == 0 || strcmp(r, ".Inf") == 0 || strcmp(r, ".INF") == 0)
        return FLOAT_INF_NAN;
    if (!i && (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0))
        return FLOAT_INF_NAN;
    if (!i && n >= 2 && s[0] == '.') {
        if (!is_dec(s[1]))
            return FLOAT_NO;
        return exponent_to_end(s, n, run(s, n, 2, DEC_), 0) ? FLOAT_YES : FLOAT_NO;
    }
    if (i >= n || !is_dec(s[i]))
        return FLOAT_NO;
    size_t j = run(s, n, i + 1, DEC_);
    if (j < n && s[j] == ':') {
        j = base60_groups(s, n, j);
        return j < n && s[j] == '.' && run(s, n, j + 1, DEC_) == n ? FLOAT_YES : FLOAT_NO;
    }
    if (j < n && s[j] == '.')
        return exponent_to_end(s, n, run(s, n, j + 1, DEC_), 0) ? FLOAT_YES : FLOAT_NO;
    return FLOAT_NO;
}

/* What an explicit !!float also accepts, as Python's float() does: a
 * decimal number with optional fraction and an exponent whose sign is
 * optional ([-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9_]+)([eE][-+]?[0-9]+)?). */
static int match_float_loose(const char *s, size_t n)
{
    size_t i = n && (s[0] == '-' || s[0] == '+');
    size_t j;
    if (i < n && is_dec(s[i])) {
        j = run(s, n, i + 1, DEC_);
        if (j < n && s[j] == '.')
            j = run(s, n, j + 1, DEC_);
    } else if (i < n && s[i] == '.') {
        j = run(s, n, i + 1, DEC_);
        if (j == i + 1)
            return 0;
    } else {
        return 0;
    }
    return exponent_to_end(s, n, j, 1);
}

/* The value of a string accepted by match_float or match_float_loose,
 * computed as PyYAML does: '_' ignored; base-60 groups summed from the
 * right. Returns 0, or -1 when the value is not finite or has no digits
 * ("._"), or 1 when out of memory. */
static int float_value(const char *s, size_t n, double *out)
{
    char *clean = malloc(n + 1);
    if (!clean)
        return 1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            clean[m++] = s[i];
    clean[m] = '\0';
    const char *p = clean;
    double sign = 1;
    if (*p == '-' || *p == '+')
        sign = *p++ == '-' ? -1 : 1;
    double value = 0;
    int ok = 1;
    if (strchr(p, ':')) {
        /* PyYAML: digits reversed, value += digit * base, base *= 60 */
        double base = 1;
        const char *end = p + strlen(p);
        while (ok && end > p) {
            const char *start = end;
            while (start > p && start[-1] != ':')
                start--;
            char *stop;
            double digit = strtod(start, &stop);
            ok = stop == end && start < end;
            value += digit * base;
            base *= 60;
            end = start > p ? start - 1 : p;
        }
    } else {
        char *stop;
        value = strtod(p, &stop);
        ok = *p && *stop == '\0' && stop > p;
    }
    free(clean);
    if (!ok || !isfinite(value))
        return -1;
    *out = sign * value;
    return 0;
}

/* The short name ("int", "map", ...) of one of the standard tags Batchy
 * accepts, or NULL for any other tag. */
static const char *standard_tag(const char *tag)
{
    static const char *const names[] = {"str", "int", "float", "bool", "null", "map", "seq"};
    if (strncmp(tag, TAG_PREFIX, TAG_PREFIX_LEN) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(tag + TAG_PREFIX_LEN, names[i]) == 0)
            return names[i];
    return NULL;
}

/* A tag as the user probably wrote it: !!int rather than its full form. */
static const char *tag_shown(const char *tag, char out[CFG_SHOWN_MAX + 4])
{
    char text[CFG_SHOWN_MAX + 4];
    if (strncmp(tag, TAG_PREFIX, TAG_PREFIX_LEN) == 0) {
        snprintf(out, CFG_SHOWN_MAX + 4, "!!%s", cfg_shown(tag + TAG_PREFIX_LEN, text));
        return out;
    }
    return cfg_shown(tag, out);
}

static int fail_oom(bty_error *why)
{
    return bty_error_set(why, 500, "out of memory");
}

static int fail_tag(const char *tag, bty_error *why)
{
    char text[CFG_SHOWN_MAX + 4];
    return bty_error_set(why, 422,
                         "unsupported tag %s: only !!str, !!int, !!float, !!bool, !!null, !!map "
                         "and !!seq are allowed",
                         tag_shown(tag, text));
}

/* A number node for an integer-looking scalar, or -1 with why set. */
static int int_node(const char *text, size_t len, cJSON **out, bty_error *why)
{
    char shown_text[CFG_SHOWN_MAX + 4];
    int64_t v;
    switch (int_value(text, len, &v)) {
    case INT_RANGE:
        return bty_error_set(why, 422,
                             "integer %s is beyond +-2^53 and cannot be kept exactly; quote it to "
                             "keep it as a string",
                             cfg_shown(text, shown_text));
    case INT_NO_DIGITS:
        return bty_error_set(why, 422, "integer %s has no digits", cfg_shown(text, shown_text));
    case INT_OK:
        break;
    }
    *out = cJSON_CreateNumber((double)v);
    return *out ? 0 : fail_oom(why);
}

/* A number node for a float-looking scalar, or -1 with why set. */
static int float_node(const char *text, size_t len, cJSON **out, bty_error *why)
{
    char shown_text[CFG_SHOWN_MAX + 4];
    double v;
    int rc = float_value(text, len, &v);
    if (rc > 0)
        return fail_oom(why);
    if (rc < 0)
        return bty_error_set(why, 422, "%s is not a finite number", cfg_shown(text, shown_text));
    /* The number carries Python's repr of it, so that 1.0 stays 1.0 and
     * 1.5e+3 is 1500.0 wherever it is written (doc_number_texts). */
    char repr[PY_FLOAT_MAX];
    py_float_repr(v, repr);
    *out = cJSON_CreateNumber(v);
    if (*out && !((*out)->valuestring = strdup(repr))) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return *out ? 0 : fail_oom(why);
}

/* The value of an untagged plain scalar, resolved as PyYAML's SafeLoader
 * does. Sets *out to a new node, or returns -1 with why set. */
static int resolve_plain(const char *text, size_t len, cJSON **out, bty_error *why)
{
    char shown_text[CFG_SHOWN_MAX + 4];
    int b;
    if (match_null(text, len))
        *out = cJSON_CreateNull();
    else if (match_bool(text, 0, &b))
        *out = cJSON_CreateBool(b);
    else if (match_int(text, len))
        return int_node(text, len, out, why);
    else if (match_float(text, len) == FLOAT_YES)
        return float_node(text, len, out, why);
    else if (match_float(text, len) == FLOAT_INF_NAN)
        return bty_error_set(why, 422,
                             "%s cannot be stored in JSON; quote it to keep it as a string",
                             cfg_shown(text, shown_text));
    else
        *out = cJSON_CreateString(text);
    return *out ? 0 : fail_oom(why);
}

/* See cfgscalar.h. */
int cfg_scalar_value(const char *text, size_t len, const char *tag, int plain, cJSON **out,
                     bty_error *why)
{
    char shown_text[CFG_SHOWN_MAX + 4];
    const char *type;
    int b;
    *out = NULL;
    if (!tag)
        type = plain ? NULL : "str";
    else if (strcmp(tag, "!") == 0)
        type = "str";
    else if (!(type = standard_tag(tag)))
        return fail_tag(tag, why);

    if (!type)
        return resolve_plain(text, len, out, why);
    if (strcmp(type, "str") == 0) {
        *out = cJSON_CreateString(text);
    } else if (strcmp(type, "int") == 0) {
        if (!match_int(text, len))
            return bty_error_set(why, 422, "!!int %s is not an integer",
                                 cfg_shown(text, shown_text));
        return int_node(text, len, out, why);
    } else if (strcmp(type, "float") == 0) {
        if (match_float(text, len) == FLOAT_YES || match_float_loose(text, len) ||
            (match_int(text, len) && memchr(text, ':', len)))
            return float_node(text, len, out, why);
        return bty_error_set(why, 422, "!!float %s is not a finite number",
                             cfg_shown(text, shown_text));
    } else if (strcmp(type, "bool") == 0) {
        if (!match_bool(text, 1, &b))
            return bty_error_set(why, 422,
                                 "!!bool %s is not a boolean (true/false, yes/no, on/off)",
                                 cfg_shown(text, shown_text));
        *out = cJSON_CreateBool(b);
    } else if (strcmp(type, "null") == 0) {
        if (!match_null(text, len))
            return bty_error_set(why, 422, "!!null %s is not null (~, null or empty)",
                                 cfg_shown(text, shown_text));
        *out = cJSON_CreateNull();
    } else {
        return bty_error_set(why, 422, "tag !!%s does not fit a scalar", type);
    }
    return *out ? 0 : fail_oom(why);
}

/* See cfgscalar.h. */
int cfg_collection_tag_check(const char *tag, int is_map, bty_error *why)
{
    if (!tag || strcmp(tag, "!") == 0)
        return 0;
    const char *type = standard_tag(tag);
    if (!type)
        return fail_tag(tag, why);
    if (strcmp(type, is_map ? "map" : "seq") != 0)
        return bty_error_set(why, 422, "tag !!%s does not fit a %s", type,
                             is_map ? "mapping" : "sequence");
    return 0;
}

/* See cfgscalar.h. */
char *cfg_key_text(const cJSON *value)
{
    char num[PY_FLOAT_MAX];
    if (cJSON_IsString(value))
        return strdup(value->valuestring);
    if (cJSON_IsBool(value))
        return strdup(cJSON_IsTrue(value) ? "true" : "false");
    if (cJSON_IsNumber(value)) {
        if (value->valuestring) /* a float: its repr */
            return strdup(value->valuestring);
        py_number_text(value->valuedouble, num);
        return strdup(num);
    }
    return strdup("null");
}
