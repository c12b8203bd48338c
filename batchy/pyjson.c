/*
 * pyjson.c - JSON text exactly as Python's json.dumps writes it with its
 * defaults, for the values Batchy stores in Redis (SPEC section 15): the
 * original service wrote them that way, and operators grep them.
 *
 *   - ", " between members and items, ": " after keys, no other space;
 *   - strings escaped as ensure_ascii=True does: \" \\ \n \r \t \b \f,
 *     other control characters, DEL and everything beyond ASCII as \uXXXX with
 *     lowercase hex, characters beyond the BMP as a surrogate pair;
 *   - numbers as their kept text (a raw item, or a number item carrying its
 *     text in valuestring, see doc_number_texts), else integers as digits and
 *     other numbers as Python's repr(float): the shortest digits that read
 *     back to the same double, "1.0" rather than "1", exponent form below
 *     1e-4 and from 1e16 ("1e-05", "1e+16").
 *
 * cJSON's own printer does none of this (it writes "1" for 1.0, compact
 * separators and UTF-8 as it is), so this is a small printer over cJSON
 * trees; cJSON still parses and builds them. Pure: no I/O, no globals.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchy.h"

/* ------------------------------------------------------------ floats */

int py_float_repr(double v, char out[PY_FLOAT_MAX])
{
    if (isnan(v))
        return (int)strlen(strcpy(out, "NaN"));
    if (isinf(v))
        return (int)strlen(strcpy(out, v < 0 ? "-Infinity" : "Infinity"));
    /* The shortest precision whose correctly rounded digits read back to
     * v: what Python's repr finds with David Gay's algorithm. */
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    /* sci is [-]d[.ddd]e[+-]xx: split it into sign, digits and exponent. */
    const char *p = sci;
    int negative = *p == '-';
    p += negative;
    char digits[20];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = (int)strtol(p + 1, NULL, 10); /* %e always writes an exponent */
    while (nd > 1 && digits[nd - 1] == '0')   /* %e pads with zeros */
        nd--;
    digits[nd] = '\0';
    int decpt = exp10 + 1; /* v = 0.digits * 10^decpt */

    char *o = out;
    if (negative)
        *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++)
            *o++ = '0';
        memcpy(o, digits, nd);
        o += nd;
    } else {
        for (int i = 0; i < decpt; i++)
            *o++ = (size_t)i < nd ? digits[i] : '0';
        *o++ = '.';
        if ((size_t)decpt < nd) {
            memcpy(o, digits + decpt, nd - (size_t)decpt);
            o += nd - (size_t)decpt;
        } else {
            *o++ = '0';
        }
    }
    *o = '\0';
    return (int)(o - out);
}

int py_number_text(double v, char out[PY_FLOAT_MAX])
{
    if (v == floor(v) && fabs(v) <= 9007199254740992.0 && !(v == 0 && signbit(v)))
        return snprintf(out, PY_FLOAT_MAX, "%lld", (long long)v);
    return py_float_repr(v, out);
}

/* ------------------------------------------------------------ printer */

typedef bty_buf out_buf;

static void put_u(out_buf *b, uint32_t unit)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {
        '\\',          'u', hex[(unit >> 12) & 15], hex[(unit >> 8) & 15], hex[(unit >> 4) & 15],
        hex[unit & 15]};
    bty_buf_add(b, esc, sizeof(esc));
}

/* A JSON string as ensure_ascii writes it. Bytes that are not UTF-8 (none
 * reach here: what is read is checked, what is built comes from checked
 * input) are written as U+FFFD rather than passed on. */
static void put_string(out_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    bty_buf_add(b, "\"", 1);
    while (left) {
        size_t run = 0; /* ASCII needing no escape, copied in one go */
        while (run < left && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' && p[run] != '\\')
            run++;
        bty_buf_add(b, (const char *)p, run);
        p += run;
        left -= run;
        if (!left)
            break;
        unsigned char c = *p;
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc) {
            bty_buf_puts(b, esc);
            p++, left--;
            continue;
        }
        if (c < 0x80) {
            put_u(b, c);
            p++, left--;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p, left, &cp);
        if (!n) {
            cp = 0xFFFD;
            n = 1;
        }
        if (cp > 0xFFFF) {
            cp -= 0x10000;
            put_u(b, 0xD800 | (cp >> 10));
            put_u(b, 0xDC00 | (cp & 0x3FF));
        } else {
            put_u(b, cp);
        }
        p += n;
        left -= n;
    }
    bty_buf_add(b, "\"", 1);
}

static void put_value(out_buf *b, const cJSON *item, int depth)
{
    char num[PY_FLOAT_MAX];
    if (depth > CJSON_NESTING_LIMIT) { /* cJSON parses no deeper, nor does cfgload build */
        b->failed = 1;
        return;
    }
    switch (item->type & 0xFF) {
    case cJSON_False:
        bty_buf_puts(b, "false");
        break;
    case cJSON_True:
        bty_buf_puts(b, "true");
        break;
    case cJSON_NULL:
        bty_buf_puts(b, "null");
        break;
    case cJSON_Number:
        if (item->valuestring) {
            bty_buf_puts(b, item->valuestring);
        } else if (!isfinite(item->valuedouble)) {
            /* Python would write Infinity or NaN, which no JSON reader
             * (cJSON included) takes back; none is built (cfgscalar.c
             * refuses them, doc.c keeps the text 1e400 had). */
            bty_buf_puts(b, "null");
        } else {
            py_number_text(item->valuedouble, num);
            bty_buf_puts(b, num);
        }
        break;
    case cJSON_Raw:
        bty_buf_puts(b, item->valuestring ? item->valuestring : "null");
        break;
    case cJSON_String:
        put_string(b, item->valuestring ? item->valuestring : "");
        break;
    case cJSON_Array:
    case cJSON_Object: {
        int is_object = (item->type & 0xFF) == cJSON_Object;
        bty_buf_add(b, is_object ? "{" : "[", 1);
        for (const cJSON *child = item->child; child; child = child->next) {
            if (child != item->child)
                bty_buf_add(b, ", ", 2);
            if (is_object) {
                put_string(b, child->string ? child->string : "");
                bty_buf_add(b, ": ", 2);
            }
            put_value(b, child, depth + 1);
        }
        bty_buf_add(b, is_object ? "}" : "]", 1);
        break;
    }
    default:
        bty_buf_puts(b, "null");
    }
}

char *py_json_print(const cJSON *item)
{
    out_buf b = {0};
    put_value(&b, item, 0);
    if (b.failed || !b.data) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
