/* spec: the pieces of speculative decoding (engine/spec.c) that tests check on their own: the
 * sampler's distribution on the host and the speculative-sampling acceptance rule.
 *
 * The rule (Leviathan et al. 2023, Chen et al. 2023): a token d drafted from distribution q is
 * accepted with probability min(1, p(d) / q(d)) where p is the target's distribution; when it is
 * rejected the token is drawn from the residual max(0, p - q), normalised. The accepted-or-drawn
 * token is then distributed exactly as p. A deterministic drafter (prompt lookup, a greedy draft)
 * is a point mass q(d) = 1: d is accepted with probability p(d), else the token comes from p
 * without d. Greedy targets (temperature 0 or top_k 1) have p a point mass at the argmax: accept
 * when d is the argmax, else take the argmax.
 */
#ifndef NB_SPEC_H
#define NB_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "nibble.h"

/* A distribution over a vocabulary as its support: ids[0..n) with probabilities pr[0..n) summing
 * to 1, in the sampler's rank order (largest logit first, ties to the lower id). */
struct nb_dist {
    uint32_t n;
    uint32_t cap; /* entries allocated */
    int32_t *ids;
    double *pr;
};

void nb_dist_free(struct nb_dist *d);
/* The distribution nibble_sample draws from for logits[0..V) (top_k, then top_p, then
 * softmax(logits / temp); greedy samplers give the argmax alone). 0, or -1 out of memory. */
int nb_dist_from_logits(struct nb_dist *d, const float *logits, uint32_t V,
                        const struct nibble_sampler *s);
/* The index of the largest logit (ties to the lower id, NaN as -inf), as the device's argmax. */
int32_t nb_argmax(const float *logits, uint32_t V);
/* The token of the draw u in [0, 1) from d (by cumulative probability in d's order). */
int32_t nb_dist_draw(const struct nb_dist *d, double u);
/* The probability of token t under d (0 outside its support). */
double nb_dist_prob(const struct nb_dist *d, int32_t t);

/* The acceptance rule above for drafted token `drafted`: q NULL is a point mass at it. u_accept
 * and u_resample are uniform draws in [0, 1). Returns the token to emit; *accepted says whether it
 * is the drafted one. dense: scratch of V doubles, all 0, left all 0. */
int32_t nb_spec_accept(const struct nb_dist *p, const struct nb_dist *q, int32_t drafted,
                       double u_accept, double u_resample, double *dense, bool *accepted);

#endif
