#!/usr/bin/env python3
"""Writes tests/fixtures/torch_reference.json: PyTorch golden values for bridle's ops.

Run from the repository root:  python3 scripts/make_fixtures.py
It needs PyTorch (Debian: apt-get install python3-torch; written against 1.13) and
nothing else. The output is deterministic (torch.manual_seed, CPU, float32) and is
committed, so the C++ tests (tests/ops/test_torch_parity.cpp) never need Python.

Every case holds its float32 inputs, PyTorch's outputs and the gradients of a
weighted-sum scalar loss, loss = sum(weights * output), i.e. backward(weights);
the weights are stored with the case. Tensors are {"shape": [...], "data": [...]}
with data flat and row-major. Each float32 is written as the shortest decimal that
rounds back to it (numpy's float32 repr): read as a double and cast to float, it
is the exact float32 PyTorch produced. JSON has no inf/nan, so those are the
strings "inf", "-inf" and "nan".
"""

import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240601


def encode_float(v):
    v = float(v)
    if math.isfinite(v):
        # float32's shortest round-trip decimal, held in a Python float so json
        # prints exactly those digits.
        return float(str(np.float32(v)))
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def enc(t):
    """A tensor as {"shape", "data"}: float32 values exact, int64 values as ints."""
    t = t.detach().contiguous()
    shape = list(t.shape)
    if t.dtype in (torch.int64, torch.int32):
        return {"shape": shape, "dtype": "int64", "data": [int(v) for v in t.reshape(-1).tolist()]}
    assert t.dtype == torch.float32, t.dtype
    return {"shape": shape, "data": [encode_float(v) for v in t.reshape(-1).tolist()]}


def leaf(t):
    return t.detach().clone().to(torch.float32).requires_grad_(True)


def weights_like(out):
    """Fixed random loss weights in [-1, 1] (so every output element matters)."""
    return torch.rand(out.shape, dtype=torch.float32) * 2 - 1


def run(fn, inputs):
    """fn(*leaves) -> output; returns (output, weights, grads) with grads of sum(w * out)."""
    leaves = [leaf(x) for x in inputs]
    out = fn(*leaves)
    w = weights_like(out)
    out.backward(w)
    return out, w, [x.grad for x in leaves]


# --- softmax family ---------------------------------------------------------------


def softmax_cases():
    cases = []
    inf = float("inf")
    inputs = {
        "article_123": torch.tensor([1.0, 2.0, 3.0]),
        "article_4": torch.tensor([1.2, 0.3, -0.5, 2.8]),
        "random_4x7": torch.randn(4, 7) * 2,
        "random_3d_2x3x5": torch.randn(2, 3, 5),
        "random_16x37": torch.randn(16, 37) * 3,  # more rows than a SIMD width, odd length
        "extreme_rows": torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0],
                                      [1e-4, 0.0, -1e-4]]),
        "extreme_neg1e4_0": torch.tensor([-1e4, 0.0]),
        "neg_inf_entries": torch.tensor([[-inf, 0.0, 1.0, 2.0], [3.0, -inf, -inf, 0.5],
                                         [0.25, 0.5, -inf, 1.0]]),
    }
    plan = [
        ("article_123", [-1], [1.0, 0.5]),
        ("article_4", [-1], [1.0, 0.5]),
        ("random_4x7", [-1, 0], [1.0, 0.5]),
        ("random_3d_2x3x5", [-1, 0, 1], [1.0, 0.5]),
        ("random_16x37", [-1], [1.0]),
        ("extreme_rows", [-1], [1.0, 0.5]),
        ("extreme_neg1e4_0", [-1], [1.0, 0.5]),
        ("neg_inf_entries", [-1, 0], [1.0, 0.5]),
    ]
    for name, dims, temps in plan:
        x = inputs[name]
        for op in ("softmax", "log_softmax"):
            f = torch.softmax if op == "softmax" else torch.log_softmax
            for dim in dims:
                for temp in temps:
                    out, w, (gx,) = run(lambda t: f(t / temp, dim), [x])
                    cases.append({"name": f"{op}_{name}_dim{dim}_T{temp}", "op": op, "dim": dim,
                                  "temperature": temp, "input": enc(x), "output": enc(out),
                                  "weights": enc(w), "grad_input": enc(gx)})
        for dim in dims:
            out, w, (gx,) = run(lambda t: torch.logsumexp(t, dim), [x])
            cases.append({"name": f"logsumexp_{name}_dim{dim}", "op": "logsumexp", "dim": dim,
                          "keepdim": False, "input": enc(x), "output": enc(out), "weights": enc(w),
                          "grad_input": enc(gx)})
    x = inputs["random_3d_2x3x5"]
    out, w, (gx,) = run(lambda t: torch.logsumexp(t, 1, keepdim=True), [x])
    cases.append({"name": "logsumexp_random_3d_dim1_keepdim", "op": "logsumexp", "dim": 1,
                  "keepdim": True, "input": enc(x), "output": enc(out), "weights": enc(w),
                  "grad_input": enc(gx)})

    # A row that is all -inf: PyTorch returns NaN for softmax/log_softmax (bridle throws),
    # and -inf for logsumexp with a NaN gradient (bridle: -inf with zero gradient).
    x = torch.tensor([[0.5, -inf, 1.5], [-inf, -inf, -inf]])
    for op in ("softmax", "log_softmax"):
        f = torch.softmax if op == "softmax" else torch.log_softmax
        out, w, (gx,) = run(lambda t: f(t, -1), [x])
        cases.append({"name": f"{op}_all_neg_inf_row", "op": op, "dim": -1, "temperature": 1.0,
                      "input": enc(x), "output": enc(out), "weights": enc(w),
                      "grad_input": enc(gx), "bridle_throws": True})
    out, w, (gx,) = run(lambda t: torch.logsumexp(t, -1), [x])
    cases.append({"name": "logsumexp_all_neg_inf_row", "op": "logsumexp", "dim": -1,
                  "keepdim": False, "input": enc(x), "output": enc(out), "weights": enc(w),
                  "grad_input": enc(gx)})
    return cases


# --- cross-entropy ----------------------------------------------------------------


def cross_entropy_cases():
    cases = []

    def add(name, logits, targets, reduction, ignore_index=-100, weight=None, smoothing=0.0):
        out, w, (gl,) = run(
            lambda z: F.cross_entropy(z, targets, weight=weight, reduction=reduction,
                                      ignore_index=ignore_index, label_smoothing=smoothing),
            [logits])
        case = {"name": f"{name}_{reduction}", "reduction": reduction,
                "ignore_index": ignore_index, "logits": enc(logits), "targets": enc(targets),
                "output": enc(out), "weights": enc(w), "grad_logits": enc(gl)}
        if weight is not None:
            case["class_weight"] = enc(weight)
        if smoothing:
            case["label_smoothing"] = smoothing
        cases.append(case)

    logits = torch.randn(8, 10) * 2
    targets = torch.randint(0, 10, (8,), dtype=torch.int64)
    for r in ("none", "mean", "sum"):
        add("b8_c10", logits, targets, r)

    ignored = targets.clone()
    ignored[[1, 4, 5]] = -100
    for r in ("none", "mean", "sum"):
        add("b8_c10_ignore_default", logits, ignored, r)

    custom = torch.tensor([2, 0, 2, 9, 1, 2, 5, 7], dtype=torch.int64)
    for r in ("none", "mean", "sum"):
        add("b8_c10_ignore_index_2", logits, custom, r, ignore_index=2)

    big = torch.randn(5, 1000) * 3
    big_targets = torch.randint(0, 1000, (5,), dtype=torch.int64)
    for r in ("none", "mean"):
        add("b5_c1000", big, big_targets, r)

    # Large logits: the max subtraction must keep exp from overflowing.
    large = torch.randn(4, 6) * 300
    large_targets = torch.tensor([0, 5, 3, 3], dtype=torch.int64)
    for r in ("none", "mean"):
        add("b4_c6_large_logits", large, large_targets, r)

    # PyTorch's options: class weights (kMean divides by the targets' weight sum),
    # label smoothing (alone, with weights, with ignored rows), probability targets.
    class_weight = torch.rand(10) * 2 + 0.1
    for r in ("none", "mean", "sum"):
        add("b8_c10_weight", logits, ignored, r, weight=class_weight)
        add("b8_c10_smoothing", logits, targets, r, smoothing=0.1)
        add("b8_c10_smoothing_ignore", logits, ignored, r, smoothing=0.25)
        add("b8_c10_smoothing_weight_ignore", logits, ignored, r, weight=class_weight,
            smoothing=0.3)
    soft = torch.softmax(torch.randn(8, 10) * 2, dim=1)
    for r in ("none", "mean", "sum"):
        add("b8_c10_soft", logits, soft, r)
        add("b8_c10_soft_weight_smoothing", logits, soft, r, weight=class_weight, smoothing=0.2)
    add("b8_c10_smoothing_one", logits, targets, "mean", smoothing=1.0)
    return cases


def sigmoid_loss_cases():
    """binary_cross_entropy_with_logits, torchvision's sigmoid_focal_loss and the
    softmax focal loss (Keras' CategoricalFocalCrossentropy without its clipping)."""
    cases = []
    logits = torch.randn(6, 4) * 3
    logits[0, 0], logits[1, 1] = 40.0, -40.0  # saturated: the stable forms must hold
    targets = (torch.rand(6, 4) > 0.5).to(torch.float32)
    targets[2] = torch.rand(4)  # soft labels are allowed
    weight = torch.rand(6, 1) + 0.5
    pos_weight = torch.rand(4) * 3 + 0.2
    for r in ("none", "mean", "sum"):
        for name, kw in (("plain", {}), ("weight", {"weight": weight}),
                         ("pos_weight", {"pos_weight": pos_weight}),
                         ("both", {"weight": weight, "pos_weight": pos_weight})):
            out, w, (gx,) = run(
                lambda x: F.binary_cross_entropy_with_logits(x, targets, reduction=r, **kw),
                [logits])
            case = {"name": f"bce_{name}_{r}", "op": "bce", "reduction": r,
                    "input": enc(logits), "targets": enc(targets), "output": enc(out),
                    "weights": enc(w), "grad_input": enc(gx)}
            for key, value in kw.items():
                case[key] = enc(value)
            cases.append(case)

    def sigmoid_focal(x, alpha, gamma, reduction):  # torchvision.ops.sigmoid_focal_loss
        p = torch.sigmoid(x)
        ce_loss = F.binary_cross_entropy_with_logits(x, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce_loss * ((1 - p_t) ** gamma)
        if alpha >= 0:
            loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

    for alpha, gamma, r in ((0.25, 2.0, "none"), (0.25, 2.0, "mean"), (-1.0, 1.5, "sum"),
                            (0.6, 0.0, "mean")):
        out, w, (gx,) = run(lambda x: sigmoid_focal(x, alpha, gamma, r), [logits])
        cases.append({"name": f"sigmoid_focal_a{alpha}_g{gamma}_{r}", "op": "sigmoid_focal",
                      "alpha": alpha, "gamma": gamma, "reduction": r, "input": enc(logits),
                      "targets": enc(targets), "output": enc(out), "weights": enc(w),
                      "grad_input": enc(gx)})

    class_logits = torch.randn(7, 5) * 2
    class_targets = torch.randint(0, 5, (7,), dtype=torch.int64)
    soft_targets = torch.softmax(torch.randn(7, 5), dim=1)
    class_alpha = torch.rand(5) + 0.1

    def softmax_focal(z, t, alpha, gamma, reduction):
        if t.dtype == torch.int64:
            t = F.one_hot(t, 5).to(torch.float32)
        log_p = F.log_softmax(z, dim=1)
        per_row = (alpha * (1 - log_p.exp()) ** gamma * t * -log_p).sum(1)
        return {"none": per_row, "mean": per_row.mean(), "sum": per_row.sum()}[reduction]

    for t_name, t in (("class", class_targets), ("soft", soft_targets)):
        for alpha_name, alpha in (("a0.25", 0.25), ("class_alpha", class_alpha)):
            for gamma, r in ((2.0, "mean"), (0.5, "none"), (0.0, "sum")):
                out, w, (gz,) = run(lambda z: softmax_focal(z, t, alpha, gamma, r),
                                    [class_logits])
                case = {"name": f"focal_{t_name}_{alpha_name}_g{gamma}_{r}", "op": "focal",
                        "gamma": gamma, "reduction": r, "input": enc(class_logits),
                        "targets": enc(t), "output": enc(out), "weights": enc(w),
                        "grad_input": enc(gz)}
                if alpha_name == "class_alpha":
                    case["class_alpha"] = enc(class_alpha)
                else:
                    case["alpha"] = alpha
                cases.append(case)
    return cases


# --- sparsemax / entmax -------------------------------------------------------------
# The `entmax` package (Peters et al.) is not in Debian; these are its algorithms,
# transcribed in float64 (entmax/activations.py, entmax/root_finding.py,
# entmax/losses.py), as the reference bridle's float32 kernels are checked against.


def ref_sparsemax(z):
    srt, _ = torch.sort(z, dim=-1, descending=True)
    cumsum = srt.cumsum(-1) - 1
    rho = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    support = (rho * srt > cumsum).sum(-1, keepdim=True)
    tau = cumsum.gather(-1, support - 1) / support.to(z.dtype)
    return torch.clamp(z - tau, min=0)


def ref_entmax15(z):
    x = (z - z.max(-1, keepdim=True).values) / 2
    srt, _ = torch.sort(x, dim=-1, descending=True)
    rho = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    mean = srt.cumsum(-1) / rho
    mean_sq = (srt ** 2).cumsum(-1) / rho
    ss = rho * (mean_sq - mean ** 2)
    delta = torch.clamp((1 - ss) / rho, min=0)
    tau = mean - torch.sqrt(delta)
    support = (tau <= srt).sum(-1, keepdim=True)
    tau_star = tau.gather(-1, support - 1)
    return torch.clamp(x - tau_star, min=0) ** 2


def ref_entmax_bisect(z, alpha, n_iter=50):
    x = z * (alpha - 1)
    max_val = x.max(-1, keepdim=True).values
    d = z.shape[-1]
    p = lambda v: torch.clamp(v, min=0) ** (1 / (alpha - 1))
    tau_lo = max_val - 1
    tau_hi = max_val - (1 / d) ** (alpha - 1)
    f_lo = p(x - tau_lo).sum(-1, keepdim=True) - 1
    dm = tau_hi - tau_lo
    for _ in range(n_iter):
        dm = dm / 2
        tau_m = tau_lo + dm
        p_m = p(x - tau_m)
        f_m = p_m.sum(-1, keepdim=True) - 1
        tau_lo = torch.where(f_m * f_lo >= 0, tau_m, tau_lo)
    return p_m / p_m.sum(-1, keepdim=True)


def entmax_backward(p, dp, alpha):
    g = torch.where(p > 0, p ** (2 - alpha), torch.zeros_like(p))
    q = (g * dp).sum(-1, keepdim=True) / g.sum(-1, keepdim=True)
    return g * (dp - q)


def entmax_cases():
    cases = []
    z = torch.randn(6, 9, dtype=torch.float64) * 2
    z[0] = torch.tensor([3.0, 1.0, 1.0, 0.5, -1.0, -2.0, 0.0, 2.9, 3.0], dtype=torch.float64)
    z = z.to(torch.float32).to(torch.float64)  # exactly representable in float32
    targets = torch.tensor([0, 8, 3, 3, -100, 5], dtype=torch.int64)
    for name, alpha, fn in (("sparsemax", 2.0, ref_sparsemax), ("entmax15", 1.5, ref_entmax15),
                            ("entmax_bisect_1.25", 1.25, lambda v: ref_entmax_bisect(v, 1.25)),
                            ("entmax_bisect_2.5", 2.5, lambda v: ref_entmax_bisect(v, 2.5))):
        out = fn(z)
        w = weights_like(out.to(torch.float32)).to(torch.float64)
        grad = entmax_backward(out, w, alpha)
        cases.append({"name": name, "op": name.split("_1")[0].split("_2")[0], "alpha": alpha,
                      "input": enc(z.to(torch.float32)), "output": enc(out.to(torch.float32)),
                      "weights": enc(w.to(torch.float32)), "grad_input": enc(grad.to(torch.float32))})
        # The Fenchel-Young loss (mean over rows not ignored) and its gradient p - e_y.
        mask = targets != -100
        safe = torch.where(mask, targets, torch.zeros_like(targets))
        omega = (1 - (out ** alpha).sum(-1)) / (alpha * (alpha - 1))
        rows = (omega + (out * z).sum(-1) - z.gather(-1, safe[:, None])[:, 0]) * mask
        loss = rows.sum() / mask.sum()
        grad = (out - F.one_hot(safe, 9).to(torch.float64)) * mask[:, None] / mask.sum()
        cases.append({"name": name + "_loss", "op": name.split("_1")[0].split("_2")[0] + "_loss",
                      "alpha": alpha, "input": enc(z.to(torch.float32)), "targets": enc(targets),
                      "output": enc(loss.to(torch.float32)), "weights": enc(torch.ones(())),
                      "grad_input": enc(grad.to(torch.float32))})
    return cases


# --- attention --------------------------------------------------------------------


def attention_cases():
    """scaled dot-product attention (written out: PyTorch 1.13 has no public
    F.scaled_dot_product_attention) and nn.MultiheadAttention(batch_first=True)."""
    cases = []

    def sdpa(q, k, v, mask=None, causal=False):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, float("-inf"))
            else:
                scores = scores + mask
        if causal:
            L, S = scores.shape[-2:]
            keep = torch.ones(L, S, dtype=torch.bool).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v

    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    keep = torch.rand(3, 5) > 0.3
    keep[:, 0] = True  # every query keeps a key (PyTorch would give NaN otherwise)
    additive = torch.randn(2, 3, 5)
    for name, mask in (("plain", None), ("keep_mask", keep), ("additive_mask", additive)):
        out, w, grads = run(lambda a, b, c: sdpa(a, b, c, mask), [q, k, v])
        case = {"name": f"sdpa_{name}", "op": "sdpa", "q": enc(q), "k": enc(k), "v": enc(v),
                "output": enc(out), "weights": enc(w), "grad_q": enc(grads[0]),
                "grad_k": enc(grads[1]), "grad_v": enc(grads[2])}
        if mask is not None:
            case["mask"] = enc(mask.to(torch.int64)) if mask.dtype == torch.bool else enc(mask)
        cases.append(case)
    qc, kc, vc = torch.randn(2, 4, 4), torch.randn(2, 4, 4), torch.randn(2, 4, 3)
    out, w, grads = run(lambda a, b, c: sdpa(a, b, c, causal=True), [qc, kc, vc])
    cases.append({"name": "sdpa_causal", "op": "sdpa", "causal": True, "q": enc(qc),
                  "k": enc(kc), "v": enc(vc), "output": enc(out), "weights": enc(w),
                  "grad_q": enc(grads[0]), "grad_k": enc(grads[1]), "grad_v": enc(grads[2])})

    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():  # nonzero biases, so they are exercised
        mha.in_proj_bias.uniform_(-0.5, 0.5)
        mha.out_proj.bias.uniform_(-0.5, 0.5)
    query, key, value = torch.randn(2, 3, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    padding = torch.tensor([[False, False, True, False], [False, False, False, True]])
    attn_mask = torch.randn(3, 4)
    leaves = [leaf(query), leaf(key), leaf(value)]
    out, avg = mha(*leaves, key_padding_mask=padding, attn_mask=attn_mask)
    w = weights_like(out)
    out.backward(w)
    cases.append({"name": "multihead_attention", "op": "mha", "embed_dim": 8, "num_heads": 2,
                  "in_proj_weight": enc(mha.in_proj_weight), "in_proj_bias": enc(mha.in_proj_bias),
                  "out_proj_weight": enc(mha.out_proj.weight),
                  "out_proj_bias": enc(mha.out_proj.bias), "query": enc(query), "key": enc(key),
                  "value": enc(value), "key_padding_mask": enc(padding.to(torch.int64)),
                  "attn_mask": enc(attn_mask), "output": enc(out), "attn_weights": enc(avg),
                  "weights": enc(w), "grad_query": enc(leaves[0].grad),
                  "grad_key": enc(leaves[1].grad), "grad_value": enc(leaves[2].grad),
                  "grad_in_proj_weight": enc(mha.in_proj_weight.grad)})
    return cases


def nll_loss_cases():
    cases = []
    log_probs = F.log_softmax(torch.randn(8, 10) * 2, dim=1)
    targets = torch.randint(0, 10, (8,), dtype=torch.int64)
    targets[[2, 6]] = -100
    class_weight = torch.rand(10) * 2 + 0.1
    for r in ("none", "mean", "sum"):
        for weight in (None, class_weight):
            out, w, (glp,) = run(
                lambda lp: F.nll_loss(lp, targets, weight=weight, reduction=r), [log_probs])
            case = {"name": f"b8_c10_{'weight_' if weight is not None else ''}{r}",
                    "reduction": r, "ignore_index": -100, "input": enc(log_probs),
                    "targets": enc(targets), "output": enc(out), "weights": enc(w),
                    "grad_input": enc(glp)}
            if weight is not None:
                case["class_weight"] = enc(weight)
            cases.append(case)
    return cases


# --- elementwise ------------------------------------------------------------------


def elementwise_cases():
    cases = []
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
              "pow": torch.pow}
    shape_pairs = [([4, 1, 3], [2, 3]), ([2, 3], [2, 3]), ([3], [2, 3]), ([2, 1], [1, 5]),
                   ([1], [3, 4]), ([2, 3, 4], [2, 1, 4])]
    for op, f in binary.items():
        for sa, sb in shape_pairs:
            a = torch.randn(sa)
            b = torch.randn(sb)
            if op == "div":  # keep the divisor away from zero
                b = torch.sign(b) * (0.5 + torch.rand(sb))
            if op == "pow":  # positive base, so d/d exponent = a^b ln a exists
                a = 0.5 + 1.5 * torch.rand(sa)
            out, w, (ga, gb) = run(f, [a, b])
            cases.append({"name": f"{op}_{'x'.join(map(str, sa))}_{'x'.join(map(str, sb))}",
                          "op": op, "inputs": [enc(a), enc(b)], "output": enc(out),
                          "weights": enc(w), "grads": [enc(ga), enc(gb)]})

    unary = {"neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
             "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    for op, f in unary.items():
        x = torch.randn(3, 5) * 2
        if op in ("log", "sqrt"):
            x = 0.05 + 3 * torch.rand(3, 5)
        if op == "relu":
            x[0, 0] = 0.0  # the kink: PyTorch's gradient there is 0
        if op in ("sigmoid", "tanh"):  # saturation: no overflow, no NaN
            x = torch.cat([x.reshape(-1), torch.tensor([-100.0, -30.0, -15.0, 15.0, 30.0, 100.0])])
        if op == "exp":
            x = torch.cat([x.reshape(-1), torch.tensor([-80.0, 40.0, 80.0])])
        out, w, (gx,) = run(f, [x])
        cases.append({"name": f"{op}", "op": op, "inputs": [enc(x)], "output": enc(out),
                      "weights": enc(w), "grads": [enc(gx)]})

    for p in (3.0, 2.0, 0.5, -1.5):
        x = torch.randn(4, 3) * 1.5
        if p in (0.5, -1.5):
            x = 0.1 + 2 * torch.rand(4, 3)
        out, w, (gx,) = run(lambda t: torch.pow(t, p), [x])
        cases.append({"name": f"pow_scalar_{p}", "op": "pow_scalar", "exponent": p,
                      "inputs": [enc(x)], "output": enc(out), "weights": enc(w),
                      "grads": [enc(gx)]})
    return cases


# --- matmul and linear ------------------------------------------------------------


def matmul_cases():
    cases = []
    for sa, sb in [([3, 4], [4, 5]), ([2, 3, 4], [2, 4, 5]), ([2, 3, 4], [4, 5]),
                   ([17, 33], [33, 9])]:
        a, b = torch.randn(sa), torch.randn(sb)
        out, w, (ga, gb) = run(torch.matmul, [a, b])
        cases.append({"name": f"matmul_{'x'.join(map(str, sa))}_{'x'.join(map(str, sb))}",
                      "op": "matmul", "inputs": [enc(a), enc(b)], "output": enc(out),
                      "weights": enc(w), "grads": [enc(ga), enc(gb)]})
    for xs, (out_f, in_f), bias in [([6, 4], (3, 4), True), ([6, 4], (3, 4), False),
                                    ([2, 3, 4], (5, 4), True), ([16, 20], (7, 20), True)]:
        x, W = torch.randn(xs), torch.randn(out_f, in_f) * 0.5
        inputs = [x, W] + ([torch.randn(out_f)] if bias else [])
        out, w, grads = run(F.linear, inputs)
        cases.append({"name": f"linear_{'x'.join(map(str, xs))}_{out_f}x{in_f}"
                      + ("_bias" if bias else "_nobias"), "op": "linear",
                      "inputs": [enc(t) for t in inputs], "output": enc(out), "weights": enc(w),
                      "grads": [enc(g) for g in grads]})
    return cases


# --- reductions -------------------------------------------------------------------


def reduce_cases():
    cases = []
    x = torch.randn(3, 4, 5)
    for op in ("sum", "mean", "max"):
        for dim in (0, 1, 2, -1):
            for keepdim in (False, True):
                if op == "max":
                    f = lambda t: torch.max(t, dim, keepdim=keepdim).values  # noqa: E731
                else:
                    f = lambda t: getattr(torch, op)(t, dim, keepdim=keepdim)  # noqa: E731
                out, w, (gx,) = run(f, [x])
                cases.append({"name": f"{op}_dim{dim}_keepdim{int(keepdim)}", "op": op,
                              "dim": dim, "keepdim": keepdim, "input": enc(x), "output": enc(out),
                              "weights": enc(w), "grad_input": enc(gx)})
    for op in ("sum", "mean"):
        out, w, (gx,) = run(getattr(torch, op), [x])
        cases.append({"name": f"{op}_all", "op": op, "dim": None, "keepdim": False,
                      "input": enc(x), "output": enc(out), "weights": enc(w),
                      "grad_input": enc(gx)})
    # Ties: PyTorch returns (and sends the gradient to) the first maximal element.
    ties = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 1.0, 2.0], [-1.0, -1.0, -1.0, -1.0]])
    for dim in (0, 1):
        out, w, (gx,) = run(lambda t: torch.max(t, dim).values, [ties])
        cases.append({"name": f"max_ties_dim{dim}", "op": "max", "dim": dim, "keepdim": False,
                      "input": enc(ties), "output": enc(out), "weights": enc(w),
                      "grad_input": enc(gx)})
    for t, label in ((x, "random"), (ties, "ties")):
        for dim in range(t.dim()):
            for keepdim in (False, True):
                cases.append({"name": f"argmax_{label}_dim{dim}_keepdim{int(keepdim)}",
                              "op": "argmax", "dim": dim, "keepdim": keepdim, "input": enc(t),
                              "output": enc(torch.argmax(t, dim, keepdim=keepdim))})
    return cases


# --- SGD --------------------------------------------------------------------------


def sgd_cases():
    """25 steps on loss = 0.5 * sum_i a_i * (p_i - c_i)^2, i.e. grad = a * (p - c)."""
    steps = 25
    shapes = [[3], [2, 2], [5]]
    init = [torch.randn(s) for s in shapes]
    curv = [0.2 + 1.8 * torch.rand(s) for s in shapes]  # a: per-element curvature
    centers = [torch.randn(s) for s in shapes]  # c: the minimum
    configs = [
        ("plain", dict(lr=0.1)),
        ("momentum", dict(lr=0.1, momentum=0.9)),
        ("momentum_dampening", dict(lr=0.1, momentum=0.9, dampening=0.1)),
        ("nesterov", dict(lr=0.1, momentum=0.9, nesterov=True)),
        ("weight_decay_momentum", dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
        ("weight_decay_nesterov", dict(lr=0.05, momentum=0.5, weight_decay=1e-2, nesterov=True)),
    ]
    cases = []
    for name, opts in configs:
        params = [leaf(p) for p in init]
        opt = torch.optim.SGD(params, **opts)
        trajectory = []
        for _ in range(steps):
            opt.zero_grad()
            with torch.no_grad():
                for p, a, c in zip(params, curv, centers):
                    p.grad = a * (p - c)
            opt.step()
            trajectory.append([enc(p) for p in params])
        full = {"lr": 0.0, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": False}
        full.update(opts)
        cases.append({"name": name, "options": full, "steps": steps,
                      "init": [enc(p) for p in init], "curvature": [enc(a) for a in curv],
                      "center": [enc(c) for c in centers], "trajectory": trajectory})
    return cases


def to_json_lines(doc):
    """JSON with one case per line, so a regenerated fixture diffs case by case."""
    def dump(v):
        return json.dumps(v, separators=(",", ":"), allow_nan=False)

    def lines(v, indent):
        pad = " " * indent
        if isinstance(v, dict):
            items = [f"{pad} {json.dumps(k)}: {lines(x, indent + 1).lstrip()}"
                     for k, x in v.items()]
            return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return pad + "[\n" + ",\n".join(pad + " " + dump(x) for x in v) + "\n" + pad + "]"
        return pad + dump(v)

    return lines(doc, 0) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "tests", "fixtures", "torch_reference.json")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reductions sum in one fixed order
    doc = {
        "generator": "scripts/make_fixtures.py",
        "torch_version": torch.__version__,
        "seed": SEED,
        "dtype": "float32",
        "loss": "sum(weights * output); every grad_* is d loss / d input (backward(weights))",
        "encoding": ("tensors are {shape, data} row-major; float32 values as their shortest "
                     "round-trip decimals; non-finite floats are the strings inf, -inf, nan"),
        "softmax": softmax_cases(),
        "cross_entropy": cross_entropy_cases(),
        "nll_loss": nll_loss_cases(),
        "sigmoid_losses": sigmoid_loss_cases(),
        "entmax": entmax_cases(),
        "attention": attention_cases(),
        "elementwise": elementwise_cases(),
        "matmul": matmul_cases(),
        "reduce": reduce_cases(),
        "sgd": {
            "loss": "0.5 * sum(curvature * (p - center)^2); grad = curvature * (p - center)",
            "cases": sgd_cases(),
        },
    }
    with open(args.out, "w") as f:
        f.write(to_json_lines(doc))
    print(f"wrote {os.path.normpath(args.out)} ({os.path.getsize(args.out) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
