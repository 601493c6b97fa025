/* peer_mtp: llama.cpp's gemma4-assistant (MTP) as an oracle for engine/ref_mtp.c and engine/mtp.c.
 * A development driver, not built by CMake. Build against the prebuilt llama.cpp of
 * ../shared/tools/setup_peer.sh (as ../shared/tools/peer.c is):
 *   P=/tmp/nibble-peer B=$P/vk/package/bins/linux-x64-vulkan
 *   gcc -O2 -o /tmp/peer_mtp tools/peer/peer_mtp.c -I$P/src/include -I$P/src/ggml/include -L$B \
 *       -l:libllama.vulkan.v0.5.0.so -l:libggml.vulkan.v0.5.0.so -l:libggml-base.so \
 *       -Wl,-rpath,$B -lm
 * Run (PEER_BACKENDS=$B; PEER_NGL=0 for the CPU backend, 99 for Vulkan):
 *   peer_mtp TARGET ASSISTANT OUT K ID...
 * The target evaluates ID[0..n-2] (positions 0..n-2); then K assistant steps at position n-1:
 * step 0 takes ID[n-1] and the target's hidden state (after output_norm) of position n-2, step j
 * the argmax of step j-1 and its h_next (as common/speculative.cpp drafts with an assistant that
 * shares the target's cache). OUT (binary, little-endian): u32 K, u32 V, u32 Ht, then per step
 * i32 token fed, f32 logits[V], f32 h_next[Ht]; then the target's h [Ht]. Prints the tokens.
 * The llama_*_nextn calls are C++ symbols in this library (llama-ext.h): named by asm labels. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

void ext_set_embeddings_nextn(struct llama_context *c, bool value, bool masked) __asm__(
    "_Z26llama_set_embeddings_nextnP13llama_contextbb");
float *ext_get_embeddings_nextn_ith(struct llama_context *c, int32_t i) __asm__(
    "_Z30llama_get_embeddings_nextn_ithP13llama_contexti");

/* PEER_DUMP=1: the assistant's named intermediate tensors (first values and sum) on stderr */
static bool dump_cb(struct ggml_tensor *t, bool ask, void *user)
{
    (void)user;
    if (ask) return true;
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) return true;
    int64_t n = ggml_nelements(t);
    float *v = malloc(sizeof(float) * n);
    ggml_backend_tensor_get(t, v, 0, sizeof(float) * n);
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        s += v[i];
        ss += (double)v[i] * v[i];
    }
    fprintf(stderr, "dump %-24s n %6lld sum %10.5f rms %8.5f first %9.5f %9.5f %9.5f\n",
            ggml_get_name(t), (long long)n, s, sqrt(ss / n), v[0], n > 1 ? v[1] : 0,
            n > 2 ? v[2] : 0);
    free(v);
    return true;
}

static void quiet(enum ggml_log_level l, const char *s, void *u)
{
    (void)u;
    if (l >= GGML_LOG_LEVEL_ERROR || getenv("PEER_VERBOSE")) fputs(s, stderr);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: peer_mtp TARGET ASSISTANT OUT K ID...\n");
        return 2;
    }
    llama_log_set(quiet, NULL);
    const char *bdir = getenv("PEER_BACKENDS");
    if (bdir)
        ggml_backend_load_all_from_path(bdir);
    else
        ggml_backend_load_all();
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = getenv("PEER_NGL") ? atoi(getenv("PEER_NGL")) : 99;
    struct llama_model *mt = llama_model_load_from_file(argv[1], mp);
    struct llama_model *ma = llama_model_load_from_file(argv[2], mp);
    if (!mt || !ma) {
        fprintf(stderr, "load failed\n");
        return 1;
    }
    int K = atoi(argv[4]), n = argc - 5;
    if (K < 1 || n < 2) {
        fprintf(stderr, "need K >= 1 and at least 2 ids\n");
        return 2;
    }
    int V = llama_vocab_n_tokens(llama_model_get_vocab(mt)), Ht = llama_model_n_embd(mt);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = 2;
    if (getenv("PEER_FA")) cp.flash_attn_type = (enum llama_flash_attn_type)atoi(getenv("PEER_FA"));
    struct llama_context *ct = llama_init_from_model(mt, cp);
    if (!ct) {
        fprintf(stderr, "target context failed\n");
        return 1;
    }
    ext_set_embeddings_nextn(ct, true, false);
    /* the assistant's context before the target evaluates anything: creating it clears the
     * memory it shares with the target (as common_init makes it, at startup) */
    struct llama_context_params ca = cp;
    ca.ctx_type = LLAMA_CONTEXT_TYPE_MTP;
    ca.ctx_other = ct;
    if (getenv("PEER_DUMP")) {
        ca.cb_eval = dump_cb;
        ca.cb_eval_user_data = NULL;
    }
    struct llama_context *cd = llama_init_from_model(ma, ca);
    if (!cd) {
        fprintf(stderr, "MTP context failed\n");
        return 1;
    }
    ext_set_embeddings_nextn(cd, true, true);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n - 1; i++) {
        b.token[i] = atoi(argv[5 + i]);
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = i == n - 2;
    }
    b.n_tokens = n - 1;
    if (llama_decode(ct, b)) {
        fprintf(stderr, "target decode failed\n");
        return 1;
    }
    float *h = malloc(sizeof(float) * Ht), *ht = malloc(sizeof(float) * Ht);
    memcpy(ht, ext_get_embeddings_nextn_ith(ct, n - 2), sizeof(float) * Ht);
    memcpy(h, ht, sizeof(float) * Ht);

    FILE *f = fopen(argv[3], "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", argv[3]);
        return 1;
    }
    uint32_t hdr[3] = {(uint32_t)K, (uint32_t)V, (uint32_t)Ht};
    fwrite(hdr, 4, 3, f);
    llama_token tok = atoi(argv[5 + n - 1]);
    for (int s = 0; s < K; s++) {
        llama_pos pos = n - 1;
        int32_t nsid = 1;
        llama_seq_id sid = 0, *sids = &sid;
        int8_t out = 1;
        struct llama_batch d = {1, &tok, h, &pos, &nsid, &sids, &out};
        if (llama_decode(cd, d)) {
            fprintf(stderr, "MTP decode failed at step %d\n", s);
            return 1;
        }
        const float *lg = llama_get_logits_ith(cd, 0);
        const float *hn = ext_get_embeddings_nextn_ith(cd, 0);
        fwrite(&tok, 4, 1, f);
        fwrite(lg, sizeof(float), V, f);
        fwrite(hn, sizeof(float), Ht, f);
        printf("%d%c", tok, s + 1 < K ? ' ' : '\n');
        int best = 0;
        for (int i = 1; i < V; i++)
            if (lg[i] > lg[best]) best = i;
        memcpy(h, hn, sizeof(float) * Ht);
        tok = best;
    }
    fwrite(ht, sizeof(float), Ht, f);
    fclose(f);
    return 0;
}
