#!/usr/bin/env python3
"""Writes tests/fixtures/sampled_softmax.json for tests/ops/test_sampled_softmax.cpp.

A re-implementation of TensorFlow's tf.nn.sampled_softmax_loss and tf.nn.nce_loss
(tensorflow/python/ops/nn_impl.py: _compute_sampled_logits, and the C++
ComputeAccidentalHits op) in torch, for FIXED sample sets, so no TensorFlow is
needed: small V, d, B; per-row losses and the gradients of their mean with
respect to weight, bias and hidden (float64 autograd on float32 inputs).

The expected counts come from the candidate samplers' formulas
(tensorflow/core/kernels/range_sampler.cc), written out here as well:
  uniform      P(c) = 1 / V
  log-uniform  P(c) = (log(c + 2) - log(c + 1)) / log(V + 1)
  unigram      P(c) = count_c^distortion / sum_k count_k^distortion
  learned      P(c) = n_c / sum_k n_k, n_c = 1 + occurrences seen by update()
  expected count (S sampled, num_tries draws):
      S P(c)                              when num_tries == S (always without unique)
      -expm1(num_tries * log1p(-P(c)))    otherwise (unique sampling with rejections)
The "samplers" cases store P(c) and these counts for a few ids of each sampler.

tf.nn.nce_loss labels the true columns 1/num_true (the softmax's labels, reused;
tensorflow/tensorflow#10267); bridle's nce_loss labels them 1 unless
divide_true_labels is set. Each NCE case says which ("divide_true_labels"); the
script computes TensorFlow's labels, then sets them to 1 for the other cases.

TensorFlow's ComputeAccidentalHits maps each sampled id to its LAST position, so a
repeated sampled id that is also a true class is masked only once; bridle masks
every occurrence. The cases here never repeat a sampled id that is a hit, so the
two agree (the script asserts it).

All inputs are float32 values stored as the exact decimal of each value.

Run (torch and numpy):  /usr/bin/python3 scripts/make_sampled_softmax_fixtures.py
"""
import math
import os

import numpy as np
import torch

from fixture_util import write_fixture

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "sampled_softmax.json")
FLT_MAX = float(np.finfo(np.float32).max)


# --- The samplers' formulas ------------------------------------------------------

def p_uniform(V, c):
    return 1.0 / V


def p_log_uniform(V, c):
    return (math.log(c + 2.0) - math.log(c + 1.0)) / math.log(V + 1.0)


def p_unigram(counts, distortion, c):
    w = [float(n) ** distortion for n in counts]
    return w[c] / sum(w)


def expected_count(p, num_tries, num_sampled):
    if num_tries == num_sampled:
        return p * num_sampled
    return -math.expm1(num_tries * math.log1p(-p))


# --- TensorFlow's _compute_sampled_logits and the two losses ------------------------

def compute_sampled_logits(weights, biases, labels, inputs, sampled, true_ec, sampled_ec,
                           num_true, remove_accidental_hits, subtract_log_q):
    B, d = inputs.shape
    labels_flat = labels.reshape(-1)
    all_ids = torch.cat([labels_flat, sampled])
    all_w = weights[all_ids]
    true_w = all_w[:B * num_true]
    sampled_w = all_w[B * num_true:]
    sampled_logits = inputs @ sampled_w.T  # [B, S]
    true_w = true_w.reshape(B, num_true, d)
    true_logits = (inputs[:, None, :] * true_w).sum(-1)  # [B, T]
    if biases is not None:
        all_b = biases[all_ids]
        true_logits = true_logits + all_b[:B * num_true].reshape(B, num_true)
        sampled_logits = sampled_logits + all_b[B * num_true:]
    if remove_accidental_hits:
        # ComputeAccidentalHits: sampled id -> its last position; -FLT_MAX where a
        # row's true class is among the sampled ids (sparse_to_dense assigns).
        pos = {}
        for i, s in enumerate(sampled.tolist()):
            pos[s] = i
        mask = torch.zeros_like(sampled_logits)
        for b in range(B):
            for t in range(num_true):
                y = int(labels[b, t])
                if y in pos:
                    mask[b, pos[y]] = -FLT_MAX
        sampled_logits = sampled_logits + mask
    if subtract_log_q:
        true_logits = true_logits - torch.log(true_ec.reshape(B, num_true))
        sampled_logits = sampled_logits - torch.log(sampled_ec)
    out_logits = torch.cat([true_logits, sampled_logits], 1)
    out_labels = torch.cat([torch.ones_like(true_logits) / num_true,
                            torch.zeros_like(sampled_logits)], 1)
    return out_logits, out_labels


def per_row_loss(kind, logits, labels):
    if kind == "softmax":  # softmax_cross_entropy_with_logits
        return -(labels * torch.log_softmax(logits, 1)).sum(1)
    # sigmoid_cross_entropy_with_logits, summed over the columns
    x, z = logits, labels
    return (torch.clamp(x, min=0) - x * z + torch.log1p(torch.exp(-torch.abs(x)))).sum(1)


def f32_list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def make_case(name, kind, seed, V, d, B, num_true, labels, sampled, counts_from, num_tries,
              remove_accidental_hits, subtract_log_q, has_bias, divide_true_labels=True):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.7, size=(V, d)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=(V,)).astype(np.float32)
    hidden = rng.normal(0, 1.0, size=(B, d)).astype(np.float32)
    labels = np.asarray(labels, dtype=np.int64).reshape(B, num_true)
    sampled = np.asarray(sampled, dtype=np.int64)
    S = len(sampled)
    # A repeated sampled id that is also a hit would be masked differently by TF.
    for s in set(sampled.tolist()):
        if (sampled == s).sum() > 1 and remove_accidental_hits:
            assert s not in labels, (name, s)
    prob = counts_from
    true_ec = np.array([[expected_count(prob(int(y)), num_tries, S) for y in row]
                        for row in labels], dtype=np.float32)
    sampled_ec = np.array([expected_count(prob(int(s)), num_tries, S) for s in sampled],
                          dtype=np.float32)

    w = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True) if has_bias else None
    h = torch.tensor(hidden, dtype=torch.float64, requires_grad=True)
    logits, out_labels = compute_sampled_logits(
        w, b, torch.tensor(labels), h, torch.tensor(sampled),
        torch.tensor(true_ec, dtype=torch.float64), torch.tensor(sampled_ec, dtype=torch.float64),
        num_true, remove_accidental_hits, subtract_log_q)
    if kind == "nce" and not divide_true_labels:
        out_labels[:, :num_true] = 1.0  # NCE's own labels
    rows = per_row_loss(kind, logits, out_labels)
    rows.mean().backward()
    case = {
        "name": name, "loss": kind, "V": V, "d": d, "B": B, "num_true": num_true,
        "remove_accidental_hits": remove_accidental_hits, "subtract_log_q": subtract_log_q,
        "has_bias": has_bias, "divide_true_labels": divide_true_labels,
        "weight": f32_list(weight), "bias": f32_list(bias), "hidden": f32_list(hidden),
        "labels": labels.reshape(-1).tolist(), "sampled_ids": sampled.tolist(),
        "num_tries": num_tries,
        "true_expected_count": f32_list(true_ec), "sampled_expected_count": f32_list(sampled_ec),
        "loss_per_row": rows.detach().tolist(),
        "grad_weight": w.grad.reshape(-1).tolist(),
        "grad_bias": b.grad.tolist() if has_bias else [],
        "grad_hidden": h.grad.reshape(-1).tolist(),
    }
    return case


def loss_cases():
    unigram_counts = [50, 20, 0, 9, 7, 30, 1, 3, 3, 12, 5, 8, 2, 1, 4]
    return [
        # Unique log-uniform samples (num_tries > S): rows 0 and 2 have a hit.
        make_case("softmax_unique_hits", "softmax", 1, V=12, d=5, B=4, num_true=1,
                  labels=[3, 7, 0, 11], sampled=[0, 1, 3, 2, 5], num_tries=8,
                  counts_from=lambda c: p_log_uniform(12, c),
                  remove_accidental_hits=True, subtract_log_q=True, has_bias=True),
        # Two true classes per row; samples with repeats (num_tries == S), the
        # repeated id 4 is no row's true class, id 6 hits row 1.
        make_case("softmax_num_true2_repeats", "softmax", 2, V=10, d=4, B=3, num_true=2,
                  labels=[[1, 2], [6, 9], [2, 2]], sampled=[4, 0, 6, 4, 2, 8], num_tries=6,
                  counts_from=lambda c: p_log_uniform(10, c),
                  remove_accidental_hits=True, subtract_log_q=True, has_bias=True),
        # No correction, no hit removal, no bias: the plain sampled logits.
        make_case("softmax_plain", "softmax", 3, V=8, d=3, B=3, num_true=1,
                  labels=[5, 1, 1], sampled=[1, 2, 7, 0], num_tries=4,
                  counts_from=lambda c: p_uniform(8, c),
                  remove_accidental_hits=False, subtract_log_q=False, has_bias=False),
        # NCE with TF's defaults: log q subtracted, hits kept.
        make_case("nce_defaults", "nce", 4, V=12, d=5, B=4, num_true=1,
                  labels=[3, 7, 0, 11], sampled=[0, 1, 3, 2, 5], num_tries=9,
                  counts_from=lambda c: p_log_uniform(12, c),
                  remove_accidental_hits=False, subtract_log_q=True, has_bias=True),
        # NCE, three true classes per row, hits removed, unigram counts, no bias:
        # TensorFlow's labels 1/3, then NCE's labels 1.
        make_case("nce_num_true3_unigram_tf_labels", "nce", 5, V=15, d=4, B=3, num_true=3,
                  labels=[[0, 5, 9], [1, 3, 14], [5, 0, 7]], sampled=[0, 11, 5, 7, 3, 10],
                  num_tries=11, counts_from=lambda c: p_unigram(unigram_counts, 0.75, c),
                  remove_accidental_hits=True, subtract_log_q=True, has_bias=False,
                  divide_true_labels=True),
        make_case("nce_num_true3_unigram", "nce", 5, V=15, d=4, B=3, num_true=3,
                  labels=[[0, 5, 9], [1, 3, 14], [5, 0, 7]], sampled=[0, 11, 5, 7, 3, 10],
                  num_tries=11, counts_from=lambda c: p_unigram(unigram_counts, 0.75, c),
                  remove_accidental_hits=True, subtract_log_q=True, has_bias=False,
                  divide_true_labels=False),
    ]


def sampler_cases():
    out = []

    def add(kind, range_max, ids, prob, num_sampled, tries, **extra):
        case = {"kind": kind, "range_max": range_max, "ids": ids,
                "probability": [prob(c) for c in ids], "num_sampled": num_sampled,
                "expected_count": {str(t): [expected_count(prob(c), t, num_sampled) for c in ids]
                                   for t in tries}}
        case.update(extra)
        out.append(case)

    add("uniform", 7, [0, 3, 6], lambda c: p_uniform(7, c), 3, [3, 5])
    add("log_uniform", 10, [0, 1, 5, 9], lambda c: p_log_uniform(10, c), 4, [4, 9])
    add("log_uniform", 50000, [0, 1, 100, 49999], lambda c: p_log_uniform(50000, c), 1024,
        [1024, 1500])
    counts = [5, 0, 3, 10, 1, 7]
    add("fixed_unigram", 6, list(range(6)), lambda c: p_unigram(counts, 0.75, c), 3, [3, 5],
        counts=counts, distortion=0.75)
    add("fixed_unigram", 6, list(range(6)), lambda c: p_unigram(counts, 1.0, c), 2, [2, 4],
        counts=counts, distortion=1.0)
    updates = [1, 1, 3, 4, 1]
    learned = [1] * 5
    for c in updates:
        learned[c] += 1
    add("learned_unigram", 5, list(range(5)), lambda c: learned[c] / sum(learned), 2, [2, 3],
        updates=updates)
    return out


def main():
    doc = {"loss_cases": loss_cases(), "samplers": sampler_cases()}
    write_fixture(OUT, doc)


if __name__ == "__main__":
    main()
