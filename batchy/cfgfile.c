/*
 * cfgfile.c - workflow files on disk: reading one within the size bound
 * (CFG_MAX_BYTES), and `batchy --check FILE...`, which validates files
 * offline as load_cfg would (cfg_parse), without Redis or a server.
 *
 * Every problem is one bty_error whose message names the file first
 * ("path: reason", or cfg_parse's "path:line:column: reason"), printed as
 * one line on stderr: a file costs at most two lines (its name, its
 * content) of at most a message's length each.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shell.h"

/* See shell.h. Reads one byte more than fstat said, to notice a file that
 * grew while it was read. */
char *cfg_file_read_fd(int fd, const char *name, size_t *len, bty_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        bty_error_set(err, 503, "%s: %s", name, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        bty_error_set(err, 404, "%s: not a regular file%s", name,
                      S_ISDIR(st.st_mode) ? " (a directory)" : "");
        return NULL;
    }
    if (st.st_size > CFG_MAX_BYTES) {
        bty_error_set(err, 413, "%s: %lld bytes; a workflow file is 1 MiB (%d bytes) at most", name,
                      (long long)st.st_size, CFG_MAX_BYTES);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        bty_error_set(err, 503, "%s: out of memory reading it", name);
        return NULL;
    }
    size_t got = 0;
    ssize_t n = 1;
    while (got <= (size_t)st.st_size && n > 0) {
        n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno == EINTR)
            n = 1;
    }
    if (n < 0 || got > (size_t)st.st_size) {
        if (n < 0)
            bty_error_set(err, 503, "%s: %s", name, strerror(errno));
        else
            bty_error_set(err, 409, "%s: changed while it was read; try again", name);
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* ------------------------------------------------------------------ --check */

/* Print err's message as one line on stderr: a control character (a
 * newline in a path or in quoted YAML) becomes '?'. */
static void report(const bty_error *err)
{
    char line[sizeof(err->message)];
    memcpy(line, err->message, sizeof(line));
    line[sizeof(line) - 1] = '\0';
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "%s\n", line);
}

/* load_cfg/<wf> reads <cfg_dir>/<wf>.yaml or .yml: 0 when path's base name
 * is such a name, else -1 with err saying why the file could not be
 * loaded. */
static int check_file_name(const char *path, bty_error *err)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(base), stem;
    if (len >= 5 && strcmp(base + len - 5, ".yaml") == 0)
        stem = len - 5;
    else if (len >= 4 && strcmp(base + len - 4, ".yml") == 0)
        stem = len - 4;
    else
        return bty_error_set(err, 400,
                             "%s: bad file name: load_cfg reads <workflow>.yaml or "
                             "<workflow>.yml",
                             path);
    char name[BTY_KEY_MAX]; /* longer than a workflow name may be */
    if (stem >= sizeof(name))
        stem = sizeof(name) - 1; /* still too long for name_workflow_check */
    memcpy(name, base, stem);
    name[stem] = '\0';
    bty_error why = {0};
    if (name_workflow_check(name, &why) != 0)
        return bty_error_set(err, 400, "%s: bad file name: %s", path, why.message);
    return 0;
}

/* Check one file, printing each of its problems. 1 when it has none. */
static int check_file(const char *path)
{
    bty_error err = {0};
    int ok = check_file_name(path, &err) == 0;
    if (!ok)
        report(&err);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
    if (fd < 0) {
        bty_error_set(&err, 404, "%s: %s", path, strerror(errno));
        report(&err);
        return 0;
    }
    size_t len = 0;
    char *text = cfg_file_read_fd(fd, path, &len, &err);
    close(fd);
    cJSON *doc = text ? cfg_parse(text, len, path, &err) : NULL;
    free(text);
    if (!doc) {
        report(&err);
        return 0;
    }
    cJSON_Delete(doc);
    return ok;
}

/* See shell.h. */
int cfg_check_files(char *const *paths, int n)
{
    int failed = 0;
    for (int i = 0; i < n; i++)
        failed |= !check_file(paths[i]);
    return failed ? 1 : 0;
}
