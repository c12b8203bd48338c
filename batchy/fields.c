/*
 * fields.c - the special fields of a step (SPEC section 2), in one table:
 * for each, its name, its type, its bounds, whether a close/fail parameter
 * may set it, and whether load_cfg rewrites it in canonical form.
 *
 * Whoever needs to know what is special asks here: cfgload.c validates the
 * special fields of a workflow file against their types, rules.c refuses
 * close/fail parameters that would set them and writes the times of a
 * loaded file in canonical form. A new special field is one row below, plus
 * a case in special_field_fits when its type is new.
 *
 * Pure: no I/O, no globals but the constant table.
 */
#include <math.h>
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

static int is_status(const char *s)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(s, statuses[i]) == 0)
            return 1;
    return 0;
}

/* See batchy.h. Numbers are read as cJSON holds them after cfg_parse
 * (valuedouble); the bounds are inclusive. */
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
    case FIELD_PARAM:
        return 1;
    }
    return 1;
}
