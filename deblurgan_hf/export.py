"""`deblurgan export MODEL --format onnx -o model.onnx`: the generator as an ONNX graph.

The graph takes (N, 3, H, W) float32 in [0, 1] with H and W any multiples of the model's
`size_multiple` (stored in the file's metadata, `size_multiple`), and returns the same shape.
Padding to that multiple (and cropping back) is left to the caller, outside the graph, so the
graph holds no shape-dependent branches:

    import numpy as np, onnxruntime as ort
    session = ort.InferenceSession("model.onnx")
    m = int(session.get_modelmeta().custom_metadata_map["size_multiple"])
    x = blurred.astype(np.float32).transpose(2, 0, 1)[None] / 255          # HxWx3 uint8 -> 1x3xHxW
    h, w = x.shape[-2:]
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % m), (0, -w % m)), mode="reflect")
    sharp = session.run(None, {"blurred": x})[0][0, :, :h, :w]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write

FORMATS = ("onnx",)
OPSET = 18  # the lowest opset torch.onnx's dynamo exporter writes without converting


def size_rules(generator: nn.Module) -> tuple[int, int]:
    """(multiple, smallest side) the generator needs of its input's height and width."""
    multiple = int(getattr(generator, "size_multiple", 1))
    min_size = int(getattr(generator, "min_size", 1))
    return multiple, -(-min_size // multiple) * multiple


def export_onnx(model: nn.Module, path: str | Path, *, example_size: tuple[int, int] = (256, 256)) -> Path:
    """Write `model`'s generator (a `DeblurGAN`, or a bare generator) to `path` as ONNX, fp32.

    Height and width are dynamic in multiples of the model's `size_multiple` (see the module
    docstring); `example_size` is the size traced, rounded up to that multiple.
    """
    generator = getattr(model, "generator", model)
    multiple, smallest = size_rules(generator)
    example = [max(smallest, -(-side // multiple) * multiple) for side in example_size]
    # Dims as multiples of `multiple`, so the exporter can prove the model's own padding is a no-op.
    rows = torch.export.Dim("rows", min=max(1, smallest // multiple))
    cols = torch.export.Dim("cols", min=max(1, smallest // multiple))
    dynamic = {"blurred": {0: torch.export.Dim.DYNAMIC, 2: multiple * rows, 3: multiple * cols}}
    net = _FirstOutput(generator).eval()
    x = torch.rand(1, 3, *example)
    program = torch.onnx.export(
        net, (x,), dynamo=True, input_names=["blurred"], output_names=["sharp"],
        dynamic_shapes=dynamic, opset_version=OPSET, optimize=True, external_data=False,
    )
    program.model.metadata_props.update({"size_multiple": str(multiple), "min_size": str(smallest),
                                         "input_range": "float32 RGB in [0, 1], NCHW"})
    with atomic_write(path) as tmp:
        program.save(str(tmp), external_data=False)
    return Path(path)


class _FirstOutput(nn.Module):
    """The full-resolution output of a generator that may return one per scale."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        out = self.generator(blurred)
        return out[-1] if isinstance(out, (list, tuple)) else out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deblurgan export", description="Export a model's generator (ONNX).")
    parser.add_argument("model", help="model folder or Hub repo id")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("-o", "--output", required=True, help="file to write, e.g. model.onnx")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ._extras import needs
    from .modeling import DeblurGAN

    with needs("export"):  # torch.onnx's dynamo exporter imports them lazily, with a less helpful error
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    try:
        model = DeblurGAN.from_pretrained(args.model)
    except (ValueError, FileNotFoundError) as err:
        print(f"deblurgan export: error: {err}", file=sys.stderr)
        return 2
    out = export_onnx(model, args.output)
    multiple, smallest = size_rules(model.generator)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): input 'blurred' Nx3xHxW float32 in [0, 1], "
          f"H and W multiples of {multiple} (at least {smallest}); output 'sharp'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
