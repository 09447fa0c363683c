"""The C++ step loops (csrc/*.cpp), built on first use, with TorchScript as the fallback.

The fused recurrences spend their time in per-step element-wise work, not in arithmetic:
at B = 16-64 each of the ~20 small ATen ops of an LN-LSTM step costs a few microseconds of
dispatch and a pass over memory. csrc/lstm.cpp does the same math as the TorchScript loops
of lstm.py in two or three fused loops a step (ATen still does the matrix products), and
csrc/gru.cpp those of gru.py (the GRU with LN_hh, recurrent dropout, zoneout, lengths);
csrc/infer.cpp is the few-row inference loop of infer.py (torch's LSTM / GRU / RNN math);
csrc/gemm.cpp the large products of gemm.py (oneDNN or ATen's BLAS, see there).

torch.utils.cpp_extension compiles it once per machine and torch version (~20 s; cached in
$TORCH_EXTENSIONS_DIR, by default ~/.cache/torch_extensions), which needs a C++ compiler
and ninja (a dependency). Where that fails, a RuntimeWarning says why and the TorchScript
loops run instead: the same results, ~1.5-2x slower for these configs. DEEPRNN_NO_EXT=1
skips the build. Only CPU float32 / float64 tensors take the C++ loops.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import torch

# one library: lstm.cpp defines torch.ops.deeprnn, gru.cpp, infer.cpp and gemm.cpp add to it
# (common.h; ninja rebuilds on a change of the header too: torch's build reads the depfile)
SOURCES = [
    Path(__file__).with_name("csrc") / name
    for name in ("lstm.cpp", "gru.cpp", "infer.cpp", "gemm.cpp")
]
# -ffast-math with the CPU's vector width lets gcc vectorise exp / tanh through glibc's
# libmvec (measured: sigmoid of 32 x 256 floats 7.5 us against 25 us without). It goes to
# the compiler only, not the linker, so no flush-to-zero start-up code is linked in (that
# would change float behaviour for the whole process; a test checks it did not).
CFLAGS = ["-O3", "-ffast-math", "-fopenmp-simd"]  # -fopenmp-simd: `#pragma omp simd` only
ARCH_FLAGS = {  # torch's own reading of the CPU, so the build matches where it runs
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}

# the choices of csrc/common.h's `gemm` (deeprnn.kernels.gemm.set_backend, DEEPRNN_GEMM)
GEMM_BACKENDS = ("auto", "blas", "onednn")


def _capability() -> str:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # older torch: build for the baseline
        return "DEFAULT"


@functools.cache
def ops():
    """torch.ops.deeprnn once the C++ loops are loaded, else None (see the module doc)."""
    if os.environ.get("DEEPRNN_NO_EXT"):
        return None
    try:
        from torch.utils import cpp_extension

        arch = _capability()
        cpp_extension.load(  # one build per instruction set: a shared cache stays right
            name=f"deeprnn_kernels_{arch.lower()}",
            sources=[str(s) for s in SOURCES],
            extra_cflags=CFLAGS + ARCH_FLAGS.get(arch, []),
            is_python_module=False,
            verbose=False,
        )
        lib = torch.ops.deeprnn
    except Exception as err:  # noqa: BLE001 - any failure: the TorchScript loops run
        warnings.warn(
            f"deeprnn's C++ step loops could not be built ({type(err).__name__}: {err}); the "
            "TorchScript loops run instead (same results, slower). Install a C++ compiler "
            "and ninja, or set DEEPRNN_NO_EXT=1 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    choice = os.environ.get("DEEPRNN_GEMM")
    if choice:  # a bad value is the user's to fix: say so rather than ignore it
        if choice not in GEMM_BACKENDS:
            raise ValueError(f"DEEPRNN_GEMM={choice!r}: expected {', '.join(GEMM_BACKENDS)}")
        lib.set_gemm_backend(choice)
    return lib


def takes(x: torch.Tensor) -> bool:
    """Whether the C++ loops run for tensors like `x` (CPU, float32 / float64, built)."""
    return (
        x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and (ops() is not None)
    )


def empty_cache() -> int:
    """Release the large buffers the C++ loops keep for reuse (like torch.cuda.empty_cache);
    returns the bytes freed. At most 1 GiB is ever kept: see csrc/common.h."""
    if ops.cache_info().currsize == 0:  # never loaded: nothing kept
        return 0
    lib = ops()
    return 0 if lib is None else int(lib.empty_cache())
