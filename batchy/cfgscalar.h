/*
 * cfgscalar.h - the seam between cfgload.c (the walk over a workflow
 * file's events) and cfgscalar.c (what one scalar or tag means).
 *
 * Included only by those two files (and their unit tests), not through
 * batchy.h: the reasons come back without a place ("line:column" is the
 * walk's to add), which makes no sense to any other module, and the
 * rest of the service reaches YAML only through cfg_parse.
 */
#ifndef BATCHY_CFGSCALAR_H
#define BATCHY_CFGSCALAR_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "batchy.h"

/* Bytes of user text quoted in a message, "..." added when cut. */
#define CFG_SHOWN_MAX 60

/* User text for a message: at most CFG_SHOWN_MAX bytes of s, cut on a
 * UTF-8 boundary, with "..." when cut. Returns out. */
const char *cfg_shown(const char *s, char out[CFG_SHOWN_MAX + 4]);

/* The JSON value of a scalar (text[0..len), no NUL before len): `tag` is
 * its explicit tag or NULL, `plain` whether it was written without quotes
 * or block indicator. Sets *out to a new node the caller deletes and
 * returns 0; or returns -1 with *out NULL and why set: 422 and the reason
 * (no place), or 500 when memory ran out. */
int cfg_scalar_value(const char *text, size_t len, const char *tag, int plain, cJSON **out,
                     bty_error *why);

/* The tag of a mapping (is_map) or sequence: absent, "!", or the standard
 * tag of its kind. 0 when it fits, else -1 with why set to 422 and the
 * reason (no place). */
int cfg_collection_tag_check(const char *tag, int is_map, bty_error *why);

/* A mapping key as Python's json.dumps writes the key of a dict whose key
 * is `value` (from cfg_scalar_value): a string as it is, true, false, null,
 * an integer's digits, a float's repr. A new string, or NULL when out of
 * memory. */
char *cfg_key_text(const cJSON *value);

#endif
