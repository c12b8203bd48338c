/*
 * runmain.c - batchy-run's shell (run.h says what it does): the calls to
 * Batchy, the command as a child process, its stderr, signals, retries.
 *
 * The start waits for Batchy (get_status, or open_batch with --open) with
 * back-off, for at most --timeout; a workflow or step that is not open
 * ends it before the command runs. The command runs with batchy-run's
 * stdin and stdout; its stderr comes through a pipe, copied to
 * batchy-run's stderr as it comes and its tail kept for fail_batch's
 * message. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to batchy-run are
 * passed on to the command (not those a terminal sends to the whole
 * foreground group, which the command already has). The outcome is then
 * recorded, naming the batch, retried with back-off for at most
 * --report-timeout: a close or fail that timed out may have been applied,
 * and Batchy answers the same one again 200.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetch.h"
#include "run.h"


static volatile sig_atomic_t pending_signal, pending_from_tty, stop_waiting;
/* The command's environment: file-scope, so that a child whose exec
 * failed still reaches it (valgrind would call it lost at _exit). */
static char **command_env, **command_envp;
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig, siginfo_t *info, void *context)
{
    (void)context;
    int saved = errno;
    pending_signal = sig;
    pending_from_tty = info && info->si_code == SI_KERNEL;
    stop_waiting = 1;
    if (wake_pipe[1] >= 0) {
        ssize_t n = write(wake_pipe[1], "", 1);
        (void)n; /* a full pipe already wakes the loop */
    }
    errno = saved;
}

static int should_stop(void)
{
    return stop_waiting != 0;
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("batchy-run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Sleep up to `seconds`, woken early by a signal. */
static void pause_for(double seconds)
{
    struct pollfd p = {.fd = wake_pipe[0], .events = POLLIN};
    if (poll(&p, 1, (int)(seconds * 1000)) > 0) {
        char drain[16];
        ssize_t n = read(wake_pipe[0], drain, sizeof(drain));
        (void)n;
    }
}

/* The step's record, from the workflow document (open_batch's or
 * get_status'), checked to be open; exits otherwise. */
static const cJSON *open_step(const cJSON *doc, const wr_options *o, long long *batch_id)
{
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(doc, o->step);
    if (!cJSON_IsObject(step)) {
        say("workflow %s has no step '%s'", o->workflow, o->step);
        exit(WR_EXIT_NOT_OPEN);
    }
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(step, "status");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(step, "batch_id");
    if (!cJSON_IsString(status) || strcmp(status->valuestring, "open") != 0 ||
        !cJSON_IsNumber(id)) {
        char shown[80];
        wz_clean(cJSON_IsString(status) ? status->valuestring : "new", 60, shown);
        say("step %s of %s is %s, not open: nothing ran (open it first, or use --open)", o->step,
            o->workflow, shown);
        exit(WR_EXIT_NOT_OPEN);
    }
    *batch_id = (long long)id->valuedouble;
    return step;
}

/* Wait for Batchy (--timeout), find or open the batch: the workflow
 * document (the caller deletes it). Exits when it cannot. */
static cJSON *start(wz_client *c, const wr_options *o)
{
    double deadline = monotonic() + o->timeout, wait = 1;
    for (;;) {
        wz_answer a;
        double budget = deadline - monotonic();
        if (o->open) {
            const char *names[] = {"step"}, *values[] = {o->step};
            wz_post(c, "open_batch", o->workflow, names, values, 1, budget, &a);
        } else {
            wz_fetch_status(c, o->workflow, budget, &a);
        }
        if (a.kind == WZ_ANSWER_OK)
            return a.doc;
        if (a.kind == WZ_ANSWER_INTERRUPTED)
            exit(128 + pending_signal);
        if (a.kind == WZ_ANSWER_UNKNOWN) {
            say("%s", a.message);
            exit(WR_EXIT_NOT_OPEN);
        }
        if (a.kind == WZ_ANSWER_REFUSED) {
            say("%s", a.message);
            exit(a.status == 409 || a.status == 400 ? WR_EXIT_NOT_OPEN : WR_EXIT_USAGE);
        }
        if (monotonic() + wait > deadline) {
            say("%s; gave up after --timeout %.0f s: nothing ran", a.message, o->timeout);
            exit(WR_EXIT_UNREACHABLE);
        }
        say("%s; retrying in %.0f s", a.message, wait);
        pause_for(wait);
        if (stop_waiting)
            exit(128 + pending_signal);
        wait = wait * 2 > 30 ? 30 : wait * 2;
    }
}

/* environ with env's entries over it (an entry of env replaces one of the
 * same name): a new array (the strings are borrowed), or NULL. */
static char **merged_environment(char **env)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (env[k])
        k++;
    char **out = calloc(n + k + 1, sizeof(char *));
    if (!out)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        int replaced = 0;
        for (size_t j = 0; j < k && !replaced; j++)
            replaced = strncmp(env[j], environ[i], len + 1) == 0;
        if (!replaced)
            out[m++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        out[m++] = env[j];
    return out;
}

/* Run the command; its wait status. The tail of its stderr in tail. */
static int run_command(const wr_options *o, char **envp, char *tail, size_t *tail_len)
{
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        say("cannot make a pipe: %s", strerror(errno));
        exit(WR_EXIT_INTERNAL);
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        say("cannot start the command: %s", strerror(errno));
        exit(WR_EXIT_INTERNAL);
    }
    if (child == 0) {
        /* The dispositions the command expects: default, not ours. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        dup2(err_pipe[1], STDERR_FILENO);
        execvpe(o->command[0], o->command, envp);
        int code = errno == ENOENT ? WR_EXIT_NOT_FOUND : WR_EXIT_CANNOT_EXEC;
        char shown[200];
        wz_clean(o->command[0], 150, shown);
        dprintf(STDERR_FILENO, "batchy-run: cannot run %s: %s\n", shown, strerror(errno));
        _exit(code);
    }
    close(err_pipe[1]);
    size_t len = 0;
    int open_end = 1;
    while (open_end) {
        struct pollfd p[2] = {{.fd = err_pipe[0], .events = POLLIN},
                              {.fd = wake_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN) {
            char drain[16];
            ssize_t n = read(wake_pipe[0], drain, sizeof(drain));
            (void)n;
        }
        if (pending_signal) {
            int sig = pending_signal;
            pending_signal = 0;
            if (!pending_from_tty) /* a terminal's reached the command already */
                kill(child, sig);
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            char buf[4096];
            ssize_t n = read(err_pipe[0], buf, sizeof(buf));
            if (n <= 0) {
                open_end = n < 0 && errno == EINTR;
                continue;
            }
            ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
            (void)w; /* our stderr gone: the tail is still kept */
            /* keep the last WR_TAIL_BYTES */
            if ((size_t)n >= WR_TAIL_BYTES) {
                memcpy(tail, buf + n - WR_TAIL_BYTES, WR_TAIL_BYTES);
                len = WR_TAIL_BYTES;
            } else {
                if (len + (size_t)n > WR_TAIL_BYTES) {
                    size_t drop = len + (size_t)n - WR_TAIL_BYTES;
                    memmove(tail, tail + drop, len - drop);
                    len -= drop;
                }
                memcpy(tail + len, buf, (size_t)n);
                len += (size_t)n;
            }
        }
    }
    close(err_pipe[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR)
            break;
        if (pending_signal && !pending_from_tty)
            kill(child, pending_signal);
        pending_signal = 0;
    }
    *tail_len = len;
    return status;
}

/* Record the outcome: close_batch, or fail_batch with error=, retried for
 * --report-timeout. 0, or -1 (said). */
static int report(wz_client *c, const wr_options *o, long long batch_id, double seconds,
                  const char *error)
{
    char id[32], duration[32];
    snprintf(id, sizeof(id), "%lld", batch_id);
    snprintf(duration, sizeof(duration), "%.3f", seconds);
    const char *names[] = {"step", "batch_id", "duration_s", "error"};
    const char *values[] = {o->step, id, duration, error ? error : ""};
    const char *endpoint = error ? "fail_batch" : "close_batch";
    double deadline = monotonic() + o->report_timeout, wait = 1;
    stop_waiting = 0;
    for (;;) {
        wz_answer a;
        wz_post(c, endpoint, o->workflow, names, values, error ? 4 : 3, deadline - monotonic(), &a);
        if (a.kind == WZ_ANSWER_OK) {
            cJSON_Delete(a.doc);
            return 0;
        }
        if (a.kind == WZ_ANSWER_UNKNOWN || a.kind == WZ_ANSWER_REFUSED) {
            say("%s: the outcome of batch %s is not recorded", a.message, id);
            return -1;
        }
        if (a.kind == WZ_ANSWER_INTERRUPTED || stop_waiting) {
            say("interrupted: the outcome of batch %s is not recorded", id);
            return -1;
        }
        if (monotonic() + wait > deadline) {
            say("%s; gave up after --report-timeout %.0f s: the outcome of batch %s is not "
                "recorded, its step stays open",
                a.message, o->report_timeout, id);
            return -1;
        }
        say("%s; cannot record the outcome yet, retrying in %.0f s", a.message, wait);
        pause_for(wait);
        wait = wait * 2 > 30 ? 30 : wait * 2;
    }
}

int main(int argc, char **argv)
{
    wr_options o;
    char why[512];
    if (wr_parse_args(argc, argv, getenv("BATCHY_URL"), getenv("BATCHY_TOKEN"), &o, why,
                      sizeof(why)) != 0) {
        say("%s", why);
        fputs("Try 'batchy-run --help'.\n", stderr);
        return WR_EXIT_USAGE;
    }
    if (o.help) {
        fputs(wr_help_text, stdout);
        return 0;
    }
    if (o.version) {
        printf("batchy-run %s\n", WAITSY_VERSION);
        return 0;
    }
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        say("cannot make a pipe: %s", strerror(errno));
        return WR_EXIT_INTERNAL;
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        sigaction(forwarded[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        say("cannot start libcurl");
        return WR_EXIT_INTERNAL;
    }
    int code;
    wz_client *c = wz_client_create(o.url, o.token, should_stop, why, sizeof(why), &code);
    if (!c) {
        say("--url %s", why);
        return code == WZ_EXIT_USAGE ? WR_EXIT_USAGE : WR_EXIT_INTERNAL;
    }

    long long batch_id;
    cJSON *doc = start(c, &o);
    const cJSON *step = open_step(doc, &o, &batch_id);
    command_env = format_env(o.workflow, batch_id, o.step, step);
    command_envp = command_env ? merged_environment(command_env) : NULL;
    cJSON_Delete(doc);
    if (!command_envp) {
        say("out of memory");
        return WR_EXIT_INTERNAL;
    }

    static char tail[WR_TAIL_BYTES];
    size_t tail_len = 0;
    stop_waiting = 0;
    double t0 = monotonic();
    int status = run_command(&o, command_envp, tail, &tail_len);
    double seconds = monotonic() - t0;
    free(command_envp);
    for (size_t i = 0; command_env[i]; i++)
        free(command_env[i]);
    free(command_env);

    int exited = WIFEXITED(status), sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int result = exited ? WEXITSTATUS(status) : 128 + sig;
    char error[WR_ERROR_BYTES + 1];
    if (exited && WEXITSTATUS(status) == 0)
        code = report(c, &o, batch_id, seconds, NULL);
    else {
        wr_failure_text(exited ? WEXITSTATUS(status) : 0, sig, tail, tail_len, error);
        code = report(c, &o, batch_id, seconds, error);
    }
    wz_client_free(c);
    curl_global_cleanup();
    return code == 0 ? result : WR_EXIT_UNRECORDED;
}
