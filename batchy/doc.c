/*
 * doc.c - workflow documents and how they map onto Redis hashes.
 *
 * In Redis a workflow is a hash with one field per step whose value is the
 * step's record as JSON text. Here it is a cJSON object {step: record} with
 * steps in byte order of their names. doc_from_hash decodes what was read;
 * plan_add_hash encodes what is to be written. Both are pure: the store
 * (resp.c, store.c, plan.lua) does the reading and writing.
 *
 * Every endpoint reads Redis through doc_from_hash, so it alone judges
 * state edited by hand, once for all of them (scripts/check-state judges
 * it the same way). Read leniently, as the original wrote or a hand would:
 * ", " separators, numbers as numeric text, "failure" for "failed", a key
 * written twice (the last copy counts). Refused with a 409 naming the step
 * and the field, since the rules could not keep it or an answer could not
 * carry it: a step name that is not UTF-8; a record that is not one JSON
 * object (text after it included); a string, key or value at any depth,
 * that is not UTF-8 or holds \u0000 (a C string ends there, so the rest
 * would be lost); a batch_id that is not a whole number from 0 to
 * BTY_MAX_BATCH_ID.
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

/* ------------------------------------------------------------ hand edits */

#define FIX_IT "fix it with redis-cli or reload the workflow with load_cfg"

/* The 409 for step `name` of `key`: "<what>" says what is wrong, naming
 * the field, or "the record" when it is about the whole value. */
static int refuse_record(bty_error *err, const char *key, const char *name, const char *what)
{
    return bty_error_set(err, 409, "step '%.200s' of key '%.140s' in Redis: %s; " FIX_IT, name, key,
                         what);
}

/* JSON's own whitespace (RFC 8259). cJSON also skips control bytes around
 * a value, which JSON readers such as Python's refuse. */
static int json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The first string of item (its key, then its value, then its children's,
 * depth first) that is not valid UTF-8, or NULL. Text already known to be
 * valid UTF-8 without NUL as a whole holds none; this only names it. */
static const cJSON *first_invalid_utf8(const cJSON *item)
{
    if (item->string && !utf8_valid(item->string, strlen(item->string)))
        return item;
    if (cJSON_IsString(item) && !utf8_valid(item->valuestring, strlen(item->valuestring)))
        return item;
    for (const cJSON *child = item->child; child; child = child->next) {
        const cJSON *bad = first_invalid_utf8(child);
        if (bad)
            return bad;
    }
    return NULL;
}

/* 1 when the JSON text[0..len) (parsed without error) writes \u0000 in a
 * string: every backslash of valid JSON text starts an escape inside a
 * string, so stepping over escapes two bytes at a time finds them all. */
static int has_nul_escape(const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) && end - p >= 2) {
        if (p[1] == 'u' && end - p >= 6 && memcmp(p + 2, "0000", 4) == 0)
            return 1;
        p += 2;
    }
    return 0;
}

/* 1 when item a, its key or anything in it, differs from b, the same
 * place in a twin tree parsed from the same text with each \u0000 written
 * as \u0001: there cJSON cut a's text at the NUL. */
static int differs(const cJSON *a, const cJSON *b)
{
    if ((a->string || b->string) && (!a->string || !b->string || strcmp(a->string, b->string) != 0))
        return 1;
    if (cJSON_IsString(a) && strcmp(a->valuestring, b->valuestring) != 0)
        return 1;
    for (a = a->child, b = b->child; a && b; a = a->next, b = b->next)
        if (differs(a, b))
            return 1;
    return 0;
}

/* Name the top-level field of record that holds \u0000, parsing text
 * again with the escapes made \u0001 (same length, so same shape) and
 * comparing: the field whose text changed. Writes what to say into what.
 * 0, or -1 when out of memory. */
static int describe_nul(const cJSON *record, const char *text, size_t len, char *what, size_t size)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, len);
    for (size_t i = 0; i + 1 < len; i++) {
        if (copy[i] != '\\')
            continue;
        if (copy[i + 1] == 'u' && i + 6 <= len && memcmp(copy + i + 2, "0000", 4) == 0)
            copy[i + 5] = '1';
        i++; /* over the escaped byte */
    }
    cJSON *twin = cJSON_ParseWithLength(copy, len);
    free(copy);
    if (!twin)
        return -1;
    const cJSON *a = record->child, *b = twin->child;
    while (a && b && !differs(a, b))
        a = a->next, b = b->next;
    if (a && b && a->string && strcmp(a->string, b->string) != 0)
        snprintf(what, size, "the name of field '%.100s' holds \\u0000, where it is cut short",
                 a->string);
    else if (a)
        snprintf(what, size, "field '%.100s' holds \\u0000, where its text is cut short",
                 a->string);
    else
        snprintf(what, size, "the record holds \\u0000");
    cJSON_Delete(twin);
    return 0;
}

/* The batch_id of a record is absent, null, a whole number from 0 to
 * BTY_MAX_BATCH_ID, or that number as decimal digits (a hand edit, as
 * rules.c reads it). 1 when it is, else 0. */
static int batch_id_readable(const cJSON *record)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, "batch_id");
    double d;
    if (!v || cJSON_IsNull(v))
        return 1;
    if (cJSON_IsString(v)) {
        const char *p = v->valuestring;
        long long n = 0;
        if (!*p)
            return 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return 0;
            n = n * 10 + (*p - '0');
            if (n > BTY_MAX_BATCH_ID)
                return 0;
        }
        return 1;
    }
    return (cJSON_IsNumber(v) || cJSON_IsRaw(v)) && doc_number(v, &d) == 1 && d >= 0 &&
           d <= (double)BTY_MAX_BATCH_ID && d == floor(d);
}

/* 1 when text[0..len) is ASCII without NUL: what Batchy and the original
 * write (json.dumps escapes the rest), checked faster than utf8_valid
 * checks it, since every call reads every record of its workflow. */
static int plain_ascii(const char *text, size_t len)
{
    unsigned char bad = 0;
    for (size_t i = 0; i < len; i++)
        bad |= (unsigned char)((unsigned char)text[i] - 1) >= 0x7F;
    return !bad;
}

/* ------------------------------------------------------------ numbers */

/* The text of number token tok[0..len) as Python's json.dumps would write
 * it back after json.loads: integers as their digits ("-0" is 0), other
 * numbers as repr(float) ("1.50" is 1.5, "1E5" is 100000.0). A new string,
 * or NULL when out of memory. */
static char *number_text(const char *tok, size_t len)
{
    char num[PY_FLOAT_MAX];
    if (!memchr(tok, '.', len) && !memchr(tok, 'e', len) && !memchr(tok, 'E', len)) {
        if (len == 2 && tok[0] == '-' && tok[1] == '0')
            return strdup("0");
        return strndup(tok, len);
    }
    char *copy = strndup(tok, len);
    if (!copy)
        return NULL;
    double v = strtod(copy, NULL);
    if (!isfinite(v)) /* 1e400: Python would write Infinity, which no JSON reader takes */
        return copy;
    free(copy);
    py_float_repr(v, num);
    return strdup(num);
}

/* Make number item `item` a raw one in place, with `text` (owned now):
 * its place in the parent and its key stay as they are. */
static void become_raw(cJSON *item, char *text)
{
    item->type = cJSON_Raw;
    item->valuestring = text;
}

/* The next number token of JSON text [*at, end), or NULL: *at moves past
 * it and *len is its length. Strings are skipped (a digit in a string is
 * no number); nothing else in valid JSON starts with '-' or a digit. */
static const char *next_number(const char **at, const char *end, size_t *len)
{
    const char *p = *at;
    while (p < end) {
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            p++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *start = p;
            while (p < end && strchr("0123456789+-.eE", *p) && *p)
                p++;
            *len = (size_t)(p - start);
            *at = p;
            return start;
        } else {
            p++;
        }
    }
    *at = end;
    return NULL;
}

/* Give the numbers of `item`, parsed from [*at, end), their text there:
 * cJSON keeps the members of objects and arrays in the order of the text,
 * so the n-th number item met depth first is the n-th number token. */
static void keep_number_texts(cJSON *item, const char **at, const char *end)
{
    for (cJSON *child = item->child; child; child = child->next) {
        if (child->child) {
            keep_number_texts(child, at, end);
        } else if (cJSON_IsNumber(child)) {
            size_t len;
            const char *tok = next_number(at, end, &len);
            char *text = tok ? number_text(tok, len) : NULL;
            if (text) /* left a number when out of memory: it prints all the same */
                become_raw(child, text);
        }
    }
}

/* ------------------------------------------------------------ records */

/* Parse and judge the record of step `name`. Returns a new object, or
 * NULL with err set (409, or 503 when out of memory). */
static cJSON *record_from(const bty_field *f, const char *name, const char *key, bty_error *err)
{
    char what[300];
    const char *end = NULL;
    if (!plain_ascii(f->value, f->value_len) && !utf8_valid(f->value, f->value_len)) {
        /* Not one string in Redis can pass: find which one to name. */
        int has_nul = memchr(f->value, '\0', f->value_len) != NULL;
        cJSON *record = has_nul ? NULL : cJSON_ParseWithLength(f->value, f->value_len);
        const cJSON *top = record ? record->child : NULL;
        while (top && !first_invalid_utf8(top))
            top = top->next;
        if (!record)
            snprintf(what, sizeof(what), "the record %s",
                     has_nul ? "holds a NUL byte" : "is not valid UTF-8");
        else if (top)
            snprintf(what, sizeof(what), "field '%.100s' is not valid UTF-8", top->string);
        else
            snprintf(what, sizeof(what), "the record is not valid UTF-8");
        cJSON_Delete(record);
        refuse_record(err, key, name, what);
        return NULL;
    }
    cJSON *record = cJSON_ParseWithLengthOpts(f->value, f->value_len, &end, 0);
    if (!cJSON_IsObject(record)) {
        cJSON_Delete(record);
        refuse_record(err, key, name, "the record is not a JSON object");
        return NULL;
    }
    size_t rest = (size_t)(f->value + f->value_len - end), lead = 0;
    while (rest && json_space(end[0]))
        end++, rest--;
    while (lead < f->value_len && json_space(f->value[lead]))
        lead++;
    if (rest || f->value[lead] != '{') {
        cJSON_Delete(record);
        refuse_record(err, key, name,
                      rest ? "the record has text after its JSON object"
                           : "the record has text before its JSON object");
        return NULL;
    }
    if (has_nul_escape(f->value, f->value_len)) {
        if (describe_nul(record, f->value, f->value_len, what, sizeof(what)) != 0) {
            cJSON_Delete(record);
            bty_error_set(err, 503, "out of memory decoding '%.140s'", key);
            return NULL;
        }
        cJSON_Delete(record);
        refuse_record(err, key, name, what);
        return NULL;
    }
    return record;
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
        if (!utf8_valid(fields[i].name, fields[i].name_len)) {
            /* The message shows each byte that is not UTF-8 as '?'
             * (bty_error_set), and the name up to a NUL. */
            bty_error_set(err, 409, "step name '%.200s' of key '%.140s' in Redis %s; " FIX_IT, name,
                          key,
                          memchr(fields[i].name, '\0', fields[i].name_len)
                              ? "holds a NUL byte"
                              : "is not valid UTF-8 (shown with '?' for each byte that is not)");
            free(name);
            cJSON_Delete(doc);
            return NULL;
        }
        cJSON *record = record_from(&fields[i], name, key, err);
        if (!record) {
            free(name);
            cJSON_Delete(doc);
            return NULL;
        }
        /* Before any member is dropped: the n-th number is the n-th token. */
        const char *at = fields[i].value;
        keep_number_texts(record, &at, fields[i].value + fields[i].value_len);
        if (drop_duplicate_keys(record) != 0) {
            free(name);
            cJSON_Delete(record);
            goto oom;
        }
        normalise_record(record);
        if (!batch_id_readable(record)) {
            char shown[48], what[160];
            char *text =
                cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(record, "batch_id"));
            snprintf(shown, sizeof(shown), "%.40s", text ? text : "?");
            cJSON_free(text);
            snprintf(what, sizeof(what),
                     "field 'batch_id' is %s, not a whole number from 0 to %lld", shown,
                     BTY_MAX_BATCH_ID);
            refuse_record(err, key, name, what);
            free(name);
            cJSON_Delete(record);
            cJSON_Delete(doc);
            return NULL;
        }
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

void doc_number_texts(cJSON *item)
{
    char num[PY_FLOAT_MAX];
    for (cJSON *child = item ? item->child : NULL; child; child = child->next) {
        if (child->child) {
            doc_number_texts(child);
        } else if (cJSON_IsNumber(child) && (child->valuestring || isfinite(child->valuedouble))) {
            /* A number built with its text (a YAML float, cfgscalar.c)
             * keeps it; cJSON_Delete frees valuestring whatever the type.
             * One not finite stays a number, which cJSON prints as null
             * (repr would be Infinity, which no JSON reader takes). */
            char *text = child->valuestring;
            if (!text) {
                py_number_text(child->valuedouble, num);
                text = strdup(num);
            }
            if (text)
                become_raw(child, text);
        }
    }
}

cJSON *doc_create_integer(long long v)
{
    cJSON *item = cJSON_CreateNumber((double)v);
    char num[32];
    snprintf(num, sizeof(num), "%lld", v);
    char *raw = item ? strdup(num) : NULL;
    if (raw)
        become_raw(item, raw);
    return item;
}

int doc_number(const cJSON *v, double *out)
{
    if (cJSON_IsRaw(v) && v->valuestring) {
        /* Digits as an integer is kept: read without strtod, which
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
        if (!(h->values[i++] = py_json_print(step)))
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
            h->values[i] = py_json_print(step);
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
