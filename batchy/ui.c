/*
 * ui.c - the dashboard's files. The build embeds batchy/ui/ in the binary
 * (the Makefile makes ui_files.h of it), so that one binary is the whole
 * deployment; --ui-dir serves them from a folder instead, to work on them
 * without building. Only the files named here are served, from either:
 * a request names a file, never a path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"
#include "ui_files.h"

#define UI_FILE_MAX (1024 * 1024)

static const struct {
    const char *name;
    const char *type;
    const char *text; /* the binary's own, NUL-terminated */
} files[] = {
    {"index.html", "text/html; charset=utf-8", ui_index_html},
    {"app.css", "text/css; charset=utf-8", ui_app_css},
    {"app.js", "text/javascript; charset=utf-8", ui_app_js},
};

/* dir/name, read whole: malloc'd, or NULL with err set. */
static char *read_file(const char *dir, const char *name, bty_error *err)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        bty_error_set(err, 503, "cannot read the dashboard's %s (--ui-dir): %s", name,
                      strerror(errno));
        return NULL;
    }
    char *text = malloc(UI_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, UI_FILE_MAX + 1, f) : 0;
    int bad = !text || ferror(f) || n > UI_FILE_MAX || memchr(text, '\0', n);
    fclose(f);
    if (bad) {
        free(text);
        bty_error_set(err, 503, "cannot read the dashboard's %s (--ui-dir): %s", name,
                      !text ? "out of memory" : "unreadable, over 1 MiB or holding a NUL byte");
        return NULL;
    }
    text[n] = '\0';
    return text;
}

int ui_file(const char *dir, const char *name, const char **type, char **text, bty_error *err)
{
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (strcmp(name, files[i].name) != 0)
            continue;
        *type = files[i].type;
        *text = dir && dir[0] ? read_file(dir, name, err) : strdup(files[i].text);
        if (!*text && !err->status)
            bty_error_set(err, 503, "out of memory; try again");
        return *text ? 0 : -1;
    }
    return bty_error_set(err, 404, "no such file of the dashboard: '%.40s'", name);
}
