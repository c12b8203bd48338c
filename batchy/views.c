/*
 * views.c - what GET /workflows and GET /history show (SPEC section 9):
 * a row per workflow, a row per batch, each complete enough that a page
 * can draw it without asking for more. Pure: documents in, JSON out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchy.h"

static const char *text_of(const cJSON *record, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

unsigned view_status_bit(const char *status)
{
    static const char *const known[] = {"new", "open", "success", "failed", "abandoned"};
    for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(status, known[i]) == 0)
            return 1u << i;
    return 0;
}

/* counts[status] += 1, on object `counts`. 0, or -1 when out of memory. */
static int count(cJSON *counts, const char *status)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, status);
    if (n) {
        cJSON_SetNumberValue(n, n->valuedouble + 1);
        return 0;
    }
    return cJSON_AddNumberToObject(counts, status, 1) ? 0 : -1;
}

/* The later of two canonical times (they sort as text), either may be NULL. */
static const char *later(const char *a, const char *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return strcmp(a, b) >= 0 ? a : b;
}

int view_step_late(const cJSON *rec, bty_time now, int64_t *until)
{
    const char *by = text_of(rec, "expected_by");
    int minutes = by ? clock_minutes(by) : -1;
    if (minutes < 0)
        return 0;
    int64_t day = now.sec - ((now.sec % 86400) + 86400) % 86400; /* its midnight, UTC */
    int64_t due = day + 60LL * minutes, next_day = day + 86400;
    const char *status = text_of(rec, "status"), *end = text_of(rec, "batch_end");
    bty_time ended;
    int succeeded_today = status && strcmp(status, "success") == 0 && end &&
                          time_parse(end, &ended) == 0 && ended.sec >= day && ended.sec < next_day;
    int late = !succeeded_today && now.sec >= due;
    /* Not late: until it is due (or, having succeeded, until the day
     * ends); late: until the day ends. */
    int64_t change = !late && !succeeded_today ? due : next_day;
    if (until && change < *until)
        *until = change;
    return late;
}

cJSON *view_workflow(const char *name, const cJSON *doc, bty_time now, unsigned *statuses,
                     int64_t *until)
{
    cJSON *row = cJSON_CreateObject(), *counts = cJSON_CreateObject();
    const char *updated = NULL;
    if (!row || !counts || !cJSON_AddStringToObject(row, "name", name) ||
        !cJSON_AddNumberToObject(row, "steps", cJSON_GetArraySize(doc)) ||
        !cJSON_AddItemToObject(row, "batch_id", doc_create_integer(rules_current_batch(doc)))) {
        cJSON_Delete(row);
        cJSON_Delete(counts);
        return NULL;
    }
    cJSON_AddItemToObject(row, "counts", counts);
    int failed = 0, late = 0;
    *statuses = 0;
    *until = INT64_MAX;
    const cJSON *step;
    cJSON_ArrayForEach(step, doc)
    {
        const char *s = text_of(step, "status");
        s = s ? s : "new";
        *statuses |= view_status_bit(s);
        late |= view_step_late(step, now, until);
        failed = failed || count(counts, s) != 0;
        updated = later(updated, later(text_of(step, "batch_start"), text_of(step, "batch_end")));
    }
    if (failed ||
        !(updated ? cJSON_AddStringToObject(row, "updated", updated)
                  : cJSON_AddNullToObject(row, "updated")) ||
        !cJSON_AddBoolToObject(row, "late", late)) {
        cJSON_Delete(row);
        return NULL;
    }
    return row;
}

cJSON *view_workflow_error(const char *name, const char *message)
{
    cJSON *row = cJSON_CreateObject();
    if (!row || !cJSON_AddStringToObject(row, "name", name) ||
        !cJSON_AddStringToObject(row, "error", message)) {
        cJSON_Delete(row);
        return NULL;
    }
    return row;
}

cJSON *view_batch(long long id, const cJSON *snapshot)
{
    cJSON *row = cJSON_CreateObject(), *steps = cJSON_CreateObject();
    const char *start = NULL, *end = NULL;
    int ended = 1, failed = !row || !steps;
    const cJSON *step;
    cJSON_ArrayForEach(step, snapshot)
    {
        const char *s = text_of(step, "status"), *b = text_of(step, "batch_start");
        const char *e = text_of(step, "batch_end"), *msg = text_of(step, "error_message");
        cJSON *row_step = cJSON_CreateObject();
        failed = failed || !row_step || !cJSON_AddStringToObject(row_step, "status", s ? s : "") ||
                 (b && !cJSON_AddStringToObject(row_step, "batch_start", b)) ||
                 (e && !cJSON_AddStringToObject(row_step, "batch_end", e)) ||
                 (msg && !cJSON_AddStringToObject(row_step, "error_message", msg)) ||
                 !cJSON_AddItemToObject(steps, step->string, row_step);
        if (b && (!start || strcmp(b, start) < 0))
            start = b;
        end = later(end, text_of(step, "batch_end"));
        ended = ended && !(s && strcmp(s, "open") == 0);
    }
    if (failed || !cJSON_AddItemToObject(row, "batch_id", doc_create_integer(id)) ||
        !(start ? cJSON_AddStringToObject(row, "batch_start", start)
                : cJSON_AddNullToObject(row, "batch_start")) ||
        !(end && ended ? cJSON_AddStringToObject(row, "batch_end", end)
                       : cJSON_AddNullToObject(row, "batch_end"))) {
        cJSON_Delete(row);
        cJSON_Delete(steps);
        return NULL;
    }
    cJSON_AddItemToObject(row, "steps", steps);
    return row;
}

/* Not view_workflow's row renamed: an event is what changed, so only what
 * a change moves. */
cJSON *view_event(const char *name, const cJSON *doc, const char *message)
{
    cJSON *ev = cJSON_CreateObject();
    if (!ev || !cJSON_AddStringToObject(ev, "workflow", name)) {
        cJSON_Delete(ev);
        return NULL;
    }
    unsigned statuses;
    int64_t until;
    cJSON *row = doc ? view_workflow(name, doc, (bty_time){0, 0}, &statuses, &until) : NULL;
    if (!doc) {
        if (cJSON_AddStringToObject(ev, "error", message))
            return ev;
        cJSON_Delete(ev);
        return NULL;
    }
    static const char *const taken[] = {"batch_id", "counts", "updated"};
    for (size_t i = 0; row && i < sizeof(taken) / sizeof(taken[0]); i++) {
        cJSON *item = cJSON_DetachItemFromObjectCaseSensitive(row, taken[i]);
        if (!item || !cJSON_AddItemToObject(ev, taken[i], item)) {
            cJSON_Delete(item);
            cJSON_Delete(row);
            row = NULL;
        }
    }
    if (!row) {
        cJSON_Delete(ev);
        return NULL;
    }
    cJSON_Delete(row);
    return ev;
}
