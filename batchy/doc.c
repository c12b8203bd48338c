/*
 * doc.c - workflow documents and how they map onto Redis hashes.
 *
 * In Redis a workflow is a hash with one field per step whose value is the
 * step's record as JSON text. Here it is a cJSON object {step: record} with
 * steps in byte order of their names. doc_from_hash decodes what was read;
 * plan_add_hash encodes what is to be written. Both are pure: the store
 * (resp.c, store.c, plan.lua) does the reading and writing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchy.h"

static int compare_names(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a;
    const cJSON *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

void doc_sort(cJSON *doc)
{
    size_t n = 0;
    cJSON *item;
    cJSON_ArrayForEach(item, doc) n++;
    if (n < 2)
        return;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, not of cJSON */
    cJSON **items = malloc(n * sizeof(*items));
    if (!items)
        return; /* unsorted is still a valid document */
    size_t i = 0;
    cJSON_ArrayForEach(item, doc) items[i++] = item;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): likewise, the size of one pointer */
    qsort(items, n, sizeof(*items), compare_names);
    /* Relink the children list in sorted order. */
    for (i = 0; i < n; i++) {
        items[i]->prev = i ? items[i - 1] : items[n - 1];
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
    }
    doc->child = items[0];
    free(items);
}

/* Records written by the original service may say "failure": read it as
 * "failed" so the rules see one spelling. */
static void normalise_record(cJSON *record)
{
    cJSON *status = cJSON_GetObjectItemCaseSensitive(record, "status");
    if (cJSON_IsString(status) && strcmp(status->valuestring, "failure") == 0)
        cJSON_ReplaceItemInObjectCaseSensitive(record, "status", cJSON_CreateString("failed"));
}

typedef struct member_ref {
    cJSON *item;
    size_t index; /* place in the record */
} member_ref;

static int compare_members(const void *a, const void *b)
{
    const member_ref *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* A record edited by hand may hold a key twice. The rules would then set
 * or remove one copy and leave the other (an old error_message, a second
 * status), and JSON readers disagree on which copy counts. Keep the last
 * one, as Python, jq and JavaScript read it. Sorting keeps this
 * O(n log n) for records of many fields. Returns 0, or -1 when out of
 * memory. */
/* 1 when two members of a small record share a name (quadratic). */
static int has_duplicate_key(const cJSON *record)
{
    for (const cJSON *a = record->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return 1;
    return 0;
}

static int drop_duplicate_keys(cJSON *record)
{
    size_t n = 0, i = 0;
    cJSON *item;
    cJSON_ArrayForEach(item, record) n++;
    if (n < 2 || (n <= 32 && !has_duplicate_key(record)))
        return 0; /* the usual case, read on every call: no allocation */
    member_ref *refs = malloc(n * sizeof(*refs));
    if (!refs)
        return -1;
    cJSON_ArrayForEach(item, record)
    {
        refs[i].item = item;
        refs[i].index = i;
        i++;
    }
    qsort(refs, n, sizeof(*refs), compare_members);
    /* Equal names are adjacent, earlier copies first. */
    for (i = 0; i + 1 < n; i++)
        if (strcmp(refs[i].item->string, refs[i + 1].item->string) == 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(record, refs[i].item));
    free(refs);
    return 0;
}

cJSON *doc_from_hash(const bty_field *fields, size_t n, const char *key, bty_error *err)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        char *name = strndup(fields[i].name, fields[i].name_len);
        if (!name)
            goto oom;
        cJSON *record = cJSON_ParseWithLength(fields[i].value, fields[i].value_len);
        if (!cJSON_IsObject(record)) {
            bty_error_set(err, 409,
                          "step '%.200s' of key '%.140s' is not a JSON object in Redis; "
                          "fix it with redis-cli or reload the workflow with load_cfg",
                          name, key);
            free(name);
            cJSON_Delete(record);
            cJSON_Delete(doc);
            return NULL;
        }
        if (drop_duplicate_keys(record) != 0) {
            free(name);
            cJSON_Delete(record);
            goto oom;
        }
        normalise_record(record);
        doc_exact_integers(record);
        /* A hash cannot hold a field twice, so plain add is safe. */
        cJSON_AddItemToObject(doc, name, record);
        free(name);
    }
    doc_sort(doc);
    return doc;
oom:
    cJSON_Delete(doc);
    bty_error_set(err, 503, "out of memory decoding '%.140s'", key);
    return NULL;
}

/* The decimal digits of a whole number, as a new string; NULL when d is
 * not whole, not finite or -0 (left to cJSON), or out of memory. */
static char *integer_text(double d)
{
    char buf[400];
    if (!(d == floor(d)) || fabs(d) >= 1e300 || (d == 0 && signbit(d)))
        return NULL;
    if (fabs(d) >= 9e18) {
        snprintf(buf, sizeof(buf), "%.0f", d);
        return strdup(buf);
    }
    long long v = (long long)d;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
    char *p = buf + sizeof(buf);
    *--p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return strdup(p);
}

void doc_exact_integers(cJSON *item)
{
    for (cJSON *child = item ? item->child : NULL; child; child = child->next) {
        if (child->child) {
            doc_exact_integers(child);
        } else if (cJSON_IsNumber(child)) {
            /* Turn the item into a raw one in place: its place in the
             * parent and its key stay as they are. Left a number when
             * memory runs out: cJSON prints it all the same. */
            char *raw = integer_text(child->valuedouble);
            if (raw) {
                child->type = cJSON_Raw;
                child->valuestring = raw;
            }
        }
    }
}

cJSON *doc_create_integer(long long v)
{
    cJSON *item = cJSON_CreateNumber((double)v);
    char *raw = item ? integer_text((double)v) : NULL;
    if (raw) {
        item->type = cJSON_Raw;
        item->valuestring = raw;
    }
    return item;
}

int doc_number(const cJSON *v, double *out)
{
    if (cJSON_IsRaw(v) && v->valuestring) {
        /* Digits as integer_text writes them: read without strtod, which
         * costs more than the rest of reading a record's batch id. */
        const char *p = v->valuestring + (v->valuestring[0] == '-');
        long long n = 0;
        size_t len = 0;
        while (p[len] >= '0' && p[len] <= '9' && len < 15)
            n = n * 10 + (p[len++] - '0');
        if (len && !p[len]) {
            *out = v->valuestring[0] == '-' ? -(double)n : (double)n;
            return 1;
        }
    }
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return isfinite(*out) ? 1 : -1;
    }
    if ((cJSON_IsString(v) || cJSON_IsRaw(v)) && v->valuestring && v->valuestring[0]) {
        char *end;
        *out = strtod(v->valuestring, &end);
        return *end == '\0' && isfinite(*out) ? 1 : -1;
    }
    return -1;
}

/* Add hash `key` to the plan with the names of `steps` and no values yet
 * (NULL). 0, or -1 on out of memory (the half-built entry is counted, so
 * plan_free releases it). */
static int plan_add_hash_names(bty_write_plan *plan, const char *key, bty_write_mode mode,
                               const cJSON *steps)
{
    bty_hash_write *grown = realloc(plan->hashes, (plan->n + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    plan->hashes = grown;
    bty_hash_write *h = &plan->hashes[plan->n];
    memset(h, 0, sizeof(*h));
    h->mode = mode;
    h->key = strdup(key);
    size_t n = (size_t)cJSON_GetArraySize(steps);
    h->names = calloc(n ? n : 1, sizeof(char *));
    h->values = calloc(n ? n : 1, sizeof(char *));
    plan->n++;
    if (!h->key || !h->names || !h->values)
        return -1;
    const cJSON *step;
    cJSON_ArrayForEach(step, steps)
    {
        if (!(h->names[h->n] = strdup(step->string)))
            return -1;
        h->n++;
    }
    return 0;
}

int plan_add_hash(bty_write_plan *plan, const char *key, bty_write_mode mode, const cJSON *steps)
{
    if (plan_add_hash_names(plan, key, mode, steps) != 0)
        return -1;
    bty_hash_write *h = &plan->hashes[plan->n - 1];
    size_t i = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, steps)
    {
        if (!(h->values[i++] = cJSON_PrintUnformatted(step)))
            return -1;
    }
    return 0;
}

int plan_add_same(bty_write_plan *plan, const char *key, bty_write_mode mode, const cJSON *steps,
                  size_t like)
{
    if (plan_add_hash_names(plan, key, mode, steps) != 0)
        return -1;
    const bty_hash_write *src = &plan->hashes[like];
    bty_hash_write *h = &plan->hashes[plan->n - 1];
    size_t i = 0, j = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, steps)
    {
        /* Both in document order: the twin, if any, is further on. */
        size_t k = j;
        while (k < src->n && strcmp(src->names[k], step->string) != 0)
            k++;
        if (k < src->n) {
            h->values[i] = strdup(src->values[k]);
            j = k + 1;
        } else {
            h->values[i] = cJSON_PrintUnformatted(step);
        }
        if (!h->values[i++])
            return -1;
    }
    return 0;
}

void plan_free(bty_write_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        bty_hash_write *h = &plan->hashes[i];
        for (size_t j = 0; j < h->n; j++) {
            free(h->names[j]);
            free(h->values[j]);
        }
        free(h->names);
        free(h->values);
        free(h->key);
    }
    free(plan->hashes);
    plan->hashes = NULL;
    plan->n = 0;
}
