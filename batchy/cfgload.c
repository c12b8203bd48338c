/*
 * cfgload.c - workflow files: YAML text -> the JSON workflow document.
 *
 * cfg_parse reads libyaml's event stream (not its document API, which
 * forgets whether a scalar carried an explicit tag) and builds the cJSON
 * tree directly, one event at a time, keeping a stack of the mappings and
 * sequences still open:
 *
 *   - each scalar becomes a JSON value as PyYAML's SafeLoader makes it
 *     (YAML 1.1), by cfgscalar.c; so does a mapping key below the steps,
 *     then written as json.dumps writes such a key (`on:` is "true",
 *     `010:` is "8"), so that keys which collide after that are duplicates;
 *     a step name is kept verbatim, though its tag must fit it;
 *   - an anchor is registered when its node completes (so an alias inside
 *     its own node is unknown: no cycles) and may not be redefined, as in
 *     PyYAML; an alias is a deep copy paid for from a node budget
 *     (CFG_MAX_NODES) checked before copying, and the nesting bound
 *     (CFG_MAX_DEPTH) holds after expansion too;
 *   - a merge key (<<) copies the members a mapping does not set itself;
 *   - step names (names.c), their number (BTY_MAX_STEPS), parameter names
 *     that would pass for special fields, and the special fields of steps
 *     (fields.c) are validated as they arrive, so an error names the line
 *     and column of the offending key or value.
 *
 * Pure: no I/O, no globals, no clock. Every failure is a bty_error: 422
 * with "source:line:column: reason" for bad input, 413 for an oversized
 * text, 500 when memory runs out.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "batchy.h"
#include "cfgscalar.h"

#define MSG_TOP_LEVEL "the top level must map step names to their parameters (step: {param: value})"
#define MSG_NO_STEPS  "no steps: the file must map at least one step name to its parameters"

/* ------------------------------------------------------------ hash table
 * Open addressing with linear probing. A key is a (serial, string) pair so
 * that one table serves every mapping of a document: the serial tells the
 * mappings apart. Key strings are borrowed; values are opaque. */
typedef struct slot {
    const char *key; /* NULL: empty slot */
    uint64_t hash;
    unsigned serial;
    void *value;
} slot;

typedef struct table {
    slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t used;
} table;

static uint64_t table_hash(unsigned serial, const char *key)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= (uint64_t)serial * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 31; /* spread the high bits into the low ones used as index */
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return h;
}

/* The slot holding (serial, key), or NULL. */
static slot *table_find(const table *t, unsigned serial, const char *key)
{
    if (!t->cap)
        return NULL;
    uint64_t h = table_hash(serial, key);
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        slot *s = &t->slots[i];
        if (!s->key)
            return NULL;
        if (s->hash == h && s->serial == serial && strcmp(s->key, key) == 0)
            return s;
    }
}

static void table_place(slot *slots, size_t cap, slot entry)
{
    size_t i = entry.hash & (cap - 1);
    while (slots[i].key)
        i = (i + 1) & (cap - 1);
    slots[i] = entry;
}

/* Add (serial, key) -> value; the pair must not be present yet. key must
 * outlive the table. Returns 0, or -1 when out of memory. */
static int table_put(table *t, unsigned serial, const char *key, void *value)
{
    if (2 * (t->used + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        slot *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].key)
                table_place(slots, cap, t->slots[i]);
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    slot entry = {key, table_hash(serial, key), serial, value};
    table_place(t->slots, t->cap, entry);
    t->used++;
    return 0;
}

/* ------------------------------------------------------------ parse state */

/* A registered anchor. A mapping or sequence is kept as a borrowed pointer
 * into the tree (completed nodes are never changed or freed before the end
 * of the parse); a scalar is kept as its text and tag and resolved again at
 * each alias, since a key has no cJSON node of its own. */
typedef struct anchor {
    char *name; /* owned; the table's key */
    cJSON *node;
    char *text;       /* scalar only, owned */
    char *tag;        /* scalar only, owned, NULL when untagged */
    int plain;        /* scalar only: written plain */
    yaml_mark_t mark; /* where the anchored node starts */
    long size;        /* nodes a copy costs, member keys included */
    long bytes;       /* text a copy holds: keys and strings */
    int height;       /* levels a copy occupies */
} anchor;

enum role {
    ROLE_ROOT,  /* the top-level mapping: step name -> step */
    ROLE_STEP,  /* a step's mapping: parameter -> value */
    ROLE_OTHER, /* any other mapping or sequence */
};

/* A mapping or sequence whose end has not been read yet. */
typedef struct frame {
    cJSON *node; /* borrowed: owned by its parent, ctx->root or ctx->graveyard */
    int is_map;
    enum role role;
    unsigned serial; /* tells this mapping's keys apart in ctx->keys */
    char *anchor;    /* owned; registered when the node completes */
    yaml_mark_t mark;
    /* mappings: the key whose value is read next */
    int have_key;
    int key_is_merge;
    char *key; /* owned; NULL for the merge key */
    /* mappings: the merge key, at most one */
    int has_merge;
    cJSON *merge;       /* its value, borrowed from ctx->graveyard */
    cJSON *merge_after; /* the member written just before <<, NULL if none */
    yaml_mark_t merge_mark;
} frame;

typedef struct cfg_ctx {
    const char *source;
    const char *text;
    size_t len;
    bty_error *err;
    cJSON *root;      /* owned: the document being built */
    cJSON *graveyard; /* owned: merge values, kept whole until the end */
    frame stack[CFG_MAX_DEPTH];
    int depth;
    long nodes; /* created so far, alias copies and keys included */
    long bytes; /* text copied by aliases and merges so far */
    long steps; /* top-level members so far */
    unsigned serials;
    int documents;
    table keys;    /* (mapping serial, member name) -> NULL */
    table anchors; /* (0, anchor name) -> anchor * */
} cfg_ctx;

/* ------------------------------------------------------------ errors */

/* Set a 422 "source:line:column: reason" error at mark; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail_at(cfg_ctx *ctx, yaml_mark_t mark,
                                                         const char *fmt, ...)
{
    char reason[sizeof(ctx->err->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return bty_error_set(ctx->err, 422, "%s:%lu:%lu: %s", ctx->source, (unsigned long)mark.line + 1,
                         (unsigned long)mark.column + 1, reason);
}

static int fail_oom(cfg_ctx *ctx)
{
    return bty_error_set(ctx->err, 500, "%s: out of memory while loading the workflow",
                         ctx->source);
}

/* A short description of a value for a message: "a mapping", "\"abc\"",
 * "12". Returns out. */
static const char *describe(const cJSON *v, char out[CFG_SHOWN_MAX + 16])
{
    char text[CFG_SHOWN_MAX + 4];
    if (cJSON_IsString(v))
        snprintf(out, CFG_SHOWN_MAX + 16, "\"%s\"", cfg_shown(v->valuestring, text));
    else if (cJSON_IsNumber(v))
        snprintf(out, CFG_SHOWN_MAX + 16, "%.15g", v->valuedouble);
    else if (cJSON_IsBool(v))
        strcpy(out, cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        strcpy(out, "null");
    else if (cJSON_IsObject(v))
        strcpy(out, "a mapping");
    else
        strcpy(out, "a sequence");
    return out;
}

/* Count n more nodes against CFG_MAX_NODES and `bytes` more copied text
 * against CFG_MAX_COPIED_BYTES (a few aliases of one long string cost few
 * nodes but much memory): 0, or -1 with the error set. */
static int count_nodes(cfg_ctx *ctx, long n, long bytes, yaml_mark_t mark)
{
    if (n > CFG_MAX_NODES - ctx->nodes)
        return fail_at(ctx, mark,
                       "the workflow grows past %d values (is an alias repeating a large "
                       "node, as in a \"billion laughs\" file?)",
                       CFG_MAX_NODES);
    if (bytes > CFG_MAX_COPIED_BYTES - ctx->bytes)
        return fail_at(ctx, mark,
                       "aliases copy more than %d MiB of text (is an alias repeating a "
                       "large value?)",
                       CFG_MAX_COPIED_BYTES / (1024 * 1024));
    ctx->nodes += n;
    ctx->bytes += bytes;
    return 0;
}

/* ------------------------------------------------------------ scalars */

/* The JSON value of a scalar written at mark (cfgscalar.c resolves it, we
 * place its error). Sets *out to a new node, or returns -1 with the error
 * set. */
static int scalar_value(cfg_ctx *ctx, const char *text, size_t len, const char *tag, int plain,
                        yaml_mark_t mark, cJSON **out)
{
    bty_error why = {0};
    if (cfg_scalar_value(text, len, tag, plain, out, &why) == 0)
        return 0;
    if (why.status == 500)
        return fail_oom(ctx);
    return fail_at(ctx, mark, "%s", why.message);
}

/* The key `text` of a mapping below the steps, resolved as PyYAML
 * resolves it and written as json.dumps writes such a key: `on` is
 * "true", `~` "null", `0x10` "16", `1.5` "1.5" (cfg_key_text). Step names,
 * at the top, stay verbatim, but their tag must fit them. Sets *out to a
 * new string and *same to what a Python dict would hold the key as when
 * that is a number (True, 1 and 1.0 are one key there), or NULL; or
 * returns -1 with the error set. */
static int key_text(cfg_ctx *ctx, const frame *f, const char *text, const char *tag, int plain,
                    yaml_mark_t mark, char **out, char **same)
{
    cJSON *value = NULL;
    *out = *same = NULL;
    if (f->role == ROLE_ROOT && !tag) {
        *out = strdup(text);
        return *out ? 0 : fail_oom(ctx);
    }
    if (scalar_value(ctx, text, strlen(text), tag, plain, mark, &value))
        return -1;
    if (f->role == ROLE_ROOT) {
        *out = strdup(text);
    } else {
        *out = cfg_key_text(value);
        if (*out && (cJSON_IsBool(value) || cJSON_IsNumber(value))) {
            char num[PY_FLOAT_MAX + 1] = "\x01"; /* no YAML text holds U+0001 */
            py_number_text(cJSON_IsNumber(value) ? value->valuedouble : cJSON_IsTrue(value),
                           num + 1);
            if (!(*same = strdup(num))) {
                free(*out);
                *out = NULL;
            }
        }
    }
    cJSON_Delete(value);
    if (!*out) {
        fail_oom(ctx);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ validation */

/* name must be a valid step name (names.c); else -1 with a 422 at mark. */
static int check_step_name(cfg_ctx *ctx, const char *name, yaml_mark_t mark)
{
    char text[CFG_SHOWN_MAX + 4];
    bty_error e = {0};
    if (name_step_check(name, &e) == 0)
        return 0;
    return fail_at(ctx, mark, "%s (step \"%s\")", e.message, cfg_shown(name, text));
}

/* A member `key: v` of a step: if key is a special field (fields.c), v
 * must fit it. Returns 0, or -1 with a 422 at mark. */
static int check_field(cfg_ctx *ctx, const char *key, const cJSON *v, yaml_mark_t mark)
{
    char what[CFG_SHOWN_MAX + 16];
    const bty_special_field *f = special_field_find(key);
    if (!f || special_field_fits(f, v))
        return 0;
    return fail_at(ctx, mark, "%s %s, not %s", key, f->rule, describe(v, what));
}

/* The name `key` of a step's parameter must not pass for a special field
 * it is not (fields.c: "FROM_DATE", "from-date", "Batch_Id"): sh and infa
 * would print it as that field, and after `eval` one would override the
 * other. The exact names are the fields themselves, checked by
 * check_field; the close/fail parameters token, step and error are plain
 * parameters in a file, and so are names that look like them. Returns 0,
 * or -1 with a 422 at mark. */
static int check_param_name(cfg_ctx *ctx, const char *key, yaml_mark_t mark)
{
    char text[CFG_SHOWN_MAX + 4];
    const bty_special_field *f = special_field_reserved(key);
    if (!f || f->type == FIELD_PARAM || strcmp(key, f->name) == 0)
        return 0;
    return fail_at(ctx, mark,
                   "parameter \"%s\" would pass for the special field %s in the sh and infa "
                   "outputs (names upper-cased, other characters as _, compared without case); "
                   "rename it",
                   cfg_shown(key, text), f->name);
}

/* One more step, written at mark: a workflow holds BTY_MAX_STEPS at most.
 * Returns 0, or -1 with a 422 at mark. */
static int count_step(cfg_ctx *ctx, yaml_mark_t mark)
{
    if (++ctx->steps <= BTY_MAX_STEPS)
        return 0;
    return fail_at(ctx, mark, "more than %d steps: a workflow holds %d steps at most; split it",
                   BTY_MAX_STEPS, BTY_MAX_STEPS);
}

/* A member `name: step` of the top level: step must be a mapping whose
 * special fields fit. Returns 0, or -1 with a 422 at mark. */
static int check_step(cfg_ctx *ctx, const cJSON *member, yaml_mark_t mark)
{
    char text[CFG_SHOWN_MAX + 4], what[CFG_SHOWN_MAX + 16];
    if (!cJSON_IsObject(member))
        return fail_at(ctx, mark,
                       "step \"%s\" must map parameter names to values (or be empty), not %s",
                       cfg_shown(member->string, text), describe(member, what));
    const cJSON *field;
    cJSON_ArrayForEach(field, member)
    {
        if (check_param_name(ctx, field->string, mark) ||
            check_field(ctx, field->string, field, mark))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ tree */

/* Count a tree as the budgets do (every value, plus one per member key;
 * the bytes of keys and strings) and its height in levels. Stops counting
 * past CFG_MAX_NODES or CFG_MAX_COPIED_BYTES. */
static void tree_measure(const cJSON *node, long *size, int *height, long *bytes)
{
    long count = 1;
    long text = cJSON_IsString(node) ? (long)strlen(node->valuestring) : 0;
    int deepest = 0;
    const cJSON *child;
    cJSON_ArrayForEach(child, node)
    {
        long s, b;
        int h;
        tree_measure(child, &s, &h, &b);
        count += s + (child->string ? 1 : 0);
        text += b + (child->string ? (long)strlen(child->string) : 0);
        if (h > deepest)
            deepest = h;
        if (count > CFG_MAX_NODES || text > CFG_MAX_COPIED_BYTES)
            break;
    }
    *size = count;
    *height = deepest + 1;
    *bytes = text;
}

static frame *top(cfg_ctx *ctx)
{
    return ctx->depth ? &ctx->stack[ctx->depth - 1] : NULL;
}

/* An anchor written at mark must be new: PyYAML refuses to redefine one,
 * and so do we, whether the first node is complete or still open. */
static int anchor_check_new(cfg_ctx *ctx, const char *name, yaml_mark_t mark)
{
    char text[CFG_SHOWN_MAX + 4];
    const yaml_mark_t *first = NULL;
    slot *s = table_find(&ctx->anchors, 0, name);
    if (s)
        first = &((anchor *)s->value)->mark;
    for (int i = 0; !first && i < ctx->depth; i++)
        if (ctx->stack[i].anchor && strcmp(ctx->stack[i].anchor, name) == 0)
            first = &ctx->stack[i].mark;
    if (!first)
        return 0;
    return fail_at(ctx, mark, "anchor &%s is defined twice (first at line %lu, column %lu)",
                   cfg_shown(name, text), (unsigned long)first->line + 1,
                   (unsigned long)first->column + 1);
}

/* Register anchor `name`, checked new by anchor_check_new, for a completed
 * node written at mark: a container (node set) or a scalar (node NULL;
 * text, tag, plain). Returns 0, or -1 when out of memory. */
static int anchor_set(cfg_ctx *ctx, const char *name, yaml_mark_t mark, cJSON *node,
                      const char *text, const char *tag, int plain)
{
    anchor *a = calloc(1, sizeof(*a));
    if (!a || !(a->name = strdup(name)) || table_put(&ctx->anchors, 0, a->name, a)) {
        if (a)
            free(a->name);
        free(a);
        return fail_oom(ctx);
    }
    a->mark = mark;
    a->node = node;
    if (node) {
        tree_measure(node, &a->size, &a->height, &a->bytes);
        return 0;
    }
    a->size = a->height = 1;
    /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): text is set when node is NULL */
    a->bytes = (long)strlen(text);
    a->plain = plain;
    if (!(a->text = strdup(text)) || (tag && !(a->tag = strdup(tag))))
        return fail_oom(ctx);
    return 0;
}

/* Read the key of the mapping f, as key_text made it (text, and same: the
 * number a Python dict would hold it as, or NULL). may_merge: a plain
 * untagged "<<" is the merge key. Returns 0, or -1 with the error set
 * (duplicate key, bad step name). */
static int on_key(cfg_ctx *ctx, frame *f, const char *text, const char *same, int may_merge,
                  yaml_mark_t mark)
{
    char shown_text[CFG_SHOWN_MAX + 4];
    if (may_merge && strcmp(text, "<<") == 0) {
        if (f->has_merge)
            return fail_at(ctx, mark,
                           "duplicate merge key <<: merge several mappings with <<: [*a, *b]");
        f->has_merge = f->key_is_merge = f->have_key = 1;
        f->merge_after = f->node->child ? f->node->child->prev : NULL;
        return 0;
    }
    if (f->role == ROLE_ROOT && check_step_name(ctx, text, mark))
        return -1;
    if (f->role == ROLE_STEP && check_param_name(ctx, text, mark))
        return -1;
    if (table_find(&ctx->keys, f->serial, text))
        return fail_at(ctx, mark, "duplicate %s \"%s\"", f->role == ROLE_ROOT ? "step" : "key",
                       cfg_shown(text, shown_text));
    if (same) {
        if (table_find(&ctx->keys, f->serial, same))
            return fail_at(ctx, mark,
                           "duplicate key \"%s\": an earlier key has the same value (true is 1, "
                           "false is 0, 1.0 is 1, as in Python)",
                           cfg_shown(text, shown_text));
        /* The table borrows its keys: the graveyard keeps this one. */
        cJSON *kept = cJSON_CreateString(same);
        if (!kept)
            return fail_oom(ctx);
        cJSON_AddItemToArray(ctx->graveyard, kept);
        if (table_put(&ctx->keys, f->serial, kept->valuestring, NULL))
            return fail_oom(ctx);
    }
    if (f->role == ROLE_ROOT && count_step(ctx, mark))
        return -1;
    if (!(f->key = strdup(text)))
        return fail_oom(ctx);
    f->have_key = 1;
    return 0;
}

/* Put a new node where the open container expects its next value: as the
 * root, a sequence item, a mapping member, or the merge value. Takes
 * ownership of node, even on error. A step's value and a step's special
 * fields are validated here (mark: where the value was written). */
static int attach(cfg_ctx *ctx, cJSON *node, yaml_mark_t mark)
{
    frame *f = top(ctx);
    if (!f) {
        ctx->root = node;
        return 0;
    }
    if (!f->is_map) {
        cJSON_AddItemToArray(f->node, node);
        return 0;
    }
    if (f->key_is_merge) {
        cJSON_AddItemToArray(ctx->graveyard, node);
        f->merge = node;
        f->merge_mark = mark;
        f->key_is_merge = f->have_key = 0;
        return 0;
    }
    if (f->role == ROLE_ROOT && cJSON_IsNull(node)) {
        cJSON_Delete(node); /* "step:" is a step without parameters */
        if (!(node = cJSON_CreateObject()))
            return fail_oom(ctx);
    }
    if (!cJSON_AddItemToObject(f->node, f->key, node)) {
        cJSON_Delete(node);
        return fail_oom(ctx);
    }
    cJSON *member = f->node->child->prev;
    free(f->key);
    f->key = NULL;
    f->have_key = 0;
    if (table_put(&ctx->keys, f->serial, member->string, NULL))
        return fail_oom(ctx);
    if (f->role == ROLE_ROOT)
        return check_step(ctx, member, mark);
    if (f->role == ROLE_STEP)
        return check_field(ctx, member->string, member, mark);
    return 0;
}

/* Move every child of `from` to the end of `to`, keeping member names. */
static void move_children(cJSON *from, cJSON *to)
{
    while (from->child)
        cJSON_AddItemToArray(to, cJSON_DetachItemViaPointer(from, from->child));
}

/* Apply the merge key of mapping f at its end: every member of the merged
 * mapping(s) whose name f does not have yet is copied into f, where << was
 * written. Explicit members win; in a sequence the earlier mapping wins.
 * The merged values stay untouched (an anchor may name them). */
static int apply_merge(cfg_ctx *ctx, frame *f)
{
    char what[CFG_SHOWN_MAX + 16];
    cJSON *m = f->merge, *source, *member;
    yaml_mark_t mark = f->merge_mark;
    if (cJSON_IsArray(m)) {
        cJSON_ArrayForEach(source, m)
        {
            if (!cJSON_IsObject(source))
                return fail_at(ctx, mark,
                               "the merge key << takes mappings, but this sequence holds %s",
                               describe(source, what));
        }
    } else if (!cJSON_IsObject(m)) {
        return fail_at(ctx, mark,
                       "the merge key << takes a mapping or a sequence of mappings, not %s",
                       describe(m, what));
    }
    cJSON *merged = cJSON_CreateObject();
    cJSON *later = cJSON_CreateArray();
    cJSON_AddItemToArray(ctx->graveyard, merged); /* freed with it on error */
    cJSON_AddItemToArray(ctx->graveyard, later);
    if (!merged || !later)
        return fail_oom(ctx);

    for (source = cJSON_IsObject(m) ? m : m->child; source;
         source = cJSON_IsObject(m) ? NULL : source->next) {
        cJSON_ArrayForEach(member, source)
        {
            if (table_find(&ctx->keys, f->serial, member->string))
                continue;
            long size, bytes;
            int height;
            tree_measure(member, &size, &height, &bytes);
            if (count_nodes(ctx, size + 1, bytes + (long)strlen(member->string), mark))
                return -1;
            if (f->role == ROLE_ROOT &&
                (check_step_name(ctx, member->string, mark) || count_step(ctx, mark)))
                return -1;
            if (f->role == ROLE_STEP && check_param_name(ctx, member->string, mark))
                return -1;
            cJSON *copy = cJSON_Duplicate(member, 1);
            if (copy && f->role == ROLE_ROOT && cJSON_IsNull(copy)) {
                cJSON_Delete(copy);
                copy = cJSON_CreateObject();
            }
            if (!copy)
                return fail_oom(ctx);
            if (!cJSON_AddItemToObject(merged, member->string, copy)) {
                cJSON_Delete(copy);
                return fail_oom(ctx);
            }
            cJSON *added = merged->child->prev;
            if (table_put(&ctx->keys, f->serial, added->string, NULL))
                return fail_oom(ctx);
            if (f->role == ROLE_ROOT && check_step(ctx, added, mark))
                return -1;
            if (f->role == ROLE_STEP && check_field(ctx, added->string, added, mark))
                return -1;
        }
    }
    /* Splice: members written after <<, then the merged ones, then those. */
    cJSON *rest = f->merge_after ? f->merge_after->next : f->node->child;
    while (rest) {
        cJSON *next = rest->next;
        cJSON_AddItemToArray(later, cJSON_DetachItemViaPointer(f->node, rest));
        rest = next;
    }
    move_children(merged, f->node);
    move_children(later, f->node);
    return 0;
}

/* ------------------------------------------------------------ events */

/* A scalar: a mapping key (key_text) or a value, resolved and attached.
 * Returns 0, or -1 with the error set. */
static int on_scalar(cfg_ctx *ctx, const yaml_event_t *ev)
{
    const char *text = ev->data.scalar.value ? (const char *)ev->data.scalar.value : "";
    size_t len = ev->data.scalar.value ? ev->data.scalar.length : 0;
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *anchor_name = (const char *)ev->data.scalar.anchor;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    yaml_mark_t mark = ev->start_mark;
    frame *f = top(ctx);
    cJSON *value = NULL;

    if (memchr(text, '\0', len))
        return fail_at(ctx, mark, "a NUL character (\\0) cannot be stored in a workflow");
    if (count_nodes(ctx, 1, 0, mark))
        return -1;
    if (f && f->is_map && !f->have_key) {
        char *key, *same;
        if (anchor_name && (anchor_check_new(ctx, anchor_name, mark) ||
                            anchor_set(ctx, anchor_name, mark, NULL, text, tag, plain)))
            return -1;
        if (plain && !tag && strcmp(text, "<<") == 0)
            return on_key(ctx, f, text, NULL, 1, mark);
        if (key_text(ctx, f, text, tag, plain, mark, &key, &same))
            return -1;
        int rc = on_key(ctx, f, key, same, 0, mark);
        free(key);
        free(same);
        return rc;
    }
    if (scalar_value(ctx, text, len, tag, plain, mark, &value))
        return -1;
    if (anchor_name && (anchor_check_new(ctx, anchor_name, mark) ||
                        anchor_set(ctx, anchor_name, mark, NULL, text, tag, plain))) {
        cJSON_Delete(value);
        return -1;
    }
    if (!f) {
        int is_null = cJSON_IsNull(value);
        cJSON_Delete(value);
        return fail_at(ctx, mark, "%s", is_null ? MSG_NO_STEPS : MSG_TOP_LEVEL);
    }
    return attach(ctx, value, mark);
}

/* An alias: a key (scalar anchors only) or a deep copy of the anchored
 * node, refused before copying when it would pass the node budget or the
 * depth bound. Returns 0, or -1 with the error set. */
static int on_alias(cfg_ctx *ctx, const char *name, yaml_mark_t mark)
{
    char text[CFG_SHOWN_MAX + 4];
    slot *s = table_find(&ctx->anchors, 0, name);
    frame *f = top(ctx);
    if (!s)
        return fail_at(ctx, mark,
                       "unknown anchor \"%s\": an alias must come after the whole node its "
                       "anchor names",
                       cfg_shown(name, text));
    if (!f)
        return fail_at(ctx, mark, "%s", MSG_TOP_LEVEL);
    anchor *a = s->value;
    if (f->is_map && !f->have_key) {
        if (a->node)
            return fail_at(ctx, mark, "alias *%s cannot be a key: keys must be scalars",
                           cfg_shown(name, text));
        if (count_nodes(ctx, 1, a->bytes, mark))
            return -1;
        char *key, *same;
        if (key_text(ctx, f, a->text, a->tag, a->plain, mark, &key, &same))
            return -1;
        int rc = on_key(ctx, f, key, same, 0, mark);
        free(key);
        free(same);
        return rc;
    }
    if (ctx->depth + a->height > CFG_MAX_DEPTH)
        return fail_at(ctx, mark, "alias *%s nests values deeper than %d levels",
                       cfg_shown(name, text), CFG_MAX_DEPTH);
    if (count_nodes(ctx, a->size, a->bytes, mark))
        return -1;
    cJSON *copy;
    if (!a->node) {
        if (scalar_value(ctx, a->text, strlen(a->text), a->tag, a->plain, mark, &copy))
            return -1;
    } else {
        if (!(copy = cJSON_Duplicate(a->node, 1)))
            return fail_oom(ctx);
        cJSON_free(copy->string); /* the copy is not a member yet */
        copy->string = NULL;
    }
    return attach(ctx, copy, mark);
}

/* The start of a mapping or sequence: checked (tag, place, depth, anchor),
 * attached empty to its parent, and pushed as the open frame. Returns 0, or
 * -1 with the error set. */
static int on_start(cfg_ctx *ctx, int is_map, const char *anchor_name, const char *tag,
                    yaml_mark_t mark)
{
    const char *kind = is_map ? "mapping" : "sequence";
    frame *parent = top(ctx);
    bty_error why = {0};
    if (cfg_collection_tag_check(tag, is_map, &why))
        return fail_at(ctx, mark, "%s", why.message);
    if (!parent && !is_map)
        return fail_at(ctx, mark, "%s", MSG_TOP_LEVEL);
    if (parent && parent->is_map && !parent->have_key)
        return fail_at(ctx, mark, "a %s cannot be a key: keys must be scalars", kind);
    if (ctx->depth >= CFG_MAX_DEPTH)
        return fail_at(ctx, mark, "values nest deeper than %d levels", CFG_MAX_DEPTH);
    if (anchor_name && anchor_check_new(ctx, anchor_name, mark))
        return -1;
    if (count_nodes(ctx, 1, 0, mark))
        return -1;
    enum role role = ROLE_OTHER;
    if (!parent)
        role = ROLE_ROOT;
    else if (parent->role == ROLE_ROOT && !parent->key_is_merge)
        role = ROLE_STEP;
    char *anchor_copy = NULL;
    cJSON *node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!node || (anchor_name && !(anchor_copy = strdup(anchor_name)))) {
        cJSON_Delete(node);
        return fail_oom(ctx);
    }
    if (attach(ctx, node, mark)) {
        free(anchor_copy);
        return -1;
    }
    frame *f = &ctx->stack[ctx->depth++];
    memset(f, 0, sizeof(*f));
    f->node = node;
    f->is_map = is_map;
    f->role = role;
    f->serial = ++ctx->serials;
    f->anchor = anchor_copy;
    f->mark = mark;
    return 0;
}

/* The end of the open mapping or sequence: apply its merge key, require a
 * step at the top level, register its anchor, pop it. Returns 0, or -1
 * with the error set. */
static int on_end(cfg_ctx *ctx, yaml_mark_t mark)
{
    frame *f = top(ctx);
    int rc = 0;
    if (!f)
        return fail_at(ctx, mark, "unbalanced end of a node");
    if (f->is_map && f->has_merge)
        rc = apply_merge(ctx, f);
    if (!rc && f->role == ROLE_ROOT && !f->node->child)
        rc = fail_at(ctx, f->mark, "%s", MSG_NO_STEPS);
    if (!rc && f->anchor)
        rc = anchor_set(ctx, f->anchor, f->mark, f->node, NULL, NULL, 0);
    free(f->key);
    free(f->anchor);
    ctx->depth--;
    return rc;
}

/* Dispatch one libyaml event. Returns 0, or -1 with the error set. */
static int on_event(cfg_ctx *ctx, const yaml_event_t *ev)
{
    static const yaml_mark_t start = {0, 0, 0};
    switch (ev->type) {
    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (ctx->documents++)
            return fail_at(ctx, ev->start_mark,
                           "a second document starts here: a workflow file holds one document");
        return 0;
    case YAML_STREAM_END_EVENT:
        return ctx->root ? 0 : fail_at(ctx, start, "%s", MSG_NO_STEPS);
    case YAML_ALIAS_EVENT:
        return on_alias(ctx, (const char *)ev->data.alias.anchor, ev->start_mark);
    case YAML_SCALAR_EVENT:
        return on_scalar(ctx, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(ctx, 0, (const char *)ev->data.sequence_start.anchor,
                        (const char *)ev->data.sequence_start.tag, ev->start_mark);
    case YAML_MAPPING_START_EVENT:
        return on_start(ctx, 1, (const char *)ev->data.mapping_start.anchor,
                        (const char *)ev->data.mapping_start.tag, ev->start_mark);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(ctx, ev->start_mark);
    }
    return 0;
}

/* Turn libyaml's error into ours. Reader errors (bad encoding, control
 * characters) carry a byte offset rather than a mark: count lines in text. */
static int parser_failed(cfg_ctx *ctx, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return fail_oom(ctx);
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t mark = {0, 0, 0};
        size_t end = p->problem_offset < ctx->len ? p->problem_offset : ctx->len;
        for (size_t i = 0; i < end; i++) {
            if (ctx->text[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
        if (p->problem_value != -1)
            return fail_at(ctx, mark, "%s (#x%X)", problem, (unsigned)p->problem_value);
        return fail_at(ctx, mark, "%s", problem);
    }
    if (p->context)
        return fail_at(ctx, p->problem_mark, "%s (%s at line %lu, column %lu)", problem, p->context,
                       (unsigned long)p->context_mark.line + 1,
                       (unsigned long)p->context_mark.column + 1);
    return fail_at(ctx, p->problem_mark, "%s", problem);
}

/* Free everything the parse state owns; the document too unless taken. */
static void ctx_free(cfg_ctx *ctx)
{
    cJSON_Delete(ctx->root);
    cJSON_Delete(ctx->graveyard);
    for (int i = 0; i < ctx->depth; i++) {
        free(ctx->stack[i].key);
        free(ctx->stack[i].anchor);
    }
    for (size_t i = 0; i < ctx->anchors.cap; i++) {
        anchor *a = ctx->anchors.slots[i].value;
        if (!a)
            continue;
        free(a->name);
        free(a->text);
        free(a->tag);
        free(a);
    }
    free(ctx->anchors.slots);
    free(ctx->keys.slots);
}

/* See batchy.h. Reads events until the end of the stream (so a second
 * document is noticed) or the first error; on success the document is
 * taken from the state and its steps sorted. */
cJSON *cfg_parse(const char *text, size_t len, const char *source, bty_error *err)
{
    if (!source)
        source = "workflow file";
    if (len > CFG_MAX_BYTES) {
        bty_error_set(err, 413, "%s is %zu bytes; a workflow file may hold at most %d (1 MiB)",
                      source, len, CFG_MAX_BYTES);
        return NULL;
    }
    if (!text) {
        text = "";
        len = 0;
    }

    cfg_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.source = source;
    ctx.text = text;
    ctx.len = len;
    ctx.err = err;
    yaml_parser_t parser;
    if (!(ctx.graveyard = cJSON_CreateArray()) || !yaml_parser_initialize(&parser)) {
        fail_oom(&ctx);
        ctx_free(&ctx);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    int rc = 0, done = 0;
    while (!rc && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_failed(&ctx, &parser);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&ctx, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);

    cJSON *doc = NULL;
    if (!rc) {
        doc = ctx.root;
        ctx.root = NULL;
        doc_sort(doc);
    }
    ctx_free(&ctx);
    return doc;
}
