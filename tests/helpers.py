"""Comparison helpers: each numerical test is one call of one of these."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from deeprnn import reference


def random_batch(batch: int, time: int, features: int, with_lengths: bool, seed: int = 0):
    """Float64 x (B, T, F) and, if asked, lengths with a full row, a short row and a 0 row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, time, features, dtype=torch.float64, generator=g)
    if not with_lengths:
        return x, None
    lengths = torch.randint(1, time + 1, (batch,), generator=g)
    lengths[0] = time
    if batch > 2:
        lengths[-1] = 0
    return x, lengths


def flatten_state(state) -> list[torch.Tensor]:
    """[h] or [h, c] per layer, flattened into one list."""
    out = []
    for s in state:
        out.extend(s if isinstance(s, tuple) else (s,))
    return out


def run_with_grads(module, x, lengths, seed: int = 1):
    """Forward, then backward of a random linear function of outputs AND final states.

    Returns (outputs, final state tensors, {name: grad} incl. "x").
    """
    x = x.detach().clone().requires_grad_(True)
    out, state = module(x, lengths=lengths)
    flat = flatten_state(state)
    g = torch.Generator().manual_seed(seed)
    # drawn in float64 whatever the dtype: float32 runs get the same function as float64 ones
    loss = (out * torch.randn(out.shape, dtype=torch.float64, generator=g).to(out.dtype)).sum()
    for s in flat:
        loss = loss + (s * torch.randn(s.shape, dtype=torch.float64, generator=g).to(s.dtype)).sum()
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(loss, [x, *params.values()], allow_unused=True)
    named = {"x": grads[0]}
    for (name, p), gr in zip(params.items(), grads[1:]):
        named[name] = torch.zeros_like(p) if gr is None else gr
    return out.detach(), [s.detach() for s in flat], named


def assert_same_outputs_and_grads(a, b, x, lengths=None, rtol=1e-7, atol=1e-10):
    """Two torch modules with the same parameter names agree on outputs, states, gradients."""
    out_a, st_a, g_a = run_with_grads(a, x, lengths)
    out_b, st_b, g_b = run_with_grads(b, x, lengths)
    torch.testing.assert_close(out_a, out_b, rtol=rtol, atol=atol)
    assert len(st_a) == len(st_b)
    for s, t in zip(st_a, st_b):
        torch.testing.assert_close(s, t, rtol=rtol, atol=atol)
    assert g_a.keys() == g_b.keys()
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], rtol=rtol, atol=atol, msg=name)


# --- the oracle: torch modules against the NumPy reference and finite differences ---------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _state_to_np(state):
    return [tuple(_np(t) for t in s) if isinstance(s, tuple) else _np(s) for s in state]


def _reference_chain(params, net_cfg, head_cfg, loss_kind, x, lengths, state, target,
                     front_cfg=None):  # fmt: skip
    """Reference forward of [front end ->] body [-> head -> loss]; returns (value, out, final,
    backward_fn)."""
    f_cache = None
    if front_cfg is not None:
        x, lengths, f_cache = reference.frontend_forward(
            params["frontend"], front_cfg, x, lengths, front_cfg["training"]
        )
    out, final, cache = reference.forward(params["body"], net_cfg, x, lengths, state)
    if head_cfg is None:
        return out, final, lambda d_out, d_fin: reference.backward(cache, d_out, d_fin)
    logits, h_cache = reference.head_forward(params["head"], head_cfg, out, lengths)
    mask = reference.length_mask(lengths, *x.shape[:2]) if head_cfg["pooling"] == "every" else None
    loss, d_logits = reference.loss_forward(loss_kind, logits, target, mask)

    def backward(_d_out, d_fin):
        head_grads, d_o = reference.head_backward(h_cache, d_logits)
        grads, dx, dstate = reference.backward(cache, d_o, d_fin)
        if f_cache is not None:
            front_grads, dx = reference.frontend_backward(f_cache, dx)
            grads = {**grads, **front_grads}
        return {**grads, **head_grads}, dx, dstate

    return np.array(loss), final, backward


def frontend_config(frontend, training: bool = False) -> dict:
    """The reference's config of a torch ConvFrontend (per-block lists, running statistics)."""
    blocks = list(frontend.blocks)
    cfg = {key: [getattr(b, key) for b in blocks]
           for key in ("kernel_size", "stride", "pool", "dilation")}  # fmt: skip
    cfg |= {"norm": blocks[0].norm_kind, "activation": blocks[0].activation,
            "padding": blocks[0].padding, "training": training}  # fmt: skip
    cfg["running"] = {k: _np(v) for k, v in frontend.state_dict().items() if "running_" in k}
    return cfg


def _split_params(module, training: bool = False):
    """Torch named parameters and the reference's params / configs for DeepRNN or
    [front end +] body + head: (named, params, body cfg, head cfg, front end cfg)."""
    named = dict(module.named_parameters())
    if hasattr(module, "head"):
        groups = ("frontend", "body", "head")
        params = {g: {k[len(g) + 1 :]: _np(v) for k, v in named.items() if k.startswith(g + ".")}
                  for g in groups}  # fmt: skip
        head_cfg = {"pooling": module.head.pooling, "activation": module.head.activation}
        front_cfg = None
        if module.frontend is not None:
            front_cfg = frontend_config(module.frontend, training)
        else:
            del params["frontend"]
        return named, params, asdict(module.body.config), head_cfg, front_cfg
    body = {k: _np(v) for k, v in named.items()}
    return named, {"body": body}, asdict(module.config), None, None


def _strip(name: str) -> str:
    return name.split(".", 1)[1] if name.startswith(("body.", "head.", "frontend.")) else name


def assert_matches_reference(
    module, x, lengths=None, state=None, target=None, loss="ce", rtol=1e-6, atol=1e-9, fd=True,
    training=False,
):  # fmt: skip
    """Outputs and EVERY gradient of a torch module equal the NumPy reference (float64).

    `module` is a DeepRNN (checked on outputs, final states, all parameter gradients, dL/dx
    and dL/d initial state under a random linear loss) or a SequenceModel whose body is a
    DeepRNN (checked on the loss `loss` against `target`, and all gradients). With `fd`, the
    reference's gradients are also checked by central finite differences along a random
    direction per parameter tensor, so a wrong reference cannot pass silently. A SequenceModel
    may have a ConvFrontend (its gradients are checked too). `training`: run in train mode
    (batch norm on batch statistics; the model must have no dropout), else eval mode.
    """
    module = module.double().train(training)
    x = x.double()
    named, params, net_cfg, head_cfg, front_cfg = _split_params(module, training)
    lengths_np = None if lengths is None else lengths.numpy()
    state_np = None if state is None else _state_to_np(state)
    ref_out, ref_final, ref_backward = _reference_chain(
        params, net_cfg, head_cfg, loss, _np(x), lengths_np, state_np,
        None if target is None else target.numpy(), front_cfg,
    )  # fmt: skip
    g = np.random.default_rng(7)
    d_out = g.standard_normal(ref_out.shape)
    d_final = [
        tuple(g.standard_normal(t.shape) for t in s) if isinstance(s, tuple)
        else g.standard_normal(s.shape) for s in ref_final
    ]  # fmt: skip
    if head_cfg is not None:
        d_out = np.array(1.0)
        d_final = [tuple(np.zeros_like(t) for t in s) if isinstance(s, tuple)
                   else np.zeros_like(s) for s in ref_final]  # fmt: skip
    ref_grads, ref_dx, ref_dstate = ref_backward(d_out, d_final)

    # torch side: the same scalar L = <out, d_out> + <final, d_final>
    xt = x.detach().clone().requires_grad_(True)
    st = None
    if state is not None:
        st = [tuple(t.double().clone().requires_grad_(True) for t in s) if isinstance(s, tuple)
              else s.double().clone().requires_grad_(True) for s in state]  # fmt: skip
    if head_cfg is None:
        out, final = module(xt, st, lengths)
    else:
        logits, final = module(xt, st, lengths)
        if module.frontend is not None and lengths is not None:
            lengths = module.frontend.output_length(lengths)
        out = torch_loss(loss, logits, target, lengths, module.head.pooling == "every")
    torch.testing.assert_close(out, torch.as_tensor(ref_out), rtol=rtol, atol=atol)
    for s, r in zip(flatten_state(final), flatten_state(_as_torch_state(ref_final))):
        torch.testing.assert_close(s, r, rtol=rtol, atol=atol)
    total = (out * torch.as_tensor(d_out)).sum()
    for s, d in zip(flatten_state(final), flatten_state(_as_torch_state(d_final))):
        total = total + (s * d).sum()
    leaves = [xt, *named.values()] + (flatten_state(st) if st is not None else [])
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    torch.testing.assert_close(grads[0], torch.as_tensor(ref_dx), rtol=rtol, atol=atol)
    for (name, p), gr in zip(named.items(), grads[1 : 1 + len(named)]):
        gr = torch.zeros_like(p) if gr is None else gr
        torch.testing.assert_close(
            gr, torch.as_tensor(ref_grads[_strip(name)]), rtol=rtol, atol=atol, msg=name
        )
    if st is not None:
        for gr, r in zip(grads[1 + len(named) :], flatten_state(_as_torch_state(ref_dstate))):
            torch.testing.assert_close(gr, r, rtol=rtol, atol=atol)
    if fd:
        _check_reference_by_finite_differences(
            params, net_cfg, head_cfg, loss, _np(x), lengths_np, state_np, target,
            d_out, d_final, ref_grads, ref_dx, front_cfg,
        )  # fmt: skip


def _as_torch_state(state):
    return [tuple(torch.as_tensor(t) for t in s) if isinstance(s, tuple) else torch.as_tensor(s)
            for s in state]  # fmt: skip


def torch_loss(kind, logits, target, lengths, per_step):
    """The loss the reference computes, in torch (mean over valid entries)."""
    if per_step:
        mask = torch.ones(logits.shape[:2], dtype=torch.bool)
        if lengths is not None:
            mask = torch.arange(logits.shape[1])[None] < lengths[:, None]
        logits, target = logits[mask], target[mask]
    if kind == "ce":
        return torch.nn.functional.cross_entropy(logits, target)
    if kind == "bce":
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target.double())
    return torch.nn.functional.mse_loss(logits, target.double())


def _check_reference_by_finite_differences(
    params, net_cfg, head_cfg, loss, x, lengths, state, target, d_out, d_final, grads, dx,
    front_cfg=None, eps=1e-6,
):  # fmt: skip
    """Directional central differences of the reference's L match its analytic gradients."""
    tgt = None if target is None else target.numpy()

    def value(p, xx):
        out, final, _ = _reference_chain(
            p, net_cfg, head_cfg, loss, xx, lengths, state, tgt, front_cfg
        )
        total = float((out * d_out).sum())
        for s, d in zip(flatten_state(final), flatten_state(d_final)):
            total += float((s * d).sum())
        return total

    g = np.random.default_rng(11)
    checks = [("x", dx, lambda v, s: (params, x + s * v))]
    for group, group_params in params.items():
        for name in group_params:

            def shifted(v, s, group=group, name=name):
                p = {k: dict(d) for k, d in params.items()}
                p[group][name] = p[group][name] + s * v
                return p, x

            checks.append((name, grads[name], shifted))
    for name, grad, shifted in checks:
        v = g.standard_normal(grad.shape)
        numeric = (value(*shifted(v, eps)) - value(*shifted(v, -eps))) / (2 * eps)
        analytic = float((grad * v).sum())
        assert abs(numeric - analytic) <= 1e-5 * max(1.0, abs(analytic)), (
            f"reference gradient of {name}: finite differences {numeric} vs analytic {analytic}"
        )


def reference_outputs(net, x, lengths=None, state=None):
    """The NumPy reference's (outputs, final states) of a DeepRNN in float64, as tensors:
    for paths that run without gradients (inference), whose outputs are all there is."""
    _, params, cfg, _, _ = _split_params(net)
    lengths_np = None if lengths is None else lengths.numpy()
    state_np = None if state is None else _state_to_np(state)
    out, final, _ = reference.forward(params["body"], cfg, _np(x), lengths_np, state_np)
    return torch.as_tensor(out), _as_torch_state(final)
