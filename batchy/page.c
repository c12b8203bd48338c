/*
 * page.c - an answer made of pieces, sent as it is read, and the texts it
 * is made of, shared by reference with what rows.c remembers.
 *
 * A listing of 10,000 workflows is megabytes. Made in one piece, it held
 * a worker for as long as copying took, and every connection that worker
 * served waited as long. A page is a list of pieces instead: text, or
 * something of each of the page's texts (a row of each, a family of lines
 * of each), found only as libmicrohttpd asks for the next block to send.
 * Making a page costs nothing more than reading it does, and reading is
 * spread over the worker's turns.
 *
 * Texts are immutable once made; their reference count is the only thing
 * threads share here. A page is one connection's.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"

page_text *page_text_make(const char *text, size_t len, unsigned statuses, const size_t *cut)
{
    page_text *t = malloc(sizeof(*t) + len + 1);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    t->statuses = statuses;
    if (cut)
        memcpy(t->cut, cut, sizeof(t->cut));
    else
        memset(t->cut, 0, sizeof(t->cut));
    t->len = len;
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    return t;
}

page_text *page_text_ref(page_text *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void page_text_release(page_text *t)
{
    /* acq_rel: what the last holder reads of it happens before the free */
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

/* A piece of a page: text, or something of each of the page's texts,
 * found as the page is read, so that making a page of 10,000 workflows
 * costs nothing more than reading it does. */
enum { PIECE_TEXT, PIECE_LINES, PIECE_ROWS };

typedef struct piece {
    int kind;
    const char *text; /* PIECE_TEXT */
    size_t len;
    int family;    /* PIECE_LINES: each text's lines of this family */
    unsigned want; /* PIECE_ROWS: each text with a step in one of these
                    * statuses (0: each text), after a ',' but the first */
} piece;

struct page_body {
    piece *pieces;
    size_t n, room;
    page_text **texts; /* references, released with the page; NULL ones skipped */
    size_t ntexts;
    char **owned; /* free()d with the page */
    size_t nowned, owned_room;
    /* What is sent next: pieces[at], at texts[item] for a piece of each
     * text, off bytes into it; rows: whether one was sent before, and the
     * comma before this one. */
    size_t at, item, off;
    int rows_sent, comma_sent;
};

/* Room in *items (of *room, each `size` bytes) for one more after n: 0,
 * or -1 when out of memory. */
static int make_room(void **items, size_t *room, size_t n, size_t size)
{
    if (n < *room)
        return 0;
    size_t more = *room ? 2 * *room : 16;
    void *grown = realloc(*items, more * size);
    if (!grown)
        return -1;
    *items = grown;
    *room = more;
    return 0;
}

page_body *page_body_new(void)
{
    return calloc(1, sizeof(page_body));
}

static int add_piece(page_body *p, piece c)
{
    if (!p || make_room((void **)&p->pieces, &p->room, p->n, sizeof(piece)) != 0)
        return -1;
    p->pieces[p->n++] = c;
    return 0;
}

int page_body_add(page_body *p, const char *text, size_t len)
{
    return len ? add_piece(p, (piece){.kind = PIECE_TEXT, .text = text, .len = len}) : 0;
}

int page_body_own(page_body *p, char *text)
{
    if (!p || !text ||
        make_room((void **)&p->owned, &p->owned_room, p->nowned, sizeof(*p->owned)) != 0) {
        free(text);
        return -1;
    }
    p->owned[p->nowned++] = text;
    return page_body_add(p, text, strlen(text));
}

void page_body_texts(page_body *p, page_text **texts, size_t n)
{
    p->texts = texts;
    p->ntexts = n;
}

int page_body_lines(page_body *p, int family)
{
    return add_piece(p, (piece){.kind = PIECE_LINES, .family = family});
}

int page_body_rows(page_body *p, unsigned want)
{
    return add_piece(p, (piece){.kind = PIECE_ROWS, .want = want});
}

/* The bytes of texts[p->item] that piece c sends: NULL for none. */
static const char *part_of(const page_body *p, const piece *c, size_t *len)
{
    const page_text *t = p->texts[p->item];
    if (!t)
        return NULL;
    if (c->kind == PIECE_LINES) {
        *len = t->cut[c->family + 1] - t->cut[c->family];
        return t->text + t->cut[c->family];
    }
    if (c->want && !(t->statuses & c->want))
        return NULL;
    *len = t->len;
    return t->text;
}

size_t page_body_read(page_body *p, char *buf, size_t max)
{
    size_t done = 0;
    while (done < max && p->at < p->n) {
        const piece *c = &p->pieces[p->at];
        const char *src = c->text;
        size_t len = c->len;
        if (c->kind != PIECE_TEXT) {
            if (p->item == p->ntexts) { /* past the last text: the next piece */
                p->at++;
                p->item = p->off = 0;
                p->rows_sent = p->comma_sent = 0;
                continue;
            }
            if (!(src = part_of(p, c, &len))) {
                p->item++;
                continue;
            }
            if (c->kind == PIECE_ROWS && p->rows_sent && !p->comma_sent) {
                buf[done++] = ',';
                p->comma_sent = 1;
                continue;
            }
        }
        size_t n = len - p->off < max - done ? len - p->off : max - done;
        memcpy(buf + done, src + p->off, n);
        done += n;
        if ((p->off += n) < len)
            continue;
        p->off = 0;
        if (c->kind == PIECE_TEXT) {
            p->at++;
        } else {
            p->item++;
            p->rows_sent = 1;
            p->comma_sent = 0;
        }
    }
    return done;
}

void page_body_free(page_body *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ntexts; i++)
        page_text_release(p->texts[i]);
    for (size_t i = 0; i < p->nowned; i++)
        free(p->owned[i]);
    free(p->texts);
    free(p->owned);
    free(p->pieces);
    free(p);
}
