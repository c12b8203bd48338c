/*
 * rules.c - the batch rules (SPEC section 4) as pure functions.
 *
 * Each rule takes the workflow document as read from Redis and `now`, and
 * produces a bty_change: the new document to answer with and the write plan
 * that apply.c has Redis apply in one atomic step (plan.lua). Nothing here reads a clock or
 * touches Redis, so every rule is unit-tested with plain data.
 *
 * State written by hand or by the original service is read leniently
 * (numbers as strings, times without fraction); state that cannot be
 * understood is a 409 naming the step and field, and nothing is written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchy.h"

void change_free(bty_change *c)
{
    cJSON_Delete(c->state);
    c->state = NULL;
    plan_free(&c->plan);
}

/* Special fields (fields.c) a client may not set through close/fail
 * parameters: today all of them, and token=, step=, error=; and every name
 * that would pass for one in the sh or infa output (FROM_DATE, from-date),
 * which after `eval` would override the real field. */
static int is_reserved(const char *name)
{
    const bty_special_field *f = special_field_reserved(name);
    return f && !f->settable;
}

/* Add `name`, known absent, without looking for it (documents of
 * thousands of steps are built this way); as set_field otherwise. */
static int add_new(cJSON *object, const char *name, cJSON *item)
{
    if (item && cJSON_AddItemToObject(object, name, item))
        return 0;
    cJSON_Delete(item);
    return -1;
}

/* Replace or add `name` in `record`; takes ownership of item (NULL when
 * its creation ran out of memory). 0, or -1 when out of memory: a record
 * half set must not be written, so callers give up on -1. */
static int set_field(cJSON *record, const char *name, cJSON *item)
{
    cJSON *old = cJSON_GetObjectItemCaseSensitive(record, name);
    if (!item || !old)
        return add_new(record, name, item);
    /* Not cJSON_ReplaceItemInObject: it ignores a failed copy of the key
     * and leaves the value under an empty name. */
    size_t len = strlen(name) + 1;
    item->string = cJSON_malloc(len);
    /* NOLINTNEXTLINE(readability-suspicious-call-argument): old is cJSON's item, to replace */
    if (!item->string || !cJSON_ReplaceItemViaPointer(record, old, item)) {
        cJSON_Delete(item);
        return -1;
    }
    memcpy(item->string, name, len);
    return 0;
}

static int set_time(cJSON *record, const char *name, bty_time t)
{
    char text[BTY_TIME_LEN + 1];
    time_format(t, text);
    return set_field(record, name, cJSON_CreateString(text));
}

static const char *status_of(const cJSON *record)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(record, "status");
    return cJSON_IsString(s) ? s->valuestring : "";
}

/* A number stored as JSON number (raw digits once read, doc_number) or, by
 * hand, as numeric text. Returns 1 and
 * sets *out when present, 0 when absent or null, -1 when not a number. */
static int number_field(const cJSON *record, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    return doc_number(v, out);
}

/* A step's batch id: 0 when it never had one. -1 when unreadable. */
static long long batch_id_of(const cJSON *record)
{
    double d;
    int got = number_field(record, "batch_id", &d);
    if (got == 0)
        return 0;
    if (got < 0 || d < 0 || d > (double)BTY_MAX_BATCH_ID || d != floor(d))
        return -1;
    return (long long)d;
}

/* Returns 1 and sets *out when the field holds a time, 0 when absent or
 * null, -1 when it holds something that is not a time. */
static int time_field(const cJSON *record, const char *name, bty_time *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || time_parse(v->valuestring, out) != 0)
        return -1;
    return 1;
}

/* A flag as the original read it, by Python's truth: false only when
 * absent, null, false, zero, "" or an empty list or mapping; so the text
 * "false" and the number 1 are both true (SPEC 15). Files loaded by Batchy
 * can only hold a boolean here (cfgload.c). */
static int is_true(const cJSON *record, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, name);
    double d;
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
        return 0;
    if (cJSON_IsString(v))
        return v->valuestring && v->valuestring[0] != '\0';
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        return v->child != NULL;
    if (cJSON_IsNumber(v) || cJSON_IsRaw(v))
        return doc_number(v, &d) != 1 || d != 0;
    return 1; /* true */
}

static int bad_state(bty_error *err, const char *workflow, const char *step, const char *field)
{
    return bty_error_set(err, 409,
                         "step '%.200s' of workflow '%s' has an unreadable %s in Redis; "
                         "fix it with redis-cli or reload the workflow with load_cfg",
                         step, workflow, field);
}

long long rules_current_batch(const cJSON *doc)
{
    long long max = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, doc)
    {
        long long id = batch_id_of(step);
        if (id > max)
            max = id;
    }
    return max;
}

static int oom(bty_error *err)
{
    return bty_error_set(err, 503, "out of memory; try again");
}

/* Add `record` (owned, freed on failure) as `step` of group "<id>" in
 * groups {"<batch_id>": {step: record}}: what goes into each snapshot. */
static int group_add(cJSON *groups, long long id, const char *step, cJSON *record)
{
    char id_text[32];
    snprintf(id_text, sizeof(id_text), "%lld", id);
    cJSON *group = cJSON_GetObjectItemCaseSensitive(groups, id_text);
    if (!group)
        group = cJSON_AddObjectToObject(groups, id_text);
    if (!group) {
        cJSON_Delete(record);
        return -1;
    }
    return add_new(group, step, record);
}

/* Is `name` among the first n entries of list? */
static int listed(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* The steps of `prev` that were open in a batch, as they go into their
 * batch's snapshot when that batch ends without them: status "abandoned",
 * batch_end now. Added to groups {"<batch_id>": {step: record}}; steps not
 * in `only` (n entries; 0 = every step) are left out. 0, or -1 when out of
 * memory. */
static int abandon_open(const cJSON *prev, const char *const *only, size_t n, bty_time now,
                        cJSON *groups)
{
    const cJSON *step;
    cJSON_ArrayForEach(step, prev)
    {
        long long old_id = batch_id_of(step);
        if ((n && !listed(only, n, step->string)) || strcmp(status_of(step), "open") != 0 ||
            old_id <= 0)
            continue;
        cJSON *old = cJSON_Duplicate(step, 1);
        if (group_add(groups, old_id, step->string, old) != 0 ||
            set_field(old, "status", cJSON_CreateString("abandoned")) != 0 ||
            set_time(old, "batch_end", now) != 0)
            return -1;
    }
    return 0;
}

/* Plan a MERGE of each group {"<batch_id>": {step: record}} into that
 * batch's snapshot. */
static int plan_snapshots(bty_write_plan *plan, const char *workflow, const cJSON *groups)
{
    const cJSON *group;
    cJSON_ArrayForEach(group, groups)
    {
        char key[BTY_KEY_MAX];
        key_snapshot(key, workflow, strtoll(group->string, NULL, 10));
        if (plan_add_hash(plan, key, WRITE_MERGE, group) != 0)
            return -1;
    }
    return 0;
}

int rules_load(const char *workflow, cJSON *doc, bty_time now, bty_change *out, bty_error *err)
{
    return rules_load_over(workflow, doc, NULL, now, out, err);
}

int rules_load_over(const char *workflow, cJSON *doc, const cJSON *prev, bty_time now,
                    bty_change *out, bty_error *err)
{
    size_t nfields;
    const bty_special_field *fields = special_fields(&nfields);
    memset(out, 0, sizeof(*out));
    doc_number_texts(doc);
    cJSON *step;
    cJSON_ArrayForEach(step, doc)
    {
        int failed = !cJSON_GetObjectItemCaseSensitive(step, "status") &&
                     set_field(step, "status", cJSON_CreateString("new")) != 0;
        /* Times are stored one way, UTC and canonical, whatever form the
         * file used (cfg_parse checked that they parse). */
        for (size_t i = 0; i < nfields && !failed; i++) {
            bty_time t;
            if (fields[i].canonical && fields[i].type == FIELD_TIME &&
                time_field(step, fields[i].name, &t) == 1)
                failed = set_time(step, fields[i].name, t) != 0;
        }
        if (failed) {
            cJSON_Delete(doc);
            return oom(err);
        }
    }
    out->state = doc;
    out->batch_id = rules_current_batch(doc);
    out->reads_all = 1; /* what it abandons depends on every step */
    char key[BTY_KEY_MAX];
    key_init_snapshot(key, workflow, (long long)now.sec);
    /* A batch still open loses its open steps: its snapshot says so, as
     * an open does for the steps it reopens. */
    cJSON *abandoned = cJSON_CreateObject();
    if (!abandoned || (prev && abandon_open(prev, NULL, 0, now, abandoned) != 0) ||
        plan_add_hash(&out->plan, workflow, WRITE_REPLACE, doc) != 0 ||
        plan_add_same(&out->plan, key, WRITE_REPLACE, doc, 0) != 0 ||
        plan_snapshots(&out->plan, workflow, abandoned) != 0) {
        cJSON_Delete(abandoned);
        change_free(out);
        return oom(err);
    }
    cJSON_Delete(abandoned);
    return 0;
}

int rules_load_keep(const char *workflow, cJSON *doc, const cJSON *prev, bty_time now,
                    bty_change *out, bty_error *err)
{
    static const char *const state[] = {"status",      "from_date", "to_date",       "batch_id",
                                        "batch_start", "batch_end", "error_message", "rewind_to"};
    cJSON *step;
    cJSON_ArrayForEach(step, doc)
    {
        const cJSON *was = prev ? cJSON_GetObjectItemCaseSensitive(prev, step->string) : NULL;
        for (size_t i = 0; was && i < sizeof(state) / sizeof(state[0]); i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(was, state[i]);
            if (!v || cJSON_GetObjectItemCaseSensitive(step, state[i]))
                continue; /* the file sets it, or there is nothing to keep */
            cJSON *copy = cJSON_Duplicate(v, 1);
            if (!copy || !cJSON_AddItemToObject(step, state[i], copy)) {
                cJSON_Delete(copy);
                cJSON_Delete(doc);
                return oom(err);
            }
        }
    }
    /* Nothing is abandoned: a batch still open stays open, and its close
     * finds its steps as they were. */
    return rules_load_over(workflow, doc, NULL, now, out, err);
}

static int not_loaded(const char *workflow, bty_error *err);

int rules_rewind(const char *workflow, const cJSON *prev, const char *const *steps, size_t nsteps,
                 bty_time to, bty_time now, bty_change *out, bty_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_GetArraySize(prev))
        return not_loaded(workflow, err);
    bty_time origin;
    time_parse(BTY_ORIGIN, &origin);
    char shown[BTY_TIME_LEN + 1];
    time_format(to, shown);
    if (to.sec < origin.sec || (to.sec == origin.sec && to.usec < origin.usec) ||
        to.sec > now.sec || (to.sec == now.sec && to.usec > now.usec))
        return bty_error_set(err, 400, "from_date %s is not between %s and now", shown, BTY_ORIGIN);
    for (size_t i = 0; i < nsteps; i++)
        if (!cJSON_GetObjectItemCaseSensitive(prev, steps[i]))
            return bty_error_set(err, 404, "workflow '%s' has no step '%.200s'", workflow,
                                 steps[i]);
    const cJSON *step;
    cJSON_ArrayForEach(step, prev)
    {
        if ((!nsteps || listed(steps, nsteps, step->string)) &&
            strcmp(status_of(step), "open") == 0)
            return bty_error_set(err, 409,
                                 "step '%.200s' of workflow '%s' is open; close or fail it "
                                 "first, then rewind",
                                 step->string, workflow);
    }
    cJSON *state = cJSON_Duplicate(prev, 1), *changed = cJSON_CreateObject();
    if (!state || !changed)
        goto oom;
    cJSON *record;
    cJSON_ArrayForEach(record, state)
    {
        if (nsteps && !listed(steps, nsteps, record->string))
            continue;
        if (set_time(record, "rewind_to", to) != 0 ||
            add_new(changed, record->string, cJSON_CreateObjectReference(record->child)) != 0)
            goto oom;
    }
    out->state = state;
    out->batch_id = rules_current_batch(state);
    /* Only the steps it rewinds: compared, and written, alone. */
    if (plan_add_hash(&out->plan, workflow, WRITE_MERGE, changed) != 0) {
        change_free(out);
        state = NULL;
        goto oom;
    }
    cJSON_Delete(changed);
    return 0;
oom:
    cJSON_Delete(state);
    cJSON_Delete(changed);
    memset(out, 0, sizeof(*out));
    return oom(err);
}

/* The window start of one step for a batch opened at `now`. */
static int next_from_date(const char *workflow, const cJSON *prev, bty_time *from, bty_error *err)
{
    const char *name = prev->string;
    bty_time start;
    /* A rewind says exactly where: no reprocessing, no truncation. */
    int rewound = time_field(prev, "rewind_to", from);
    if (rewound < 0)
        return bad_state(err, workflow, name, "rewind_to");
    if (rewound > 0)
        return 0;
    int has_start = time_field(prev, "batch_start", &start);
    if (strcmp(status_of(prev), "success") == 0 && has_start != 0) {
        if (has_start < 0)
            return bad_state(err, workflow, name, "batch_start");
        double hours = 0;
        int got = number_field(prev, "reprocess_hours", &hours);
        if (got < 0 || hours < 0 || hours > BTY_MAX_REPROCESS_HOURS)
            return bad_state(err, workflow, name, "reprocess_hours");
        *from = time_add_usec(start, -(int64_t)llround(hours * 3600e6));
    } else {
        int got = time_field(prev, "from_date", from);
        if (got < 0)
            return bad_state(err, workflow, name, "from_date");
        if (got == 0)
            time_parse(BTY_ORIGIN, from);
    }
    if (is_true(prev, "trunc_start"))
        *from = time_trunc_day(*from);
    return 0;
}

/* A workflow without steps is one that was never loaded (or was deleted):
 * Redis has no hash for it. */
static int not_loaded(const char *workflow, bty_error *err)
{
    return bty_error_set(err, 404,
                         "workflow '%s' is not loaded; put cfg/%s.yaml in place and "
                         "call load_cfg/%s",
                         workflow, workflow, workflow);
}

int rules_open(const char *workflow, const cJSON *prev, bty_time now, long long min_batch_id,
               bty_change *out, bty_error *err)
{
    return rules_open_steps(workflow, prev, NULL, 0, now, min_batch_id, out, err);
}

int rules_open_steps(const char *workflow, const cJSON *prev, const char *const *steps,
                     size_t nsteps, bty_time now, long long min_batch_id, bty_change *out,
                     bty_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_GetArraySize(prev))
        return not_loaded(workflow, err);
    for (size_t i = 0; i < nsteps; i++)
        if (!cJSON_GetObjectItemCaseSensitive(prev, steps[i]))
            return bty_error_set(err, 404, "workflow '%s' has no step '%.200s'", workflow,
                                 steps[i]);

    long long last = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, prev)
    {
        long long id = batch_id_of(step);
        if (id < 0)
            return bad_state(err, workflow, step->string, "batch_id");
        if (id > last)
            last = id;
    }
    /* Strictly increasing even when two opens fall in the same second;
     * never an id whose snapshot exists (min_batch_id: see apply.c). */
    long long batch_id = now.sec > last ? (long long)now.sec : last + 1;
    if (batch_id < min_batch_id)
        batch_id = min_batch_id;
    /* An id past the bound would be written, then read back as unreadable
     * (batch_id_of), and every later call on the workflow would fail. */
    if (batch_id > BTY_MAX_BATCH_ID)
        return bty_error_set(err, 409,
                             "workflow '%s' has reached the largest batch id (%lld); lower the "
                             "batch_id of its steps in cfg/%s.yaml and reload it with load_cfg/%s",
                             workflow, BTY_MAX_BATCH_ID, workflow, workflow);

    cJSON *state = cJSON_CreateObject();
    cJSON *abandoned = cJSON_CreateObject(); /* {"<old id>": {step: record}} */
    cJSON *opened = cJSON_CreateObject();    /* {step: record} of the steps opened */
    if (!state || !abandoned || !opened || abandon_open(prev, steps, nsteps, now, abandoned) != 0)
        goto oom;
    cJSON_ArrayForEach(step, prev)
    {
        cJSON *record = cJSON_Duplicate(step, 1);
        if (nsteps && !listed(steps, nsteps, step->string)) {
            /* not reopened: kept as it is, whatever its state */
            if (add_new(state, step->string, record) != 0)
                goto oom;
            continue;
        }
        bty_time from = {0};
        if (next_from_date(workflow, step, &from, err) != 0) {
            cJSON_Delete(record);
            goto fail;
        }
        if (add_new(state, step->string, record) != 0 || set_time(record, "from_date", from) != 0 ||
            set_time(record, "to_date", now) != 0 || set_time(record, "batch_start", now) != 0 ||
            set_field(record, "batch_end", cJSON_CreateNull()) != 0 ||
            set_field(record, "status", cJSON_CreateString("open")) != 0 ||
            set_field(record, "batch_id", doc_create_integer(batch_id)) != 0)
            goto oom;
        cJSON_DeleteItemFromObjectCaseSensitive(record, "error_message");
        cJSON_DeleteItemFromObjectCaseSensitive(record, "rewind_to"); /* used: from_date */
        /* A reference, not a copy: it only says what to write. */
        if (nsteps && add_new(opened, step->string, cJSON_CreateObjectReference(record->child)))
            goto oom;
    }

    out->state = state;
    out->batch_id = batch_id;
    out->reads_all = 1; /* the id depends on every step's */
    char key[BTY_KEY_MAX];
    key_snapshot(key, workflow, batch_id);
    /* <wf> gets the steps opened; the new snapshot the whole workflow as
     * of this open. The snapshot must be new: after a load_cfg reset the
     * batch ids, an earlier batch may have had this id, and its history
     * must stay. */
    if ((nsteps ? plan_add_hash(&out->plan, workflow, WRITE_MERGE, opened) != 0 ||
                      plan_add_hash(&out->plan, key, WRITE_CREATE, state) != 0
                : plan_add_hash(&out->plan, workflow, WRITE_MERGE, state) != 0 ||
                      plan_add_same(&out->plan, key, WRITE_CREATE, state, 0) != 0) ||
        plan_snapshots(&out->plan, workflow, abandoned) != 0)
        goto oom_out;
    cJSON_Delete(abandoned);
    cJSON_Delete(opened);
    return 0;

oom_out:
    change_free(out);
    state = NULL;
oom:
    oom(err);
fail:
    cJSON_Delete(state);
    cJSON_Delete(abandoned);
    cJSON_Delete(opened);
    memset(out, 0, sizeof(*out));
    return -1;
}

int rules_end(const char *workflow, const cJSON *state, const bty_end_request *req, bty_time now,
              bty_change *out, bty_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_GetArraySize(state))
        return not_loaded(workflow, err);
    int failing = strcmp(req->status, "failed") == 0;
    const char *verb = failing ? "fail_batch" : "close_batch";

    for (size_t i = 0; i < req->nextra; i++) {
        const char *name = req->extra_names[i];
        if (!name[0])
            return bty_error_set(err, 400, "a query parameter has an empty name");
        if (strcmp(name, "error") == 0 && !failing)
            return bty_error_set(err, 400, "error= is for fail_batch; close_batch records success");
        if (is_reserved(name))
            return bty_error_set(err, 400,
                                 "'%.100s' is a special field that %s cannot set; "
                                 "use another parameter name",
                                 name, verb);
        if (strlen(name) > 256)
            return bty_error_set(err, 400, "parameter name too long (256 bytes at most)");
    }
    for (size_t i = 0; i < req->nsteps; i++)
        if (!cJSON_GetObjectItemCaseSensitive(state, req->steps[i]))
            return bty_error_set(err, 404, "workflow '%s' has no step '%.200s'", workflow,
                                 req->steps[i]);

    /* batch_id= is each affected step's own batch: after a partial open,
     * the steps of one workflow may be in different batches. */
    const cJSON *step;
    cJSON_ArrayForEach(step, state)
    {
        if (!req->has_batch_id || (req->nsteps && !listed(req->steps, req->nsteps, step->string)))
            continue;
        long long own = batch_id_of(step);
        if (own != req->batch_id)
            return bty_error_set(err, 409,
                                 "batch %lld is not the current batch of step '%.200s' of "
                                 "workflow '%s' (%lld); a newer batch was opened, so this one "
                                 "cannot be closed",
                                 req->batch_id, step->string, workflow, own);
    }

    /* A retry: every affected step already ended this way in its batch.
     * Otherwise every affected step must be open. */
    int retry = 1;
    cJSON_ArrayForEach(step, state)
    {
        if (req->nsteps && !listed(req->steps, req->nsteps, step->string))
            continue;
        if (strcmp(status_of(step), req->status) != 0)
            retry = 0;
    }
    cJSON_ArrayForEach(step, state)
    {
        if (retry || (req->nsteps && !listed(req->steps, req->nsteps, step->string)))
            continue;
        if (strcmp(status_of(step), "open") != 0)
            return bty_error_set(err, 409,
                                 "step '%.200s' of workflow '%s' is not open (status '%.20s'); "
                                 "open a batch with open_batch/%s first",
                                 step->string, workflow, status_of(step), workflow);
    }
    out->batch_id = rules_current_batch(state);
    out->state = cJSON_Duplicate(state, 1);
    if (!out->state)
        return oom(err);
    if (retry)
        return 0;

    /* Each ended step is written into <wf> and into its batch's snapshot. */
    cJSON *latest = cJSON_CreateObject();
    cJSON *by_batch = cJSON_CreateObject();
    if (!latest || !by_batch)
        goto oom;
    cJSON *record;
    cJSON_ArrayForEach(record, out->state)
    {
        if (req->nsteps && !listed(req->steps, req->nsteps, record->string))
            continue;
        if (set_field(record, "status", cJSON_CreateString(req->status)) != 0 ||
            set_time(record, "batch_end", now) != 0 ||
            (failing && req->error_message &&
             set_field(record, "error_message", cJSON_CreateString(req->error_message)) != 0))
            goto oom;
        for (size_t i = 0; i < req->nextra; i++)
            if (set_field(record, req->extra_names[i], cJSON_CreateString(req->extra_values[i])))
                goto oom;
        /* References, not copies: these only say what to write. */
        if (add_new(latest, record->string, cJSON_CreateObjectReference(record->child)) != 0)
            goto oom;
        long long id = batch_id_of(record);
        if (id > 0 && group_add(by_batch, id, record->string,
                                cJSON_CreateObjectReference(record->child)) != 0)
            goto oom; /* id 0: opened by hand without a batch, no snapshot */
    }
    if (plan_add_hash(&out->plan, workflow, WRITE_MERGE, latest) != 0)
        goto oom;
    cJSON *group;
    cJSON_ArrayForEach(group, by_batch)
    {
        char key[BTY_KEY_MAX];
        key_snapshot(key, workflow, strtoll(group->string, NULL, 10));
        if (plan_add_same(&out->plan, key, WRITE_MERGE, group, 0) != 0)
            goto oom;
    }
    cJSON_Delete(latest);
    cJSON_Delete(by_batch);
    return 0;
oom:
    cJSON_Delete(latest);
    cJSON_Delete(by_batch);
    change_free(out);
    return oom(err);
}

int batch_id_parse(const char *text, long long *out)
{
    char *end;
    if (!text || text[0] < '0' || text[0] > '9' || strlen(text) > 16)
        return -1;
    *out = strtoll(text, &end, 10);
    return *end ? -1 : 0;
}

int end_params_read(bty_end_params *p, const char *status, char *const *names, char *const *values,
                    size_t n, int skip_token, bty_error *err)
{
    memset(p, 0, sizeof(*p));
    p->req.status = status;
    if (n > BTY_MAX_PARAMS)
        return bty_error_set(err, 400, "too many parameters (%d at most)", BTY_MAX_PARAMS);
    /* Room for every name the step= values may hold (one more than their
     * commas), up to the limit. */
    size_t most_steps = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], "step") != 0)
            continue;
        most_steps++;
        for (const char *c = values[i]; (c = strchr(c, ',')); c++)
            most_steps++;
    }
    if (most_steps > BTY_MAX_STEP_NAMES)
        most_steps = BTY_MAX_STEP_NAMES;
    p->steps = malloc((most_steps ? most_steps : 1) * sizeof(*p->steps));
    p->extra_names = malloc((n ? n : 1) * sizeof(*p->extra_names));
    p->extra_values = malloc((n ? n : 1) * sizeof(*p->extra_values));
    p->lists = malloc((n ? n : 1) * sizeof(*p->lists));
    if (!p->steps || !p->extra_names || !p->extra_values || !p->lists)
        return bty_error_set(err, 503, "out of memory; try again");
    p->req.steps = p->steps;
    p->req.extra_names = p->extra_names;
    p->req.extra_values = p->extra_values;
    int failing = strcmp(status, "failed") == 0, has_step = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i], *value = values[i];
        if (skip_token && strcmp(name, "token") == 0)
            continue;
        if (strcmp(name, "step") == 0) {
            has_step = 1;
            char *list = p->lists[p->nlists++] = strdup(value);
            if (!list)
                return bty_error_set(err, 503, "out of memory; try again");
            char *save = NULL;
            for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
                if (p->req.nsteps == most_steps)
                    return bty_error_set(err, 400, "too many step= values");
                if (name_step_check(s, err) != 0)
                    return -1; /* not a name at all: 400, not "no such step" */
                p->steps[p->req.nsteps++] = s;
            }
        } else if (strcmp(name, "batch_id") == 0) {
            if (batch_id_parse(value, &p->req.batch_id) != 0)
                return bty_error_set(err, 400, "batch_id must be a whole number, not '%.40s'",
                                     value);
            p->req.has_batch_id = 1;
        } else if (failing && strcmp(name, "error") == 0) {
            p->req.error_message = value;
        } else {
            p->extra_names[p->req.nextra] = name;
            p->extra_values[p->req.nextra++] = value;
        }
    }
    if (has_step && !p->req.nsteps)
        return bty_error_set(err, 400, "step= is empty; name one or more steps, or leave it out");
    return 0;
}

void end_params_free(bty_end_params *p)
{
    for (size_t i = 0; i < p->nlists; i++)
        free(p->lists[i]);
    free(p->lists);
    free(p->steps);
    free(p->extra_names);
    free(p->extra_values);
    memset(p, 0, sizeof(*p));
}
