"""NumPy float64 reference of deeprnn: the test oracle. Imports no torch, by design.

    out, final_state, cache = forward(params, config, x, lengths=None, state=None)
    grads, dx, dstate0 = backward(cache, d_out, d_final_state=None)
    logits, head_cache = head_forward(head_params, {"pooling": ..., "activation": ...}, o, lengths)
    head_grads, d_o = head_backward(head_cache, d_logits)
    y = activate(kind, logits)
    loss, d_logits = loss_forward("ce" | "bce" | "mse", logits, target, mask=None)
    y, new_lengths, fe_cache = frontend_forward(fe_params, fe_config, x, lengths, training)
    fe_grads, dx = frontend_backward(fe_cache, d_y)

Parameter names and config keys are those of docs/semantics.md (torch state_dict names).
It computes the network in eval mode: zoneout as its expectation (u = 1 - p_h, v = 1 - p_c);
dropout and recurrent dropout act only in training and are ignored here. The conv front
end computes either mode: batch norm on batch statistics (training) or running ones (eval).
"""

from deeprnn.reference.attention import (
    attention_backward,
    attention_forward,
    decoder_step_backward,
    decoder_step_forward,
    seq2seq_step_backward,
    seq2seq_step_forward,
)
from deeprnn.reference.cells import cell_backward, cell_forward
from deeprnn.reference.frontend import frontend_backward, frontend_forward
from deeprnn.reference.heads import (
    activate,
    head_backward,
    head_forward,
    length_mask,
    loss_forward,
)
from deeprnn.reference.stack import backward, forward, param_shapes

__all__ = [
    "activate",
    "attention_backward",
    "attention_forward",
    "backward",
    "cell_backward",
    "cell_forward",
    "decoder_step_backward",
    "decoder_step_forward",
    "forward",
    "frontend_backward",
    "frontend_forward",
    "head_backward",
    "head_forward",
    "length_mask",
    "loss_forward",
    "param_shapes",
    "seq2seq_step_backward",
    "seq2seq_step_forward",
]
