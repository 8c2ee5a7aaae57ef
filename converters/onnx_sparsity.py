"""``onnx-sparsity``: unstructured magnitude sparsity with NNCF, for a smaller *compressed* download.

Zeros scattered through dense kernels save no time on a CPU, GPU or NPU runtime (they are
multiplied like any other number) and no bytes in the ``.onnx`` file (a dense tensor stores
every zero). What they do save is bytes after compression: a bundle shipped as a zip or a
gzip'd tarball, or an over-the-air update, shrinks. This pass is offered for exactly that and
reports exactly that: the share of weights zeroed, and the file's size raw and deflated
(zlib level 9) before and after. It makes no speed claim.

The ONNX model is rebuilt as a PyTorch module (the ``onnx -> torch`` edge), ``nncf.prune``
(global magnitude: the smallest weights across all layers) computes the masks, the masks are
applied to the weights, and the weights are written back into the ONNX file.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError

_MASK = re.compile(r"__nncf_hooks\.post_hooks\.(?P<param>.+)__\d+\.\d+\.binary_mask$")


def _deflated(path: Path) -> int:
    return len(zlib.compress(path.read_bytes(), 9))


@register_pass("onnx-sparsity")
def sparsify_onnx(src: Path, dst: Path, /, *, ratio: float) -> PassReport:
    """Zero the ``ratio`` (0-1) smallest-magnitude weights of ``src`` across its layers; write ``dst``."""
    if not 0.0 < ratio < 1.0:
        raise ConversionError(f"onnx-sparsity: ratio {ratio} is out of range; "
                              "expected the fraction of weights to zero, between 0 and 1 (exclusive), e.g. 0.5")
    try:
        import nncf
        import onnx
        import torch
        from nncf import PruneMode
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "nncf", "host", "magnitude sparsity (NNCF)") from exc
    from converters.onnx_torch import onnx_to_torch, write_parameters

    with timed() as elapsed:
        model = onnx.load(str(src))
        module = onnx_to_torch(model)
        shapes = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
        example = tuple(torch.zeros(shape) for shape in shapes)
        sparse: Any = nncf.prune(module, PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL, ratio=ratio,
                                 examples_inputs=example[0] if len(example) == 1 else example)
        params = dict(module.named_parameters())
        masked = zeros = total = 0
        with torch.no_grad():
            for key, mask in sparse.state_dict().items():
                match = _MASK.match(key)
                if match is None or match["param"] not in params:
                    continue
                weight = params[match["param"]]
                weight.mul_(mask.to(weight.dtype))
                masked, zeros, total = masked + 1, zeros + int((weight == 0).sum()), total + weight.numel()
        if masked == 0:
            raise ConversionError(f"onnx-sparsity: NNCF found no weight to sparsify in {src.name}")
        write_parameters(module, model)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(dst))
    return PassReport("onnx-sparsity", src, dst, elapsed(), {
        "ratio_asked": ratio, "layers": masked, "weights_zero": round(zeros / total, 4),
        "bytes_before": src.stat().st_size, "bytes_after": dst.stat().st_size,
        "deflated_before": _deflated(src), "deflated_after": _deflated(dst),
        "note": "zeros compress, they do not compute faster: a smaller download, not a faster model",
    })
