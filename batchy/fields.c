/*
 * fields.c - the special fields of a step (SPEC section 2), in one table:
 * for each, its name, its type, its bounds, whether a close/fail parameter
 * may set it, and whether load_cfg rewrites it in canonical form.
 *
 * Whoever needs to know what is special asks here: cfgload.c validates the
 * special fields of a workflow file against their types, rules.c refuses
 * close/fail parameters that would set them or pass for them
 * (special_field_reserved) and writes the times of a loaded file in
 * canonical form. A new special field is one row below, plus
 * a case in special_field_fits when its type is new.
 *
 * Pure: no I/O, no globals but the constant table.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "batchy.h"

#define TIME_RULE                                                                                  \
    "must be a time such as \"2026-01-01T06:00:00\" (UTC unless an offset is given) or null"

/* The messages name the bounds in words; test_fields checks that they name
 * the bounds of the table. */
static const bty_special_field fields[] = {
    /* name, type, min, max, settable, canonical, rule */
    {"status", FIELD_STATUS, 0, 0, 0, 0, "must be one of new, open, success, failed"},
    {"batch_id", FIELD_ID, 0, (double)BTY_MAX_BATCH_ID, 0, 0,
     "must be an integer from 0 to 999999999999999 (the batch's Unix time)"},
    {"from_date", FIELD_TIME, 0, 0, 0, 1, TIME_RULE},
    {"to_date", FIELD_TIME, 0, 0, 0, 1, TIME_RULE},
    {"reprocess_hours", FIELD_HOURS, 0, BTY_MAX_REPROCESS_HOURS, 0, 0,
     "must be a number of hours from 0 to 1000000"},
    {"batch_start", FIELD_TIME, 0, 0, 0, 1, TIME_RULE},
    {"batch_end", FIELD_TIME, 0, 0, 0, 1, TIME_RULE},
    {"trunc_start", FIELD_BOOL, 0, 0, 0, 0, "must be true or false"},
    {"error_message", FIELD_TEXT, 0, 0, 0, 0, "must be a string"},
    {"infa_section", FIELD_TEXT, 0, 0, 0, 0, "must be a string"},
    /* The time of day (UTC) by which the step should have succeeded
     * (SPEC section 11): after it, with no success today, it is late. */
    {"expected_by", FIELD_CLOCK, 0, 0, 0, 0,
     "must be a time of day in quotes, \"HH:MM\" from \"00:00\" to \"23:59\" (UTC), such as "
     "\"06:00\""},
    /* Set by rewind: where the step's next open starts (SPEC section 9). */
    {"rewind_to", FIELD_TIME, 0, 0, 0, 1, TIME_RULE},
    /* Not step fields: close/fail parameters with a meaning of their own,
     * which would otherwise be stored as fields named so. */
    {"token", FIELD_PARAM, 0, 0, 0, 0, NULL},
    {"step", FIELD_PARAM, 0, 0, 0, 0, NULL},
    {"error", FIELD_PARAM, 0, 0, 0, 0, NULL},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* The statuses a workflow file may give a step ("abandoned" is for history
 * snapshots only, "failure" for the original service's records). */
static const char *const statuses[] = {"new", "open", "success", "failed"};

const bty_special_field *special_fields(size_t *n)
{
    *n = NFIELDS;
    return fields;
}

/* See batchy.h. A linear scan: the table has a dozen rows, and a name that
 * is not special (most are) is rejected at its first byte or two. */
const bty_special_field *special_field_find(const char *name)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(name, fields[i].name) == 0)
            return &fields[i];
    return NULL;
}

/* The byte `c` of a parameter name as the sh format prints it (format.c:
 * ASCII upper-cased, every byte outside [A-Z0-9_] as '_'). */
static unsigned char sh_byte(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 'A');
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
        return c;
    return '_';
}

/* 1 when `name` prints in sh as the field `field` does. */
static int sh_equal(const char *name, const char *field)
{
    size_t i = 0;
    for (; name[i] && field[i]; i++)
        if (sh_byte((unsigned char)name[i]) != sh_byte((unsigned char)field[i]))
            return 0;
    return !name[i] && !field[i];
}

/* The code point cp as a lower-case ASCII letter when some case mapping
 * makes it one: A-Z, and the four letters outside ASCII whose simple case
 * mapping is an ASCII letter (U+0130 and U+0131, dotted capital and dotless
 * small i; U+017F, long s; U+212A, the Kelvin sign), which Java's
 * equalsIgnoreCase and Unicode case folding take for i, s and k. Any other
 * code point as it is. */
static uint32_t caseless(uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z')
        return cp - 'A' + 'a';
    switch (cp) {
    case 0x130:
    case 0x131:
        return 'i';
    case 0x17F:
        return 's';
    case 0x212A:
        return 'k';
    default:
        return cp;
    }
}

/* 1 when `name` equals the field `field` (ASCII) compared without case. */
static int caseless_equal(const char *name, const char *field)
{
    const unsigned char *p = (const unsigned char *)name;
    for (size_t i = 0; field[i]; i++) {
        uint32_t cp;
        /* strnlen: never read past the NUL, nor measure a long name */
        size_t n = utf8_decode(p, strnlen((const char *)p, 4), &cp);
        if (!n || caseless(cp) != caseless((unsigned char)field[i]))
            return 0;
        p += n;
    }
    return *p == '\0';
}

/* See batchy.h. The sh rule and the caseless one each catch names the
 * other misses: "from-date" is not "from_date" without case, and "ſtatus"
 * (long s) prints as "__TATUS" in sh. */
const bty_special_field *special_field_reserved(const char *name)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (sh_equal(name, fields[i].name) || caseless_equal(name, fields[i].name))
            return &fields[i];
    return NULL;
}

static int is_status(const char *s)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(s, statuses[i]) == 0)
            return 1;
    return 0;
}

/* See batchy.h. Numbers are read as cJSON holds them after cfg_parse
 * (valuedouble); the bounds are inclusive. */
int clock_minutes(const char *text)
{
    const char *t = text;
    for (int i = 0; i < 5; i++)
        if (i == 2 ? t[i] != ':' : (t[i] < '0' || t[i] > '9'))
            return -1;
    int hh = (t[0] - '0') * 10 + (t[1] - '0'), mm = (t[3] - '0') * 10 + (t[4] - '0');
    return t[5] || hh > 23 || mm > 59 ? -1 : hh * 60 + mm;
}

int special_field_fits(const bty_special_field *f, const cJSON *v)
{
    bty_time t;
    switch (f->type) {
    case FIELD_TIME:
        return cJSON_IsNull(v) || (cJSON_IsString(v) && time_parse(v->valuestring, &t) == 0);
    case FIELD_ID:
        return cJSON_IsNumber(v) && v->valuedouble >= f->min && v->valuedouble <= f->max &&
               v->valuedouble == floor(v->valuedouble);
    case FIELD_HOURS:
        return cJSON_IsNumber(v) && v->valuedouble >= f->min && v->valuedouble <= f->max;
    case FIELD_BOOL:
        return cJSON_IsBool(v);
    case FIELD_STATUS:
        return cJSON_IsString(v) && is_status(v->valuestring);
    case FIELD_TEXT:
        return cJSON_IsString(v) || cJSON_IsNull(v);
    case FIELD_CLOCK:
        return cJSON_IsString(v) && clock_minutes(v->valuestring) >= 0;
    case FIELD_PARAM:
        return 1;
    }
    return 1;
}
