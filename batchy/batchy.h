/*
 * batchy.h - the one shared header of the Batchy service: types and
 * prototypes of every module.
 *
 * The service is a pure core wrapped in a thin shell:
 *
 *   pure (no I/O, no clock, no globals):
 *     error.c    the error type every layer returns up to HTTP
 *     utf8.c     the one UTF-8 decoder: validation, repair, cutting
 *     times.c    lenient time parsing, canonical formatting
 *     fields.c   the table of special step fields: types, bounds, checks
 *     names.c    workflow and step name validation
 *     cfgload.c  workflow YAML -> JSON document, with validation
 *     cfgscalar.c  YAML scalars and tags -> JSON values (PyYAML's rules)
 *     keys.c     the shapes of the Redis keys: <wf>, snapshots
 *     doc.c      Redis hash <-> workflow document, write plans
 *     pyjson.c   JSON text as Python's json.dumps writes it (Redis values)
 *     views.c    the rows of /workflows and /history, /events' events
 *     rules.c    the batch rules: load, open, close, fail
 *     format.c   output formats: json, infa, sh
 *     route.c    the routing table: URL path -> endpoint, workflow, format
 *   shell (shell.h lists its files and the threads): options, the HTTP
 *     server (http.c), the handlers (api.c), the write protocol (apply.c),
 *     Redis (resp.c, store.c, plan.lua), the write cache (cache.c), the
 *     watchdog and access log (watch.c), main.c.
 *
 * A request: http.c -> route_match (route.c) -> a handler (api.c) -> for
 * a write, apply.c: the rule (rules.c) with `now`, then one atomic write
 * (store.c) -> a format (format.c) -> http.c answers.
 *
 * Ownership: a function named *_create / *_parse / *_render / *_from_*
 * returns memory the caller frees with the matching *_free (or free() for
 * plain char *, cJSON_Delete() for cJSON *). Arguments are borrowed.
 */
#ifndef BATCHY_H
#define BATCHY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define BATCHY_VERSION "1.0.0"

/* ------------------------------------------------------------------ error.c
 * One error type for the whole service: an HTTP status and a message that
 * says what went wrong and what to do. Only the HTTP layer writes it out. */
typedef struct bty_error {
    int status;        /* HTTP status; 0 while no error was set */
    char message[480]; /* NUL-terminated, never more than fits */
} bty_error;

/* Set err (if not NULL) to status and a printf-style message; returns -1 so
 * callers can write `return bty_error_set(err, 400, "...")`. The message is
 * always valid UTF-8: a byte of a character cut by "%.Ns" becomes '?'. */
int bty_error_set(bty_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ utf8.c
 * UTF-8 as Unicode defines it (shortest form, no surrogates, nothing above
 * U+10FFFF). Depends on no other part of Batchy. */

/* Decode the sequence at s, of which `left` bytes may be read. Returns its
 * length (1-4) and sets *cp, or 0 (cp untouched) when left is 0 or the bytes
 * there are not a valid sequence: overlong, surrogate, above U+10FFFF, a
 * stray or missing continuation byte, or cut short by `left`. NUL decodes
 * as U+0000, length 1. */
size_t utf8_decode(const unsigned char *s, size_t left, uint32_t *cp);

/* 1 when text[0..len) is valid UTF-8 without NUL, else 0. Query parameters
 * must be, since they end up in JSON. */
int utf8_valid(const char *text, size_t len);

/* Replace, in the NUL-terminated s, each byte that does not start a valid
 * sequence with '?', so that text cut at a byte count ("%.200s") is UTF-8. */
void utf8_repair(char *s);

/* The length of the longest prefix of s[0..len) that has at most max bytes
 * and does not end inside a character: len when it fits, else max backed
 * off over continuation bytes (so s[max] is read). */
size_t utf8_prefix(const char *s, size_t len, size_t max);

/* ------------------------------------------------------------------ times.c
 * A point in time in UTC, microsecond precision. */
typedef struct bty_time {
    int64_t sec;  /* Unix seconds */
    int32_t usec; /* 0..999999 */
} bty_time;

#define BTY_TIME_LEN 26 /* "YYYY-MM-DDTHH:MM:SS.ffffff" */

/* Bounds of the numeric special fields, shared by load validation and the
 * rules so that whatever loads also opens. */
#define BTY_MAX_REPROCESS_HOURS 1000000.0
#define BTY_MAX_BATCH_ID        999999999999999LL /* below 1e15: printed exactly */
#define BTY_ORIGIN              "1776-07-04T23:59:00.000000"

/* Parse a time leniently (SPEC section 2): YYYY-MM-DD, then optionally
 * [T| ]HH:MM, :SS, .f{1,9} (truncated to microseconds), and an optional Z,
 * +HH:MM, +HHMM, -HH:MM or -HHMM offset converted to UTC. The whole string
 * must match. Returns 0 and sets *out, or -1 if text is not a valid time. */
int time_parse(const char *text, bty_time *out);

/* Write t as "YYYY-MM-DDTHH:MM:SS.ffffff" plus NUL into out. */
void time_format(bty_time t, char out[BTY_TIME_LEN + 1]);

/* Write t as the original service's infa output did (Python's
 * str(datetime)): "YYYY-MM-DD HH:MM:SS.ffffff", or without ".ffffff"
 * when the fraction is zero. */
void time_format_python(bty_time t, char out[BTY_TIME_LEN + 1]);

/* 00:00:00.000000 UTC of t's day. */
bty_time time_trunc_day(bty_time t);

/* t plus a signed number of microseconds. */
bty_time time_add_usec(bty_time t, int64_t usec);

/* ------------------------------------------------------------------ fields.c
 * The special fields of a step (SPEC section 2) and the close/fail
 * parameters that are not fields (token, step, error): one table, asked by
 * name. */
typedef enum bty_field_type {
    FIELD_TIME,   /* a time time_parse reads, or null */
    FIELD_ID,     /* a whole number from min to max */
    FIELD_HOURS,  /* a number from min to max */
    FIELD_BOOL,   /* true or false */
    FIELD_STATUS, /* new, open, success or failed */
    FIELD_TEXT,   /* a string, or null */
    FIELD_CLOCK,  /* a time of day, "HH:MM" (UTC) */
    FIELD_PARAM,  /* no step field: a close/fail parameter of its own meaning */
} bty_field_type;

typedef struct bty_special_field {
    const char *name;
    bty_field_type type;
    double min, max;  /* FIELD_ID, FIELD_HOURS: inclusive bounds */
    int settable;     /* 1 when a close/fail parameter may set it (none may) */
    int canonical;    /* 1 when load_cfg rewrites it in canonical form (times) */
    const char *rule; /* "must be true or false": what a value must be, for
                       * messages; NULL for FIELD_PARAM */
} bty_special_field;

/* The row of special field `name`, or NULL when the name is not special. */
const bty_special_field *special_field_find(const char *name);

/* The row a parameter named `name` would pass for, or NULL: the row of
 * that name, or the one whose name `name` prints as in the sh format
 * (upper-cased, every byte outside [A-Z0-9_] as '_': "from-date",
 * "batch.id"), or equals without case, as infa readers compare ("From_Date";
 * also the non-ASCII letters whose simple case mapping is i, s or k). A
 * close/fail parameter so named would override the field after `eval`. */
const bty_special_field *special_field_reserved(const char *name);

/* Every row, *n of them, in the order of SPEC section 2. */
const bty_special_field *special_fields(size_t *n);

/* 1 when v is a value field f may hold in a workflow file, else 0. Always 1
 * for FIELD_PARAM. */
int special_field_fits(const bty_special_field *f, const cJSON *v);
/* The minutes after midnight of a FIELD_CLOCK value "HH:MM" (00:00 to
 * 23:59), or -1 when text is not one. */
int clock_minutes(const char *text);

/* ------------------------------------------------------------------ names.c
 * Workflow: 1-128 chars of [A-Za-z0-9_.-], first a letter, digit or '_',
 * not ending in -<digits> or -<digits>-init. Step: 1-256 bytes of
 * printable UTF-8 (no control characters, valid encoding) without '[' ']'.
 * Return 0 when valid, else -1 with err set to 400 and the reason. */
int name_workflow_check(const char *name, bty_error *err);
int name_step_check(const char *name, bty_error *err);

/* ------------------------------------------------------------------ cfgload.c
 * Parse a workflow YAML document (SPEC section 3) into a JSON object
 * {step: {param: value}} with steps in byte order of their names.
 * `source` names the file in error messages (e.g. "wf1.yaml").
 * Returns a new cJSON object the caller deletes, or NULL with err set
 * (422 with "source:line:column: reason" for invalid YAML or fields). */
#define CFG_MAX_BYTES        (1024 * 1024)
#define CFG_MAX_NODES        250000 /* after alias expansion */
#define CFG_MAX_DEPTH        64
#define CFG_MAX_COPIED_BYTES (16 * 1024 * 1024) /* text copied by aliases */
#define BTY_MAX_STEPS        10000              /* steps of a workflow (SPEC section 5) */
cJSON *cfg_parse(const char *text, size_t len, const char *source, bty_error *err);

/* ------------------------------------------------------------------ keys.c
 * The shapes of the Redis keys, known here only. */
#define BTY_KEY_MAX 160
/* "<wf>-<batch_id>", the snapshot of a batch, into buf. */
void key_snapshot(char buf[BTY_KEY_MAX], const char *workflow, long long batch_id);
/* "<wf>-", what the snapshot keys of batches start with, into buf. */
void key_snapshot_prefix(char buf[BTY_KEY_MAX], const char *workflow);
/* "<wf>-<epoch>-init", the snapshot of the load_cfg at epoch, into buf. */
void key_init_snapshot(char buf[BTY_KEY_MAX], const char *workflow, long long epoch);
/* 1 when name[0..len) ends as a snapshot key does (-<digits> or
 * -<digits>-init), which a workflow name may not. */
int key_looks_like_snapshot(const char *name, size_t len);
/* When name is a snapshot's key ("<wf>-<digits>" or "<wf>-<digits>-init"),
 * the length of its <wf> part, else 0 (which workflow names may be is
 * names.c's to say). */
size_t key_snapshot_workflow_len(const char *name);
/* The Redis channel every write publishes its workflow's name on (plan.lua),
 * one per database: "batchy:changes:<db>". */
void key_changes_channel(char buf[BTY_KEY_MAX], int db);

/* ------------------------------------------------------------------ doc.c
 * A workflow document is a cJSON object {step: {field: value}}, steps in
 * byte order of their names. In Redis it is a hash, one field per step,
 * the value the step's record as compact JSON text. */

/* One field of a Redis hash, as read: borrowed pointers with lengths. */
typedef struct bty_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} bty_field;

/* Decode a hash into a document (steps sorted). Records written by the
 * original service (", " separators, status "failure") are accepted;
 * "failure" reads as "failed"; a key repeated in a record (a hand edit)
 * keeps its last copy; a batch_id may be numeric text. A 409 naming the
 * key, the step and the field (or "step name", "the record"): a step name
 * that is not UTF-8; a value that is not one JSON object (nothing but
 * whitespace around it); a string or key, at any depth, that is not UTF-8
 * or holds \u0000; a batch_id that is not a whole number from 0 to
 * BTY_MAX_BATCH_ID. Returns a new object, or NULL with err set. */
cJSON *doc_from_hash(const bty_field *fields, size_t n, const char *key, bty_error *err);

/* Sort a document's steps in byte order of their names, in place. */
void doc_sort(cJSON *doc);

/* How a hash of a plan is written. */
typedef enum bty_write_mode {
    WRITE_MERGE,   /* HSET the fields into what is there */
    WRITE_REPLACE, /* DEL the key first */
    WRITE_CREATE,  /* the key must not exist: a new batch's snapshot */
} bty_write_mode;

/* What one call writes: each entry is one hash, written field by field
 * (HSET) as its mode says. A plan is executed by one script (plan.lua),
 * which Redis runs atomically; building it is pure. */
typedef struct bty_hash_write {
    char *key; /* owned */
    bty_write_mode mode;
    size_t n;     /* number of fields */
    char **names; /* owned, n entries */
    char **values;
} bty_hash_write;

typedef struct bty_write_plan {
    bty_hash_write *hashes; /* owned, n entries */
    size_t n;
} bty_write_plan;

/* Add hash `key` with every step of `steps` ({step: record}) as a field,
 * the record encoded as compact JSON. Returns 0, or -1 on out of memory. */
int plan_add_hash(bty_write_plan *plan, const char *key, bty_write_mode mode, const cJSON *steps);
/* The same, for steps whose records equal those of the same names in
 * plan->hashes[like] (both in document order): their text is copied from
 * there instead of printed again. */
int plan_add_same(bty_write_plan *plan, const char *key, bty_write_mode mode, const cJSON *steps,
                  size_t like);
void plan_free(bty_write_plan *plan);

/* ------------------------------------------------------------------ rules.c
 * The batch rules of SPEC section 4, as pure functions of the current
 * document and `now`. */

/* What an operation changes: the new document to answer with, and the
 * writes that make it so, applied in one atomic step (apply.c). */
typedef struct bty_change {
    cJSON *state;        /* the whole new <wf> document; owned */
    bty_write_plan plan; /* <wf>, <wf>-<batch_id>, ...; owned; empty on a retry */
    long long batch_id;  /* the batch the operation is about */
    /* What the change was computed from: every step of <wf> (1: open,
     * load), or only the steps it writes into <wf> (0: close, fail). A
     * write is refused when what it was computed from changed meanwhile
     * (apply.c), so calls on different steps do not conflict. */
    int reads_all;
} bty_change;

void change_free(bty_change *c);

/* load_cfg: take `doc` (consumed, even on error), give every step without
 * a status the status "new", and plan to replace <wf> and write the
 * <wf>-<now>-init snapshot. */
int rules_load(const char *workflow, cJSON *doc, bty_time now, bty_change *out, bty_error *err);
/* The same over `prev`, what <wf> holds (NULL or empty: nothing): the
 * steps still open in a batch are also marked "abandoned" in that batch's
 * snapshot, as an open does. */
/* rewind: set rewind_to = `to` on the steps named (every step when nsteps
 * is 0), so that each one's next open starts exactly there. 400 when `to`
 * is before BTY_ORIGIN or after now, 404 when not loaded or a step is
 * unknown, 409 when an affected step is open. Snapshots are not touched. */
int rules_rewind(const char *workflow, const cJSON *prev, const char *const *steps, size_t nsteps,
                 bty_time to, bty_time now, bty_change *out, bty_error *err);
/* load_cfg?keep=state: as rules_load, but each step of doc that prev (what
 * <wf> holds, or NULL) has keeps its state fields (status, from_date,
 * to_date, batch_id, batch_start, batch_end, error_message) unless the
 * file sets them; steps only in the file start new, steps only in prev
 * are gone; a batch still open stays open. Takes doc. */
int rules_load_keep(const char *workflow, cJSON *doc, const cJSON *prev, bty_time now,
                    bty_change *out, bty_error *err);
int rules_load_over(const char *workflow, cJSON *doc, const cJSON *prev, bty_time now,
                    bty_change *out, bty_error *err);

/* open_batch over every step of `prev` (not modified; 404 "not loaded"
 * when it has no steps): new from_date,
 * to_date, batch_id per SPEC section 4, the id at least min_batch_id;
 * plans <wf>, a new <wf>-<batch_id> (WRITE_CREATE) and, for steps that
 * were still open, their previous snapshot (abandoned). */
int rules_open(const char *workflow, const cJSON *prev, bty_time now, long long min_batch_id,
               bty_change *out, bty_error *err);
/* open_batch?step=...: only the nsteps named steps (404 for one the
 * workflow has not) get the new batch; every other step keeps its record,
 * whatever its state. <wf> gets the steps opened, the new snapshot the
 * whole workflow. nsteps 0: every step, as rules_open. */
int rules_open_steps(const char *workflow, const cJSON *prev, const char *const *steps,
                     size_t nsteps, bty_time now, long long min_batch_id, bty_change *out,
                     bty_error *err);

/* close_batch / fail_batch. */
typedef struct bty_end_request {
    const char *status;       /* "success" (close) or "failed" (fail) */
    const char *const *steps; /* NULL with nsteps 0 = every step */
    size_t nsteps;
    int has_batch_id;
    long long batch_id;
    const char *error_message;      /* fail only; NULL = none */
    const char *const *extra_names; /* other query parameters, as strings */
    const char *const *extra_values;
    size_t nextra;
} bty_end_request;

/* The parameters of a close_batch or fail_batch call, read into a request:
 * step= (repeated or comma-separated), batch_id=, error= (fail only), and
 * every other one as an extra field. req points into the arrays here and
 * into the caller's strings, which must outlive it. */
#define BTY_MAX_PARAMS     256
#define BTY_MAX_STEP_NAMES (BTY_MAX_PARAMS * 4) /* in all step= values of a call */
typedef struct bty_end_params {
    bty_end_request req;
    const char **steps; /* owned arrays, sized for this call */
    const char **extra_names;
    const char **extra_values;
    char **lists; /* owned: copies of step= values, cut at commas */
    size_t nlists;
} bty_end_params;

/* Read the n parameters names[i]=values[i] of a close (status "success")
 * or fail ("failed") into p. With skip_token, token= is authentication and
 * left out; without, it stays and rules_end refuses it as reserved. 0, or
 * -1 with err set: 400 for a bad batch_id, step name or empty step=, 503
 * out of memory. Call end_params_free either way. */
int end_params_read(bty_end_params *p, const char *status, char *const *names, char *const *values,
                    size_t n, int skip_token, bty_error *err);
void end_params_free(bty_end_params *p);

/* A batch_id= value: digits only, 16 at most. 0, or -1. */
int batch_id_parse(const char *text, long long *out);

/* Validate req against `state` and compute the change. A retry (every
 * affected step already has the target status in the current batch) gives
 * an empty plan and the current state. 404 for a workflow without steps
 * (not loaded), 400 for reserved extra names, 404 for unknown steps, 409
 * for steps not open or a stale batch_id. */
int rules_end(const char *workflow, const cJSON *state, const bty_end_request *req, bty_time now,
              bty_change *out, bty_error *err);

/* Every number of item, at any depth, becomes a raw item holding its
 * text as Python's json.dumps writes it: the text it was built with
 * (valuestring of a number item, as cfgscalar.c keeps a YAML float's
 * repr), else its digits or repr(float) (py_number_text). cJSON's printer
 * would write 1.0 as 1 and cut integers past 1e15 to 15 digits; raw items
 * print as they are, in answers and in Redis. Read them with doc_number.
 * (doc_from_hash keeps the text each number had in Redis the same way.) */
void doc_number_texts(cJSON *item);

/* A new raw item for integer v, as doc_number_texts makes them (a plain
 * number if memory runs short); NULL on out of memory. */
cJSON *doc_create_integer(long long v);

/* The value of a number item, raw integer or numeric text (state edited
 * by hand). 1 with *out set, -1 when v is none of these or not finite. */
int doc_number(const cJSON *v, double *out);

/* ------------------------------------------------------------------ a growable string
 * (format.c; also pyjson.c and views.c). Once an allocation fails, `failed`
 * is set and every later append is a no-op, so callers check once at the
 * end. data is NUL-terminated once anything was added; owned. */
typedef struct bty_buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} bty_buf;
void bty_buf_add(bty_buf *b, const char *s, size_t n);
void bty_buf_puts(bty_buf *b, const char *s);

/* ------------------------------------------------------------------ views.c */

/* The bit of a status a step can have (new, open, success, failed,
 * abandoned), or 0 for any other. */
unsigned view_status_bit(const char *status);
/* Whether step record rec is late at now (SPEC section 11): it has an
 * expected_by, that time of now's day (UTC) has passed, and its latest
 * record is not a success that ended that day. *until (when given) is
 * lowered to the Unix second at which the answer may next change. */
int view_step_late(const cJSON *rec, bty_time now, int64_t *until);
/* The /workflows row of workflow `name` whose state is doc at now:
 * {"name", "steps", "batch_id", "counts": {status: n}, "updated",
 * "late"}; *statuses: the bits of the statuses its steps have; *until:
 * when the row may next change without doc changing (a step becoming
 * late, or a new day), INT64_MAX for never. A new object, or NULL when
 * out of memory. */
cJSON *view_workflow(const char *name, const cJSON *doc, bty_time now, unsigned *statuses,
                     int64_t *until);
/* The row of a workflow whose state cannot be read: {"name", "error"}. */
cJSON *view_workflow_error(const char *name, const char *message);
/* The /history row of batch `id` whose snapshot is `snapshot`: {"batch_id",
 * "batch_start" (the earliest), "batch_end" (the latest, null while a step
 * is open), "steps": {step: {"status", "batch_start", "batch_end",
 * "error_message"}}} (each of the last three only when the step has it). */
cJSON *view_batch(long long id, const cJSON *snapshot);
/* The per-step series of /metrics for workflow `name` whose state is doc
 * (NULL: it cannot be read), at now: Prometheus text, the lines of family
 * f in text[cut[f]..cut[f + 1]) so that a page can group each family's
 * lines of every workflow together, as the format wants. */
enum {
    VIEW_STEP_STATUS,         /* batchy_step_status{workflow,step,status} 1 */
    VIEW_STEP_BATCH_START,    /* batchy_step_batch_start_timestamp_seconds */
    VIEW_STEP_LAST_SUCCESS,   /* batchy_step_last_success_timestamp_seconds */
    VIEW_STEP_LAST_DURATION,  /* batchy_step_last_duration_seconds */
    VIEW_STEP_LATE,           /* batchy_step_late (steps with expected_by) */
    VIEW_WORKFLOW_UNREADABLE, /* batchy_workflow_unreadable 1 */
    VIEW_FAMILIES
};
typedef struct view_metrics {
    char *text; /* malloc'd */
    size_t cut[VIEW_FAMILIES + 1];
} view_metrics;
/* 0, or -1 when out of memory. */
int view_step_metrics(const char *name, const cJSON *doc, bty_time now, view_metrics *out);
/* The HELP and TYPE lines of family f. */
const char *view_metrics_header(int f);

/* The /events event of workflow `name`: {"workflow", "batch_id", "counts",
 * "updated"} from its state doc, or {"workflow", "error": message} when
 * doc is NULL (unreadable, or gone). NULL when out of memory. */
cJSON *view_event(const char *name, const cJSON *doc, const char *message);

/* ------------------------------------------------------------------ pyjson.c */

/* Bytes for py_float_repr and py_number_text, NUL included. */
#define PY_FLOAT_MAX 32

/* v as Python's json.dumps writes a float: repr(v) ("1.0", "1e-05",
 * "0.30000000000000004"), or NaN, Infinity, -Infinity. Returns the length. */
int py_float_repr(double v, char out[PY_FLOAT_MAX]);

/* v as an integer's digits when it is whole and within +-2^53 (and not
 * -0.0), else as py_float_repr. Returns the length. */
int py_number_text(double v, char out[PY_FLOAT_MAX]);

/* item as Python's json.dumps(item) writes it with its defaults (", " and
 * ": ", \uXXXX for all beyond ASCII, numbers as kept by
 * doc_number_texts): the form of every value Batchy writes to Redis. A new
 * string the caller frees, or NULL when out of memory. */
char *py_json_print(const cJSON *item);

/* The current batch of a document: the largest batch_id of its steps, or 0. */
long long rules_current_batch(const cJSON *doc);

/* ------------------------------------------------------------------ format.c
 * Render a document. Each returns a malloc'd NUL-terminated string the
 * caller frees, or NULL on out of memory. */
char *format_json(const cJSON *doc);
char *format_infa(const cJSON *doc);
char *format_sh(const char *workflow, long long batch_id, const cJSON *doc);
/* The environment batchy-run gives a step's command (SPEC section 13):
 * "NAME=value" strings, a NULL-terminated array the caller frees with each
 * string. BATCHY_<STEP>_<PARAM> for each member of step as the sh format
 * names and prints it (unquoted: an environment needs no quoting; CR and
 * LF as spaces), then BATCHY_WORKFLOW, BATCHY_STEP, BATCHY_BATCH_ID,
 * BATCHY_FROM_DATE and BATCHY_TO_DATE. NULL when out of memory. */
char **format_env(const char *workflow, long long batch_id, const char *step_name,
                  const cJSON *step);

/* ------------------------------------------------------------------ track.c
 * Whether what was read from Redis, Redis tracking the read, may still be
 * trusted (track.c's head comment): counts of invalidations by key slot,
 * and FLUSHes, shared by threads. A zeroed state is a fresh one. */
#define TRACK_SLOTS 4096
typedef struct track_state {
    atomic_ullong inval[TRACK_SLOTS];
    atomic_ullong flushes;
} track_state;
/* What tracking was when a read was sent (epoch 0: not tracked). */
typedef struct track_stamp {
    uint64_t epoch;   /* the tracking the read was sent under */
    uint64_t flushes; /* FLUSHes heard before it */
    uint64_t inval;   /* invalidations of its key's slot heard before it */
} track_stamp;
/* Taken before a read of key (len bytes) is sent; tracking: what the
 * connection's tracking is now, 0 when reads are not tracked. */
track_stamp track_stamp_of(track_state *s, const char *key, size_t len, uint64_t tracking);
/* 1 while what that read made is still the key's: tracked, under the same
 * tracking, no FLUSH and no invalidation of the key's slot since. */
int track_trusted(track_state *s, const char *key, size_t len, track_stamp st, uint64_t tracking);
/* Redis said key changed; or that every key did (FLUSHDB, FLUSHALL). */
void track_invalidate(track_state *s, const char *key, size_t len);
/* The 64-bit hash of n bytes from seed, and one step of it: slots here,
 * and the shell's tables and fingerprints (rows.c, reads.c). */
uint64_t track_hash(uint64_t seed, const char *p, size_t n);
uint64_t track_mix(uint64_t h, uint64_t v);
void track_flush(track_state *s);

/* ------------------------------------------------------------------ route.c
 * The endpoint table: one row per endpoint, the only list of them.
 * route.c makes the routing table of it (pure: it ignores the handler
 * column); api.c makes the table of handlers, so that a row whose handler
 * function does not exist does not compile. Adding an endpoint is a row
 * here plus its handler in api.c.
 *
 *   id, URL name, handler (api.c), methods, workflow: takes /<wf>,
 *   snap: takes a snapshot's key in place of <wf> too (<wf>-<batch_id>,
 *   <wf>-<epoch>-init: read-only, as the original's get_status did),
 *   format: takes /<wf>/<json|infa|sh>, ui: the dashboard's paths (/ui,
 *   /ui/<wf>, /ui/-/<file>: a name cannot start with '-'), token: needs
 *   the token when one is set, writes: changes Redis */
#define BTY_GP  (BTY_GET | BTY_POST)
#define BTY_GH  (BTY_GET | BTY_HEAD)
#define BTY_GPH (BTY_GET | BTY_POST | BTY_HEAD)
/* clang-format off */
#define BTY_ENDPOINTS(X)                                                                          \
    /* id              name           handler             methods  wf snap fmt ui token writes */ \
    X(EP_INDEX,        "index",       handle_index,       BTY_GPH, 0, 0,   0,  0, 0,    0)         \
    X(EP_HEALTHZ,      "healthz",     handle_healthz,     BTY_GPH, 0, 0,   0,  0, 0,    0)         \
    X(EP_LOAD_CFG,     "load_cfg",    handle_load_cfg,    BTY_GP,  1, 0,   0,  0, 1,    1)         \
    X(EP_GET_STATUS,   "get_status",  handle_get_status,  BTY_GPH, 1, 1,   0,  0, 0,    0)         \
    X(EP_OPEN_BATCH,   "open_batch",  handle_open_batch,  BTY_GP,  1, 0,   1,  0, 1,    1)         \
    X(EP_CLOSE_BATCH,  "close_batch", handle_close_batch, BTY_GP,  1, 0,   0,  0, 1,    1)         \
    X(EP_FAIL_BATCH,   "fail_batch",  handle_fail_batch,  BTY_GP,  1, 0,   0,  0, 1,    1)         \
    X(EP_WORKFLOWS,    "workflows",   handle_workflows,   BTY_GPH, 0, 0,   0,  0, 0,    0)         \
    X(EP_HISTORY,      "history",     handle_history,     BTY_GPH, 1, 0,   0,  0, 0,    0)         \
    X(EP_REWIND,       "rewind",      handle_rewind,      BTY_GP,  1, 0,   0,  0, 1,    1)         \
    X(EP_EVENTS,       "events",      handle_events,      BTY_GET, 0, 0,   0,  0, 0,    0)         \
    X(EP_METRICS,      "metrics",     handle_metrics,     BTY_GPH, 0, 0,   0,  0, 0,    0)         \
    X(EP_UI,           "ui",          handle_ui,          BTY_GH,  0, 0,   0,  1, 0,    0)
/* clang-format on */

/* The methods an endpoint accepts (bty_route.methods). */
enum { BTY_GET = 1, BTY_POST = 2, BTY_HEAD = 4 };

/* clang-format off */
typedef enum bty_endpoint {
#define BTY_ENDPOINT_ID(id, ...) id,
    BTY_ENDPOINTS(BTY_ENDPOINT_ID)
#undef BTY_ENDPOINT_ID
    EP_COUNT /* how many there are */
} bty_endpoint;
/* clang-format on */

typedef enum bty_format { FMT_JSON, FMT_INFA, FMT_SH } bty_format;

typedef struct bty_route {
    const char *name; /* "open_batch" */
    bty_endpoint endpoint;
    int methods; /* BTY_GET | BTY_POST | BTY_HEAD */
    int takes_workflow;
    int takes_snapshot; /* a snapshot's key in place of the workflow */
    int takes_format;
    int ui; /* /ui, /ui/<wf> or /ui/-/<file> */
    int needs_token;
    int writes;
} bty_route;

/* The methods of `methods` as an Allow header value: "GET, POST, HEAD". */
const char *route_allow(int methods);

/* A matched request path. */
#define BTY_UI_FILE_MAX 32
typedef struct bty_target {
    const bty_route *route;
    char workflow[BTY_KEY_MAX]; /* "" when the route takes none; or a
                                   snapshot's key, when `snapshot` */
    int snapshot;
    bty_format format;
    char file[BTY_UI_FILE_MAX]; /* /ui/-/<file>: the file's name; else "" */
    int allow;                  /* after a 405: the methods the endpoint takes */
} bty_target;

/* Match a decoded URL path ("/open_batch/wf1/sh", trailing '/' ignored)
 * and method ("GET", "POST", "HEAD"). 404 for unknown endpoints, 405 for
 * other methods (out->allow says which it takes), 400 for bad workflow
 * names or formats. */
int route_match(const char *method, const char *path, bty_target *out, bty_error *err);

/* ------------------------------------------------------------------ util
 * Constant-time comparison of two NUL-terminated secrets: 1 when equal. */
int secret_equal(const char *a, const char *b);

#endif
