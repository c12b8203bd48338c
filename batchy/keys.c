/*
 * keys.c - the shapes of Batchy's Redis keys, known here and nowhere else
 * (SPEC section 1):
 *
 *   <wf>                 the workflow: a hash, one field per step
 *   <wf>-<batch_id>      the snapshot of a batch, written by its open
 *   <wf>-<epoch>-init    the snapshot written by a load_cfg at <epoch>
 *
 *   batchy:changes:<db>  the channel of change notices (a workflow name
 *                        cannot hold ':'); batchy:* keys are plan.lua's
 *
 * A workflow name may not itself look like a snapshot key (names.c asks
 * key_looks_like_snapshot), so every key maps back to one workflow. Pure.
 */
#include <stdio.h>
#include <string.h>

#include "batchy.h"

static const char INIT_SUFFIX[] = "-init";

void key_snapshot(char buf[BTY_KEY_MAX], const char *workflow, long long batch_id)
{
    snprintf(buf, BTY_KEY_MAX, "%s-%lld", workflow, batch_id);
}

void key_snapshot_prefix(char buf[BTY_KEY_MAX], const char *workflow)
{
    snprintf(buf, BTY_KEY_MAX, "%s-", workflow);
}

void key_init_snapshot(char buf[BTY_KEY_MAX], const char *workflow, long long epoch)
{
    snprintf(buf, BTY_KEY_MAX, "%s-%lld%s", workflow, epoch, INIT_SUFFIX);
}

/* Does name[0..len) end in "-<digits>"? */
static int ends_in_dash_digits(const char *name, size_t len)
{
    size_t i = len;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
        i--;
    return i < len && i > 0 && name[i - 1] == '-';
}

size_t key_snapshot_workflow_len(const char *name)
{
    size_t len = strlen(name), ninit = sizeof(INIT_SUFFIX) - 1;
    if (len > ninit && memcmp(name + len - ninit, INIT_SUFFIX, ninit) == 0)
        len -= ninit;
    if (!ends_in_dash_digits(name, len))
        return 0;
    while (name[len - 1] != '-')
        len--;
    return len - 1;
}

int key_looks_like_snapshot(const char *name, size_t len)
{
    size_t ninit = sizeof(INIT_SUFFIX) - 1;
    return ends_in_dash_digits(name, len) ||
           (len > ninit && memcmp(name + len - ninit, INIT_SUFFIX, ninit) == 0 &&
            ends_in_dash_digits(name, len - ninit));
}

void key_changes_channel(char buf[BTY_KEY_MAX], int db)
{
    snprintf(buf, BTY_KEY_MAX, "batchy:changes:%d", db);
}
