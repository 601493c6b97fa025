/* tokenizer: the Gemma 4 BPE tokenizer core (see tokenizer.h for the algorithm).
 *
 * Data built once in nb_tok_create:
 *   - all token texts back to back in one arena, with offsets;
 *   - a token text -> id hash table (open addressing, FNV-1a, linear probing);
 *   - the merge list as token ids (left, right, merged), rank = index, and a hash table from
 *     the pair (left, right) to the merge. Every merge of the real vocabulary has both parts
 *     and the result in the vocabulary, so BPE can run on ids alone; a merge that does not is
 *     dropped (it could never apply).
 * Encoding allocates a few scratch arrays per call (sized by the text), never per token.
 */
#include "tokenizer.h"

#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB_TOK_MAX_EOG 16

/* One merge of tokenizer.ggml.merges; its rank is its index. */
struct merge {
    int32_t left, right, result; /* token ids; left = -1 for a dropped merge */
};

struct nb_tok {
    uint32_t n_tokens;
    char *text;          /* all token texts, back to back */
    uint32_t *off;       /* [n_tokens + 1] token i is text[off[i] .. off[i+1]) */
    uint8_t *type;       /* [n_tokens] enum nb_tok_type */
    uint32_t *tok_slots; /* [tok_mask + 1] text -> id hash: id + 1, 0 = free */
    uint32_t tok_mask;
    struct merge *merges;  /* [n_merges] */
    uint32_t *merge_slots; /* [merge_mask + 1] (left, right) -> merge index + 1, 0 = free */
    uint32_t merge_mask;
    int32_t byte_id[256]; /* id of "<0xXX>", -1 when missing */
    int32_t *special;     /* [n_special] ids cut out of text first, longest text first */
    uint32_t n_special;
    int32_t eog[NB_TOK_MAX_EOG];
    uint32_t n_eog;
    int32_t bos, eos, unk, pad;
    bool add_bos;
};

/* ---- hashing ---------------------------------------------------------------------------- */

#define FNV_SEED 0xcbf29ce484222325ull
static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static uint64_t pow2_at_least(uint64_t n)
{
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static uint64_t hash2(const char *a, size_t na, const char *b, size_t nb)
{
    return mix64(fnv(fnv(FNV_SEED, a, na), b, nb));
}

/* Id of the token whose text is a[0..na) followed by b[0..nb) (h = hash2 of them), or -1. */
static int32_t find_h(const struct nb_tok *t, uint64_t h, const char *a, size_t na, const char *b,
                      size_t nb)
{
    for (uint32_t i = (uint32_t)h & t->tok_mask;; i = (i + 1) & t->tok_mask) {
        uint32_t s = t->tok_slots[i];
        if (!s) return -1;
        uint32_t id = s - 1;
        const char *p = t->text + t->off[id];
        if (t->off[id + 1] - t->off[id] == na + nb && !memcmp(p, a, na) && !memcmp(p + na, b, nb))
            return (int32_t)id;
    }
}

static int32_t find2(const struct nb_tok *t, const char *a, size_t na, const char *b, size_t nb)
{
    return find_h(t, hash2(a, na, b, nb), a, na, b, nb);
}

static int32_t find(const struct nb_tok *t, const char *s, size_t n)
{
    return find2(t, s, n, "", 0);
}

static void tok_insert(struct nb_tok *t, uint32_t id)
{
    const char *p = t->text + t->off[id];
    size_t n = t->off[id + 1] - t->off[id];
    uint64_t h = hash2(p, n, "", 0);
    for (uint32_t i = (uint32_t)h & t->tok_mask;; i = (i + 1) & t->tok_mask) {
        uint32_t s = t->tok_slots[i];
        if (!s) {
            t->tok_slots[i] = id + 1;
            return;
        }
        uint32_t o = s - 1; /* a duplicate text keeps its first id */
        if (t->off[o + 1] - t->off[o] == n && !memcmp(t->text + t->off[o], p, n)) return;
    }
}

static uint32_t pair_hash(int32_t l, int32_t r)
{
    return (uint32_t)mix64((uint64_t)(uint32_t)l << 32 | (uint32_t)r);
}

/* The merge of tokens l and r, or NULL. */
static const struct merge *merge_find(const struct nb_tok *t, int32_t l, int32_t r)
{
    for (uint32_t i = pair_hash(l, r) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        uint32_t s = t->merge_slots[i];
        if (!s) return NULL;
        const struct merge *m = &t->merges[s - 1];
        if (m->left == l && m->right == r) return m;
    }
}

static void merge_insert(struct nb_tok *t, uint32_t index)
{
    const struct merge *m = &t->merges[index];
    for (uint32_t i = pair_hash(m->left, m->right) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        uint32_t s = t->merge_slots[i];
        if (!s) {
            t->merge_slots[i] = index + 1;
            return;
        }
        const struct merge *o = &t->merges[s - 1]; /* a repeated pair keeps its lowest rank */
        if (o->left == m->left && o->right == m->right) return;
    }
}

/* ---- creation --------------------------------------------------------------------------- */

static bool is_special_type(uint8_t ty)
{
    return ty == NB_TOK_CONTROL || ty == NB_TOK_USER_DEFINED || ty == NB_TOK_UNKNOWN;
}

static void add_eog(struct nb_tok *t, int32_t id)
{
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    if (t->n_eog < NB_TOK_MAX_EOG) t->eog[t->n_eog++] = id;
}

/* llama.cpp's fix-ups by token text: these end generation and are CONTROL tokens whatever the
 * file says; "</s>" is not, when the vocabulary has Gemma 4's "<|tool_response>". */
static void fix_eog(struct nb_tok *t)
{
    static const char *const eog_texts[] = {
        "<eos>", "<end_of_turn>", "<turn|>", "<|tool_response>", "</s>", "<|endoftext|>",
        "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<EOT>", "<|end_of_text|>",
    };
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = find(t, eog_texts[i], strlen(eog_texts[i]));
        if (id < 0) continue;
        t->type[id] = NB_TOK_CONTROL;
        add_eog(t, id);
    }
    int32_t s = find(t, "</s>", 4);
    if (s >= 0 && find(t, "<|tool_response>", 16) >= 0) {
        t->type[s] = NB_TOK_NORMAL;
        for (uint32_t i = 0; i < t->n_eog; i++)
            if (t->eog[i] == s) t->eog[i] = t->eog[--t->n_eog];
    }
    if (t->eos >= 0) add_eog(t, t->eos);
}

struct special_key {
    uint32_t len;
    int32_t id;
};

static int cmp_special(const void *a, const void *b)
{
    const struct special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int build_specials(struct nb_tok *t)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++)
        if (is_special_type(t->type[i]) && t->off[i + 1] > t->off[i]) n++;
    struct special_key *k = malloc(sizeof *k * (n ? n : 1));
    t->special = malloc(sizeof *t->special * (n ? n : 1));
    if (!k || !t->special) {
        free(k);
        return -1;
    }
    n = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++)
        if (is_special_type(t->type[i]) && t->off[i + 1] > t->off[i])
            k[n++] = (struct special_key){t->off[i + 1] - t->off[i], (int32_t)i};
    qsort(k, n, sizeof *k, cmp_special);
    for (uint32_t i = 0; i < n; i++) t->special[i] = k[i].id;
    t->n_special = n;
    free(k);
    return 0;
}

#ifdef __GNUC__
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Reads the merge list into the merge table. 514,906 merges make 1.5 M random lookups in the
 * token table, so they go in batches: hash a batch and prefetch the first slots, then the
 * offsets and texts those slots name, then the merge table lines, and only then look up and
 * insert, with the memory already on its way (about 3x faster than one merge at a time). */
static int build_merges(struct nb_tok *t, const struct nb_tok_vocab *v, uint32_t *dropped)
{
    enum { BATCH = 64 };
    t->merge_mask = (uint32_t)pow2_at_least((uint64_t)v->n_merges * 2) - 1;
    t->merges = malloc(sizeof *t->merges * (v->n_merges ? v->n_merges : 1));
    t->merge_slots = calloc((size_t)t->merge_mask + 1, sizeof *t->merge_slots);
    if (!t->merges || !t->merge_slots) return -1;
    *dropped = 0;
    struct {
        const char *l, *r;  /* the two parts of "left right" */
        size_t nl, nr;
        uint64_t h[3];      /* hashes of left, right, left+right */
    } b[BATCH];
    for (uint32_t base = 0; base < v->n_merges; base += BATCH) {
        uint32_t k = v->n_merges - base < BATCH ? v->n_merges - base : BATCH;
        for (uint32_t j = 0; j < k; j++) {
            const char *s = v->merges[base + j].p;
            size_t n = v->merges[base + j].n;
            /* split at the first space after the first byte, as llama.cpp does */
            const char *sp = n >= 2 && s ? memchr(s + 1, ' ', n - 1) : NULL;
            b[j].l = sp ? s : NULL;
            if (!sp) continue;
            b[j].nl = (size_t)(sp - s);
            b[j].r = sp + 1;
            b[j].nr = n - b[j].nl - 1;
            b[j].h[0] = hash2(b[j].l, b[j].nl, "", 0);
            b[j].h[1] = hash2(b[j].r, b[j].nr, "", 0);
            b[j].h[2] = hash2(b[j].l, b[j].nl, b[j].r, b[j].nr);
            for (int q = 0; q < 3; q++) PREFETCH(&t->tok_slots[(uint32_t)b[j].h[q] & t->tok_mask]);
        }
        for (uint32_t j = 0; j < k; j++)
            for (int q = 0; b[j].l && q < 3; q++) {
                uint32_t sl = t->tok_slots[(uint32_t)b[j].h[q] & t->tok_mask];
                if (sl) PREFETCH(&t->off[sl - 1]);
            }
        for (uint32_t j = 0; j < k; j++)
            for (int q = 0; b[j].l && q < 3; q++) {
                uint32_t sl = t->tok_slots[(uint32_t)b[j].h[q] & t->tok_mask];
                if (sl) PREFETCH(t->text + t->off[sl - 1]);
            }
        for (uint32_t j = 0; j < k; j++) {
            struct merge *m = &t->merges[base + j];
            *m = (struct merge){-1, -1, -1};
            if (!b[j].l) continue;
            m->left = find_h(t, b[j].h[0], b[j].l, b[j].nl, "", 0);
            m->right = find_h(t, b[j].h[1], b[j].r, b[j].nr, "", 0);
            m->result = find_h(t, b[j].h[2], b[j].l, b[j].nl, b[j].r, b[j].nr);
            PREFETCH(&t->merge_slots[pair_hash(m->left, m->right) & t->merge_mask]);
        }
        for (uint32_t j = 0; j < k; j++) {
            struct merge *m = &t->merges[base + j];
            /* a merge whose parts or result are not tokens can never apply to ids: drop it */
            if (m->left < 0 || m->right < 0 || m->result < 0) {
                m->left = m->right = -1;
                (*dropped)++;
                continue;
            }
            merge_insert(t, base + j);
        }
    }
    return 0;
}

struct nb_tok *nb_tok_create(const struct nb_tok_vocab *v, char *err, size_t errlen)
{
    if (!v || v->model != NB_TOK_MODEL_GEMMA4) {
        snprintf(err, errlen, "tokenizer: unsupported tokenizer model");
        return NULL;
    }
    if (!v->tokens || v->n_tokens == 0 || v->n_tokens >= INT32_MAX) {
        snprintf(err, errlen, "tokenizer: empty or oversized vocabulary (%u tokens)", v->n_tokens);
        return NULL;
    }
    if (v->n_merges && !v->merges) {
        snprintf(err, errlen, "tokenizer: %u merges but no merge list", v->n_merges);
        return NULL;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        if (v->tokens[i].n && !v->tokens[i].p) {
            snprintf(err, errlen, "tokenizer: token %u has no text", i);
            return NULL;
        }
        total += v->tokens[i].n;
    }
    if (total >= UINT32_MAX) {
        snprintf(err, errlen, "tokenizer: vocabulary text too large (%llu bytes)",
                 (unsigned long long)total);
        return NULL;
    }
    struct nb_tok *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->n_tokens = v->n_tokens;
    t->text = malloc(total ? total : 1);
    t->off = malloc(sizeof *t->off * (v->n_tokens + 1));
    t->type = malloc(v->n_tokens);
    t->tok_mask = (uint32_t)pow2_at_least((uint64_t)v->n_tokens * 2) - 1;
    t->tok_slots = calloc((size_t)t->tok_mask + 1, sizeof *t->tok_slots);
    if (!t->text || !t->off || !t->type || !t->tok_slots) goto oom;

    uint32_t o = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        t->off[i] = o;
        if (v->tokens[i].n) memcpy(t->text + o, v->tokens[i].p, v->tokens[i].n);
        o += (uint32_t)v->tokens[i].n;
        int32_t ty = v->types ? v->types[i] : NB_TOK_NORMAL;
        t->type[i] = ty >= NB_TOK_NORMAL && ty <= NB_TOK_BYTE ? (uint8_t)ty : NB_TOK_UNDEFINED;
    }
    t->off[v->n_tokens] = o;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (t->off[i + 1] > t->off[i]) tok_insert(t, i);

    /* special ids out of range are dropped, as llama.cpp does */
    int32_t n = (int32_t)v->n_tokens;
    t->bos = v->bos >= 0 && v->bos < n ? v->bos : -1;
    t->eos = v->eos >= 0 && v->eos < n ? v->eos : -1;
    t->unk = v->unk >= 0 && v->unk < n ? v->unk : -1;
    t->pad = v->pad >= 0 && v->pad < n ? v->pad : -1;
    t->add_bos = true; /* llama.cpp forces add_bos for gemma4 whatever the file says */
    if (t->add_bos && t->bos < 0) {
        snprintf(err, errlen, "tokenizer: the model adds BOS but has no valid bos_token_id");
        nb_tok_destroy(t);
        return NULL;
    }

    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_id[b] = find(t, hex, 6);
    }
    fix_eog(t);
    if (build_specials(t)) goto oom;
    uint32_t dropped;
    if (build_merges(t, v, &dropped)) goto oom;
    return t;
oom:
    snprintf(err, errlen, "tokenizer: out of memory building a %u-token vocabulary", v->n_tokens);
    nb_tok_destroy(t);
    return NULL;
}

void nb_tok_destroy(struct nb_tok *t)
{
    if (!t) return;
    free(t->text);
    free(t->off);
    free(t->type);
    free(t->tok_slots);
    free(t->merges);
    free(t->merge_slots);
    free(t->special);
    free(t);
}

/* ---- encoding --------------------------------------------------------------------------- */

struct out {
    int32_t *ids;
    size_t cap, n;
};

static void emit(struct out *o, int32_t id)
{
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* One BPE symbol: a run of characters of the word, linked to its neighbours. */
struct sym {
    uint32_t start, len; /* bytes in the word; len 0 once merged into its left neighbour */
    int32_t id;          /* token of that text, -1 if none */
    int32_t prev, next;  /* -1 at the ends */
};

/* A candidate merge of the adjacent symbols left and right, valid while both still hold the
 * ids they had when it was queued. */
struct bigram {
    uint32_t rank;
    int32_t left, right;
    int32_t lid, rid, result;
};

struct scratch {
    char *norm;        /* [3 * len] the normalized text */
    struct sym *sym;   /* [len] */
    struct bigram *heap; /* [3 * len] */
    size_t n_heap;
    struct { size_t off, len; int32_t id; } *frag, *frag2; /* text pieces and special tokens */
    size_t n_frag, cap_frag, cap_frag2;
};

static bool bigram_less(const struct bigram *a, const struct bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct scratch *s, struct bigram b)
{
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_less(&b, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
}

static struct bigram heap_pop(struct scratch *s)
{
    struct bigram top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!bigram_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static void try_pair(const struct nb_tok *t, struct scratch *s, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    int32_t lid = s->sym[l].id, rid = s->sym[r].id;
    if (lid < 0 || rid < 0) return;
    const struct merge *m = merge_find(t, lid, rid);
    if (m) heap_push(s, (struct bigram){(uint32_t)(m - t->merges), l, r, lid, rid, m->result});
}

/* Byte length of the UTF-8 sequence a lead byte starts (1 for stray continuation bytes). */
static size_t utf8_len(uint8_t c)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

static void bpe_word(const struct nb_tok *t, struct scratch *s, const char *w, size_t n,
                     struct out *o)
{
    /* a run of newlines that is a token stays whole (llama.cpp's gemma4 rule) */
    if (w[0] == '\n') {
        int32_t id = find(t, w, n);
        if (id >= 0) {
            emit(o, id);
            return;
        }
    }
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len((uint8_t)w[i]);
        if (cl > n - i) cl = n - i;
        s->sym[ns] = (struct sym){(uint32_t)i, (uint32_t)cl, find(t, w + i, cl), ns - 1, ns + 1};
        ns++;
        i += cl;
    }
    s->sym[ns - 1].next = -1;
    s->n_heap = 0;
    for (int32_t i = 1; i < ns; i++) try_pair(t, s, i - 1, i);
    while (s->n_heap) {
        struct bigram b = heap_pop(s);
        struct sym *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (!l->len || !r->len || l->next != b.right || l->id != b.lid || r->id != b.rid)
            continue; /* stale: one side has changed since it was queued */
        l->len += r->len;
        l->id = b.result;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = b.left;
        try_pair(t, s, l->prev, b.left);
        try_pair(t, s, b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        const struct sym *y = &s->sym[i];
        if (y->id >= 0) {
            emit(o, y->id);
            continue;
        }
        for (uint32_t k = 0; k < y->len; k++) { /* byte fallback */
            int32_t id = t->byte_id[(uint8_t)w[y->start + k]];
            if (id >= 0) emit(o, id);
        }
    }
}

/* Reads one code point as llama.cpp does (no overlong or surrogate checks). Returns its byte
 * length, or 0 when the lead byte starts no valid sequence. Code points above U+10FFFF (which
 * make llama.cpp abort) count as invalid. */
static size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len = c < 0xc0 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf8 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t v = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v > 0x10ffff) return 0;
    *cp = v;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* One piece of plain text: normalize (space -> ▁, invalid bytes -> U+FFFD), split into runs of
 * newlines and runs of the rest, BPE each run. */
static void encode_text(const struct nb_tok *t, struct scratch *s, const char *text, size_t len,
                        struct out *o)
{
    const uint8_t *p = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = p[i] == ' ' ? 1 : utf8_decode(p + i, len - i, &cp);
        if (p[i] == ' ')
            cp = 0x2581;
        else if (!l) {
            cp = 0xfffd;
            l = 1;
        }
        n += utf8_encode(cp, s->norm + n);
        i += l;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        bool nl = s->norm[i] == '\n';
        while (j < n && (s->norm[j] == '\n') == nl) j++;
        bpe_word(t, s, s->norm + i, j - i, o);
        i = j;
    }
}

/* First occurrence of needle in hay (memmem is not in C11/POSIX). */
static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m)
{
    if (!m || m > n) return m ? NULL : hay;
    for (const char *p = hay, *end = hay + n - m + 1; p < end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p) return NULL;
        if (!memcmp(p, needle, m)) return p;
    }
    return NULL;
}

static int frag_push(struct scratch *s, size_t off, size_t len, int32_t id)
{
    if (s->n_frag == s->cap_frag2) {
        size_t c = s->cap_frag2 ? 2 * s->cap_frag2 : 16;
        void *p = realloc(s->frag2, sizeof *s->frag2 * c);
        if (!p) return -1;
        s->frag2 = p;
        s->cap_frag2 = c;
    }
    s->frag2[s->n_frag].off = off;
    s->frag2[s->n_frag].len = len;
    s->frag2[s->n_frag].id = id;
    s->n_frag++;
    return 0;
}

/* Cuts the special tokens out of the text, longest first: for each one, every text fragment is
 * split at its leftmost non-overlapping occurrences (llama.cpp's tokenizer_st_partition). */
static int partition(const struct nb_tok *t, struct scratch *s, const char *text, size_t len,
                     bool parse_special)
{
    s->n_frag = 0;
    if (frag_push(s, 0, len, -1)) return -1;
    for (uint32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        if (!parse_special && t->type[id] != NB_TOK_USER_DEFINED) continue;
        const char *st = t->text + t->off[id];
        size_t sl = t->off[id + 1] - t->off[id];
        if (!find_bytes(text, len, st, sl)) continue; /* cheap test on the whole text */
        /* swap: frag2 (current) becomes frag (input), the output goes to frag2 */
        void *tp = s->frag;
        size_t tc = s->cap_frag, nin = s->n_frag;
        s->frag = s->frag2;
        s->cap_frag = s->cap_frag2;
        s->frag2 = tp;
        s->cap_frag2 = tc;
        s->n_frag = 0;
        for (size_t f = 0; f < nin; f++) {
            size_t off = s->frag[f].off, fl = s->frag[f].len;
            int32_t fid = s->frag[f].id;
            if (fid >= 0) {
                if (frag_push(s, off, fl, fid)) return -1;
                continue;
            }
            const char *m;
            while (fl >= sl && (m = find_bytes(text + off, fl, st, sl))) {
                size_t pre = (size_t)(m - (text + off));
                if (pre && frag_push(s, off, pre, -1)) return -1;
                if (frag_push(s, 0, 0, id)) return -1;
                off += pre + sl;
                fl -= pre + sl;
            }
            if (fl && frag_push(s, off, fl, -1)) return -1;
        }
    }
    return 0;
}

size_t nb_tok_max_ids(size_t len)
{
    return 3 * len + 1; /* a byte can become U+FFFD, three byte tokens; plus BOS */
}

int64_t nb_tok_encode(const struct nb_tok *t, const char *text, size_t len, unsigned flags,
                      int32_t *ids, size_t cap)
{
    struct out o = {ids, ids ? cap : 0, 0};
    if (len > (1u << 30)) return -1; /* symbol offsets are 32-bit */
    if ((flags & NB_TOK_ADD_SPECIAL) && t->add_bos && t->bos >= 0) emit(&o, t->bos);
    if (!len || !text) return (int64_t)o.n;

    struct scratch s = {0};
    int64_t ret = -1;
    if (partition(t, &s, text, len, flags & NB_TOK_PARSE_SPECIAL)) goto done;
    size_t longest = 0; /* scratch sized by the longest text fragment */
    for (size_t f = 0; f < s.n_frag; f++)
        if (s.frag2[f].id < 0 && s.frag2[f].len > longest) longest = s.frag2[f].len;
    s.norm = malloc(3 * longest + 1);
    s.sym = malloc(sizeof *s.sym * (longest + 1));
    s.heap = malloc(sizeof *s.heap * (3 * longest + 1));
    if (!s.norm || !s.sym || !s.heap) goto done;
    for (size_t f = 0; f < s.n_frag; f++) {
        if (s.frag2[f].id >= 0)
            emit(&o, s.frag2[f].id);
        else
            encode_text(t, &s, text + s.frag2[f].off, s.frag2[f].len, &o);
    }
    ret = (int64_t)o.n;
done:
    free(s.norm);
    free(s.sym);
    free(s.heap);
    free(s.frag);
    free(s.frag2);
    return ret;
}

/* ---- decoding --------------------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int nb_tok_piece(const struct nb_tok *t, int32_t id, char *buf, size_t n, unsigned flags)
{
    if (id < 0 || (uint32_t)id >= t->n_tokens) return -1;
    const char *p = t->text + t->off[id];
    size_t len = t->off[id + 1] - t->off[id];
    switch (t->type[id]) {
    case NB_TOK_CONTROL:
    case NB_TOK_UNKNOWN:
        if (!(flags & NB_TOK_RENDER_SPECIAL)) return 0;
        break;
    case NB_TOK_USER_DEFINED:
        break;
    case NB_TOK_BYTE:
        if (len == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' && hexval(p[3]) >= 0 &&
            hexval(p[4]) >= 0) {
            if (n) buf[0] = (char)(hexval(p[3]) << 4 | hexval(p[4]));
            return 1;
        }
        break; /* a malformed byte token renders as its text */
    case NB_TOK_NORMAL: {
        size_t w = 0; /* ▁ (e2 96 81) -> ' ' */
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            if (i + 2 < len && !memcmp(p + i, "\xe2\x96\x81", 3)) {
                c = ' ';
                i += 2;
            }
            if (w < n) buf[w] = c;
            w++;
        }
        return (int)w;
    }
    default:
        return 0; /* UNUSED, UNDEFINED */
    }
    if (n) memcpy(buf, p, len < n ? len : n);
    return (int)len;
}

size_t nb_tok_decode(const struct nb_tok *t, const int32_t *ids, size_t n, char *buf, size_t size,
                     unsigned flags)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        size_t room = w + 1 < size ? size - 1 - w : 0;
        int k = nb_tok_piece(t, ids[i], room ? buf + w : NULL, room, flags);
        if (k > 0) w += (size_t)k;
    }
    if (size) buf[w < size ? w : size - 1] = 0;
    return w;
}

/* ---- lookups ---------------------------------------------------------------------------- */

uint32_t nb_tok_n_vocab(const struct nb_tok *t) { return t->n_tokens; }
int32_t nb_tok_bos(const struct nb_tok *t) { return t->bos; }
int32_t nb_tok_eos(const struct nb_tok *t) { return t->eos; }
bool nb_tok_add_bos(const struct nb_tok *t) { return t->add_bos; }

bool nb_tok_is_eog(const struct nb_tok *t, int32_t id)
{
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return id >= 0;
    return false;
}

enum nb_tok_type nb_tok_type(const struct nb_tok *t, int32_t id)
{
    if (id < 0 || (uint32_t)id >= t->n_tokens) return NB_TOK_UNDEFINED;
    return (enum nb_tok_type)t->type[id];
}

const char *nb_tok_text(const struct nb_tok *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_tokens) return NULL;
    if (len) *len = t->off[id + 1] - t->off[id];
    return t->text + t->off[id];
}

int32_t nb_tok_find(const struct nb_tok *t, const char *s, size_t n)
{
    return s || !n ? find(t, s ? s : "", n) : -1;
}
