"""`DeblurGAN`: the generator (and optionally the critic) as one Hub-ready module.

A model folder or Hub repo holds `config.json` (generator name and kwargs, critic kwargs or null),
`model.safetensors` and a `README.md` model card rendered from `model_card.md`.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from huggingface_hub import ModelCardData, PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .cards import GENERATOR_PAPERS, project_urls
from .models import build_critic, build_generator

WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")
_CARD_TEMPLATE = (Path(__file__).resolve().parent / "model_card.md").read_text(encoding="utf-8")
_URLS = project_urls()  # pyproject [project.urls], read from the installed package metadata


class DeblurGAN(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="deblurgan-hf",
    license="apache-2.0",
    pipeline_tag="image-to-image",
    tags=["image-deblurring", "motion-deblurring", "deblurgan", "image-restoration"],
    model_card_template=_CARD_TEMPLATE,
    repo_url=_URLS.get("Repository"),
    docs_url=_URLS.get("Documentation"),
    paper_url=_URLS.get("Paper"),
):
    """A deblurring generator with an optional critic.

    Args:
        generator: generator family, one of `deblurgan_hf.models.GENERATORS`.
        generator_kwargs: constructor arguments of that generator (JSON values).
        critic_kwargs: constructor arguments of the PatchGAN critic; None for an inference-only model.
    """

    def __init__(
        self,
        generator: str = "nafnet",
        generator_kwargs: dict[str, Any] | None = None,
        critic_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.generator_name = generator
        self.generator_kwargs = dict(generator_kwargs or {})
        self.critic_kwargs = None if critic_kwargs is None else dict(critic_kwargs)
        self.generator = build_generator(generator, **self.generator_kwargs)
        self.critic = build_critic(**self.critic_kwargs) if self.critic_kwargs is not None else None
        # Store every constructor argument, defaults included, so a saved model does not change
        # when a later release changes a default.
        self._hub_mixin_config = {
            "generator": generator,
            "generator_kwargs": _with_defaults(type(self.generator), self.generator_kwargs),
            "critic_kwargs": None if self.critic is None else _with_defaults(type(self.critic), self.critic_kwargs),
        }

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        """Restore a batch (N, 3, H, W) in [0, 1]; returns the full-resolution output only."""
        out = self.generator(blurred)
        return out[-1] if isinstance(out, (list, tuple)) else out

    def for_inference(self) -> DeblurGAN:
        """A copy without the critic, in eval mode (what gets shipped)."""
        model = DeblurGAN(self.generator_name, self.generator_kwargs, critic_kwargs=None)
        model.generator.load_state_dict(self.generator.state_dict())
        return model.eval()

    def deblur(
        self,
        image: Any,
        *,
        tile: int | None = None,
        overlap: int = 32,
        precision: str = "auto",
        progress: Callable[[int, int], None] | None = None,
        compile: bool = False,
    ) -> Any:
        """Deblur one image and return it as the same kind (PIL in, PIL out; a path gives PIL).

        Runs on the model's device (`model.to("cuda")` first to use a GPU); the image goes there
        and the result comes back as the caller's kind (a tensor on its own device and dtype). The
        model is left as found: same device, weights and memory format, training flags restored.

        Args:
            image: PIL image, numpy array (HxW, HxWx3, HxWx4; uint8, uint16 or float in [0, 1]),
                torch tensor ((3,H,W) or (N,3,H,W) float in [0, 1]) or a file path.
            tile: tile size in pixels; None picks whole-image or tiles by image size; 0 never tiles.
            overlap: overlap between tiles in pixels (blended, so seams do not show).
            precision: "fp32", "bf16" (autocast + channels_last), "fp16" (GPU only) or "auto" (bf16 where the
                device has native bf16, for generator families measured to lose < 0.05 dB in it, else fp32;
                `inference.resolve_precision`).
            progress: called as progress(done_tiles, total_tiles) after each tile.
            compile: run the forward through `torch.compile`: the first call per image size compiles
                (a minute or more on a CPU; cached on disk for later processes), later calls are faster.
        """
        from .inference import deblur_image

        return deblur_image(self, image, tile=tile, overlap=overlap, precision=precision, progress=progress,
                            compile=compile)

    def num_parameters(self, module: nn.Module | None = None) -> int:
        return sum(p.numel() for p in (module or self.generator).parameters())

    def generate_model_card(self, *args, **kwargs):
        """Render `model_card.md` with Hub metadata: `eval_results` (a list of `huggingface_hub.EvalResult`)
        go into the `model-index`, where the Hub shows them and `ModelCard.load` reads them; `datasets`
        and `base_model` (Hub ids, see `deblurgan_hf.cards`) into the metadata the Hub links."""
        eval_results = kwargs.pop("eval_results", None)
        lineage = {key: kwargs.pop(key) for key in ("datasets", "base_model") if kwargs.get(key)}
        kwargs.setdefault("generator", self.generator_name)
        kwargs.setdefault("generator_kwargs", json.dumps(self._hub_mixin_config["generator_kwargs"]))
        kwargs.setdefault("generator_paper", GENERATOR_PAPERS.get(self.generator_name))
        kwargs.setdefault("num_parameters", f"{self.num_parameters():,}")
        kwargs.setdefault("has_critic", self.critic is not None)
        card = super().generate_model_card(*args, **kwargs)
        # A copy: the class-level card data is shared by every instance.
        data = {**card.data.to_dict(), "metrics": ["psnr", "ssim"], **lineage}
        if eval_results:
            data.update(eval_results=list(eval_results), model_name=kwargs.get("model_name") or self.generator_name)
        card.data = ModelCardData(**data)
        return card

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> DeblurGAN:
        if config is None:  # huggingface_hub logs and swallows the config.json download error
            raise FileNotFoundError(
                f"{model_id}: no Hub model repo by that name could be fetched (no such repo, private, or offline),"
                " or it has no config.json"
            )
        unknown = sorted(set(config) - {"generator", "generator_kwargs", "critic_kwargs"})
        if unknown:
            raise ValueError(
                f"{model_id}/config.json: unknown keys {unknown}; allowed: generator, generator_kwargs, critic_kwargs"
            )
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_NAME
            if not weights.is_file():
                pickles = sorted(p.name for p in Path(model_id).iterdir() if p.suffix in PICKLE_SUFFIXES)
                hint = f" It holds {pickles}: pickle checkpoints are never loaded (unsafe); convert them to safetensors." if pickles else ""
                raise FileNotFoundError(f"{weights}: missing.{hint}")
        else:
            try:
                weights = hf_hub_download(
                    repo_id=model_id,
                    filename=WEIGHTS_NAME,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    token=token,
                    local_files_only=local_files_only,
                )
            except EntryNotFoundError as err:
                raise FileNotFoundError(
                    f"{model_id}: the repo has no {WEIGHTS_NAME}; only safetensors weights are loaded (never pickle)"
                ) from err
        load_weights(model, weights, map_location=map_location, strict=strict)
        return model.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> DeblurGAN:  # type: ignore[override]
        """Load a model from a local folder or a Hub repo id ("user/name"); safetensors only.

        Raises FileNotFoundError / ValueError naming the folder, repo or file when it is not a model.
        """
        name = str(pretrained_model_name_or_path)
        if name.endswith(PICKLE_SUFFIXES):
            raise ValueError(f"{name}: pickle checkpoints are never loaded (unsafe); use a safetensors model folder")
        looks_local = os.path.isabs(name) or name.startswith(".") or os.path.exists(name) or name.count("/") > 1
        if looks_local and not os.path.isdir(name):
            raise FileNotFoundError(f"{name}: no such model folder")
        if os.path.isdir(name) and not (Path(name) / "config.json").is_file():
            raise FileNotFoundError(f"{name}: no config.json (is this a folder written by save_pretrained?)")
        try:
            return super().from_pretrained(name, **kwargs)
        except (RepositoryNotFoundError, HFValidationError, LocalEntryNotFoundError) as err:
            raise FileNotFoundError(
                f"{name}: not a local model folder, and not a Hub model repo that could be fetched "
                f"(offline, or no such repo): {type(err).__name__}"
            ) from err


def _with_defaults(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return {**{k: v for k, v in defaults.items() if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}, **kwargs}


def load_weights(model: nn.Module, path: str | Path, *, map_location: str = "cpu", strict: bool = True) -> None:
    """Load a safetensors file into `model`, naming the file and the keys when they do not fit."""
    try:
        state = load_file(str(path), device=map_location)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    own = model.state_dict()
    missing = sorted(set(own) - set(state)) if strict else []
    unexpected = sorted(set(state) - set(own)) if strict else []
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        def show(keys: list[str]) -> str:
            return f"{keys[:5]}{' ...' if len(keys) > 5 else ''}"
        parts = [f"missing {show(missing)}" if missing else "", f"unexpected {show(unexpected)}" if unexpected else "",
                 f"wrong shape {show(wrong_shape)}" if wrong_shape else ""]
        raise ValueError(f"{path}: weights do not fit the config: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=strict)
