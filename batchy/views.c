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

/* ------------------------------------------------------------------ /metrics */

static const char *const FAMILY_HEADERS[VIEW_FAMILIES] = {
    "# HELP batchy_step_status A step's status (its latest record): 1 for the status it has.\n"
    "# TYPE batchy_step_status gauge\n",
    "# HELP batchy_step_batch_start_timestamp_seconds When the step's latest batch started.\n"
    "# TYPE batchy_step_batch_start_timestamp_seconds gauge\n",
    "# HELP batchy_step_last_success_timestamp_seconds When the step's latest batch ended, when "
    "it succeeded.\n"
    "# TYPE batchy_step_last_success_timestamp_seconds gauge\n",
    "# HELP batchy_step_last_duration_seconds batch_end - batch_start of the step's latest batch, "
    "once it ended.\n"
    "# TYPE batchy_step_last_duration_seconds gauge\n",
    "# HELP batchy_step_late 1 when the step's expected_by has passed today (UTC) without a "
    "success today.\n"
    "# TYPE batchy_step_late gauge\n",
    "# HELP batchy_workflow_unreadable 1 for a workflow whose state in Redis cannot be read.\n"
    "# TYPE batchy_workflow_unreadable gauge\n",
};

const char *view_metrics_header(int f)
{
    return f >= 0 && f < VIEW_FAMILIES ? FAMILY_HEADERS[f] : "";
}

/* A label value as the text format wants it: \, " and newline escaped. */
static void sb_label(bty_buf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            bty_buf_add(b, "\\", 1);
        if (*p == '\n')
            bty_buf_add(b, "\\n", 2);
        else
            bty_buf_add(b, p, 1);
    }
}

/* name{workflow="..",step=".."} value */
static void sb_sample(bty_buf *b, const char *metric, const char *wf, const char *step,
                      const char *value)
{
    bty_buf_puts(b, metric);
    bty_buf_puts(b, "{workflow=\"");
    sb_label(b, wf);
    if (step) {
        bty_buf_puts(b, "\",step=\"");
        sb_label(b, step);
    }
    bty_buf_puts(b, "\"} ");
    bty_buf_puts(b, value);
    bty_buf_puts(b, "\n");
}

static int time_of(const cJSON *rec, const char *field, bty_time *t)
{
    const char *v = text_of(rec, field);
    return v && time_parse(v, t) == 0;
}

int view_step_metrics(const char *name, const cJSON *doc, bty_time now, view_metrics *out)
{
    bty_buf b = {0};
    memset(out, 0, sizeof(*out));
    for (int f = 0; f < VIEW_FAMILIES; f++) {
        out->cut[f] = b.len;
        if (!doc) {
            if (f == VIEW_WORKFLOW_UNREADABLE)
                sb_sample(&b, "batchy_workflow_unreadable", name, NULL, "1");
            continue;
        }
        const cJSON *step;
        cJSON_ArrayForEach(step, doc)
        {
            const char *status = text_of(step, "status");
            status = status ? status : "new";
            bty_time start, end;
            int started = time_of(step, "batch_start", &start);
            int ended = started && time_of(step, "batch_end", &end) &&
                        (strcmp(status, "success") == 0 || strcmp(status, "failed") == 0);
            char value[48];
            switch (f) {
            case VIEW_STEP_STATUS:
                bty_buf_puts(&b, "batchy_step_status{workflow=\"");
                sb_label(&b, name);
                bty_buf_puts(&b, "\",step=\"");
                sb_label(&b, step->string);
                bty_buf_puts(&b, "\",status=\"");
                sb_label(&b, status); /* one edited by hand may need escaping */
                bty_buf_puts(&b, "\"} 1\n");
                break;
            case VIEW_STEP_BATCH_START:
                if (started) {
                    snprintf(value, sizeof(value), "%lld.%06d", (long long)start.sec, start.usec);
                    sb_sample(&b, "batchy_step_batch_start_timestamp_seconds", name, step->string,
                              value);
                }
                break;
            case VIEW_STEP_LAST_SUCCESS:
                if (ended && strcmp(status, "success") == 0) {
                    snprintf(value, sizeof(value), "%lld.%06d", (long long)end.sec, end.usec);
                    sb_sample(&b, "batchy_step_last_success_timestamp_seconds", name, step->string,
                              value);
                }
                break;
            case VIEW_STEP_LAST_DURATION:
                if (ended) {
                    double d = (double)(end.sec - start.sec) + (end.usec - start.usec) / 1e6;
                    snprintf(value, sizeof(value), "%.6f", d);
                    sb_sample(&b, "batchy_step_last_duration_seconds", name, step->string, value);
                }
                break;
            case VIEW_STEP_LATE:
                if (text_of(step, "expected_by") &&
                    clock_minutes(text_of(step, "expected_by")) >= 0)
                    sb_sample(&b, "batchy_step_late", name, step->string,
                              view_step_late(step, now, NULL) ? "1" : "0");
                break;
            default:
                break;
            }
        }
    }
    out->cut[VIEW_FAMILIES] = b.len;
    if (b.failed) {
        free(b.data);
        return -1;
    }
    out->text = b.data ? b.data : calloc(1, 1);
    return out->text ? 0 : -1;
}
