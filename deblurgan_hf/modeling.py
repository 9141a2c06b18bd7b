"""`DeblurGAN`: the generator (and optionally the critic) as one Hub-ready module.

A model folder or Hub repo holds `config.json` (generator name and kwargs, critic kwargs or null),
`model.safetensors` and a `README.md` model card rendered from `model_card.md`.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import (
    ModelCardData,
    PyTorchModelHubMixin,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .cards import GENERATOR_PAPERS, project_urls
from .deconvolution import BlindDeconvolution
from .models import GENERATORS, Critic, build_critic, build_generator

WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")
MAX_PARAMETERS = 200_000_000  # from_pretrained's default: 100x the bundled model, 800 MB in fp32
# A config with millions of blocks would take minutes and gigabytes to build even on the meta
# device (about 1 ms per module here); the largest sensible configs have a few hundred modules.
MAX_MODULES = 4_000
MAX_CONFIG_BYTES = 2**20
HUB_TIMEOUT_S = 10.0
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
        deconvolution: settings of a blind-deconvolution stage that `deblur` runs on the blurred input
            beside the generator, keeping whichever result changed the photo more
            (`deblurgan_hf.deconvolution.BlindDeconvolution` fields); None: no such stage.
    """

    def __init__(
        self,
        generator: str = "nafnet",
        generator_kwargs: dict[str, Any] | None = None,
        critic_kwargs: dict[str, Any] | None = None,
        deconvolution: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.generator_name = generator
        self.generator_kwargs = dict(generator_kwargs or {})
        self.critic_kwargs = None if critic_kwargs is None else dict(critic_kwargs)
        self.generator = build_generator(generator, **self.generator_kwargs)
        self.critic = build_critic(**self.critic_kwargs) if self.critic_kwargs is not None else None
        self.deconvolution = None if deconvolution is None else BlindDeconvolution.from_config(deconvolution)
        # Store every constructor argument, defaults included, so a saved model does not change
        # when a later release changes a default.
        self._hub_mixin_config = {
            "generator": generator,
            "generator_kwargs": _with_defaults(type(self.generator), self.generator_kwargs),
            "critic_kwargs": None if self.critic is None else _with_defaults(type(self.critic), self.critic_kwargs),
        }
        if self.deconvolution is not None:  # older readers know only the three keys above
            self._hub_mixin_config["deconvolution"] = self.deconvolution.to_config()

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        """Restore a batch (N, 3, H, W) in [0, 1]; returns the full-resolution output only."""
        out = self.generator(blurred)
        return out[-1] if isinstance(out, (list, tuple)) else out

    def for_inference(self) -> DeblurGAN:
        """A copy without the critic, in eval mode (what gets shipped)."""
        model = DeblurGAN(self.generator_name, self.generator_kwargs, critic_kwargs=None,
                          deconvolution=None if self.deconvolution is None else self.deconvolution.to_config())
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
        deconvolve: bool = True,
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
            deconvolve: run the model's blind-deconvolution stage, if its config has one (False: the
                generator only).
        """
        from .inference import deblur_image

        return deblur_image(self, image, tile=tile, overlap=overlap, precision=precision, progress=progress,
                            compile=compile, deconvolve=deconvolve)

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
        size: ModelSize | None = None,
        hub_timeout: float = HUB_TIMEOUT_S,
        **model_kwargs: Any,
    ) -> DeblurGAN:
        if config is None:
            raise FileNotFoundError(f"{model_id}: no config.json")
        max_bytes = None if size is None else size.max_weights_bytes
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_NAME
            if not weights.is_file():
                pickles = sorted(p.name for p in Path(model_id).iterdir() if p.suffix in PICKLE_SUFFIXES)
                hint = f" It holds {pickles}: pickle checkpoints are never loaded (unsafe); convert them to safetensors." if pickles else ""
                raise FileNotFoundError(f"{weights}: missing.{hint}")
            _check_file_size(weights.stat().st_size, max_bytes, str(weights), _weights_limit(size))
        else:
            weights = _fetch_from_hub(
                model_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir, force_download=force_download,
                token=token, local_files_only=local_files_only, timeout=hub_timeout, max_bytes=max_bytes,
                limit_reason=_weights_limit(size),
            )
        model = cls(**model_kwargs)
        load_weights(model, weights, map_location=map_location, strict=strict,
                     label=str(weights) if os.path.isdir(model_id) else f"{model_id}/{WEIGHTS_NAME}")
        return model.eval()

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        max_parameters: int | None = MAX_PARAMETERS,
        max_gflops_per_megapixel: float | None = None,
        hub_timeout: float = HUB_TIMEOUT_S,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str = "cpu",
        strict: bool = True,
    ) -> DeblurGAN:
        """Load a model from a local folder or a Hub repo id ("user/name"); safetensors only.

        `config.json` is checked before anything is allocated or the weights are fetched: field
        types, and the networks it describes are built on the meta device to count their parameters
        (and, with `max_gflops_per_megapixel`, their compute) against the limits.

        Args:
            max_parameters: refuse configs with more parameters (generator and critic); None: no limit.
            max_gflops_per_megapixel: refuse generators that need more GFLOPs per megapixel of input
                (estimated with a forward pass on fake tensors); None: not estimated.
            hub_timeout: seconds to wait for the Hub before giving up (a cached copy is used if there
                is one); huggingface_hub's own retries would take minutes on an unreachable Hub.

        Raises FileNotFoundError / ValueError naming the folder, repo or file when it is not a model,
        ConnectionError when the Hub cannot be reached and the model is not cached.
        """
        name = str(pretrained_model_name_or_path)
        if name.endswith(PICKLE_SUFFIXES):
            raise ValueError(f"{name}: pickle checkpoints are never loaded (unsafe); use a safetensors model folder")
        looks_local = os.path.isabs(name) or name.startswith(".") or os.path.exists(name) or name.count("/") > 1
        if looks_local and not os.path.isdir(name):
            raise FileNotFoundError(f"{name}: no such model folder")
        if os.path.isdir(name):
            config_file = Path(name) / "config.json"
            if not config_file.is_file():
                raise FileNotFoundError(f"{name}: no config.json (is this a folder written by save_pretrained?)")
            label = str(config_file)
        else:
            try:
                validate_repo_id(name)
            except HFValidationError as err:
                raise FileNotFoundError(f"{name}: not a local model folder, and not a Hub repo id ('user/name')") from err
            config_file = _fetch_from_hub(
                name, "config.json", revision=revision, cache_dir=cache_dir, force_download=force_download,
                token=token, local_files_only=local_files_only, timeout=hub_timeout, max_bytes=MAX_CONFIG_BYTES,
                limit_reason="a model config is a few hundred bytes",
            )
            label = f"{name}/config.json"
        config = read_config(config_file, label)
        size = check_model_size(config, label=label, max_parameters=max_parameters,
                                max_gflops_per_megapixel=max_gflops_per_megapixel)
        return cls._from_pretrained(
            model_id=name, revision=revision, cache_dir=cache_dir, force_download=force_download,
            local_files_only=local_files_only, token=token, config=config, map_location=map_location,
            strict=strict, size=size, hub_timeout=hub_timeout, **config,
        )


def _with_defaults(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return {**{k: v for k, v in defaults.items() if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}, **kwargs}


def load_weights(model: nn.Module, path: str | Path, *, map_location: str = "cpu", strict: bool = True,
                 label: str | None = None) -> None:
    """Load a safetensors file into `model`, naming the file (`label`, default the path) and the keys
    when they do not fit or hold NaN or infinite values (they would give black images, not an error)."""
    label = label or str(path)
    try:
        state = load_file(str(path), device=map_location)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{label}: not a readable safetensors file ({err})") from err
    own = model.state_dict()
    missing = sorted(set(own) - set(state)) if strict else []
    unexpected = sorted(set(state) - set(own)) if strict else []
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        parts = [f"missing {_first(missing)}" if missing else "", f"unexpected {_first(unexpected)}" if unexpected else "",
                 f"wrong shape {_first(wrong_shape)}" if wrong_shape else ""]
        raise ValueError(f"{label}: weights do not fit the config: " + "; ".join(p for p in parts if p))
    not_finite = sorted(k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all())
    if not_finite:
        raise ValueError(f"{label}: NaN or infinite values in {_first(not_finite)}; the weights are damaged "
                         "(or the training run diverged), so the model would output black images")
    model.load_state_dict(state, strict=strict)


def _first(keys: list[str], n: int = 5) -> str:
    return f"{keys[:n]}{' ...' if len(keys) > n else ''}"


# ----------------------------------------------------------------------------------------------
# Loading limits: config.json is checked, and its networks measured, before anything is allocated
# ----------------------------------------------------------------------------------------------

# Block and level counts may be 0 (no block there); every other integer argument is a size
# (channels, kernel, factor, layers) and must be at least 1.
_COUNT_ARGS = frozenset({"n_blocks", "middle_blocks", "blocks_per_level", "enc_blocks", "dec_blocks", "depth",
                         "n_downsampling"})
_FLOP_PROBE = 512  # side of the fake input the compute is measured on


@dataclass(frozen=True)
class ModelSize:
    """What a config costs: parameters (generator + critic), tensor elements (with buffers), compute."""

    parameters: int
    elements: int
    gflops_per_megapixel: float | None = None

    @property
    def max_weights_bytes(self) -> int:
        # float64 at most, plus slack for the header and for weights that merely do not fit (which
        # load_weights names key by key): the point is to stop files that would exhaust memory.
        return 8 * self.elements + 64 * 2**20


class _NonFinite(str):
    """NaN / Infinity / -Infinity in config.json (not JSON, but Python's json reads them): kept as a
    marker so the type check can name the field that holds one."""


def read_config(path: str | Path, label: str) -> dict[str, Any]:
    """Read and type-check a model `config.json`; ValueError naming `label` and the field if it is wrong."""
    path = Path(path)
    _check_file_size(path.stat().st_size, MAX_CONFIG_BYTES, label, "a model config is a few hundred bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"), parse_constant=_NonFinite)
    except UnicodeDecodeError as err:
        raise ValueError(f"{label}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{label}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{label}: expected a JSON object with generator, generator_kwargs and critic_kwargs; "
                         f"got {_show(config)}")
    unknown = sorted(set(config) - {"generator", "generator_kwargs", "critic_kwargs", "deconvolution"})
    if unknown:
        raise ValueError(f"{label}: unknown keys {unknown}; allowed: generator, generator_kwargs, critic_kwargs, "
                         "deconvolution")
    if config.get("deconvolution") is not None:
        try:
            BlindDeconvolution.from_config(config["deconvolution"])
        except ValueError as err:
            raise ValueError(f"{label}: {err}") from None
    generator = config.get("generator", "nafnet")
    if type(generator) is not str or generator not in GENERATORS:
        raise ValueError(f"{label}: generator = {_show(generator)}: unknown generator; allowed: {sorted(GENERATORS)}")
    for field, cls in (("generator_kwargs", GENERATORS[generator]), ("critic_kwargs", Critic)):
        kwargs = config.get(field)
        if kwargs is None:
            continue
        if not isinstance(kwargs, dict):
            raise ValueError(f"{label}: {field} = {_show(kwargs)}: expected a JSON object of {cls.__name__} "
                             "arguments, or null")
        _check_arguments(cls, kwargs, f"{label}: {field}")
    return config


def _check_arguments(cls: type, kwargs: dict[str, Any], where: str) -> None:
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
              if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"{where}: unknown argument(s) {unknown}; accepted: {list(params)}")
    for name, value in kwargs.items():
        expected = _expected_type(name, value, params[name].default)
        if expected:
            raise ValueError(f"{where}.{name} = {_show(value)}: expected {expected}")


def _expected_type(name: str, value: Any, default: Any) -> str | None:
    """What `value` should be, judged by the argument's default; None if it is that."""
    low = 0 if name in _COUNT_ARGS else 1
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if _is_int(value, low) else f"an integer >= {low}"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite number"
    if isinstance(default, (list, tuple)):
        ok = isinstance(value, list) and all(_is_int(v, low) for v in value)
        return None if ok else f"a list of integers >= {low}"
    if isinstance(default, str):
        return None if type(value) is str else "a string"
    return None


def _is_int(value: Any, low: int) -> bool:
    return type(value) is int and value >= low


def _show(value: Any, limit: int = 60) -> str:
    text = str(value) if isinstance(value, _NonFinite) else json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_model_size(config: dict[str, Any], *, label: str, max_parameters: int | None = MAX_PARAMETERS,
                     max_gflops_per_megapixel: float | None = None) -> ModelSize:
    """Build the config's networks on the meta device (no memory for weights) and measure them;
    ValueError naming `label`, the figure and the limit when they are over a limit.

    The count runs while the networks are built, so an absurd config stops at the limit instead of
    building first; `max_gflops_per_megapixel` also runs the generator on a fake 512x512 input."""
    generator = config.get("generator", "nafnet")
    generator_kwargs = config.get("generator_kwargs") or {}
    critic_kwargs = config.get("critic_kwargs")
    budget = _Budget(max_parameters, label)
    try:
        with budget, torch.device("meta"):
            build_generator(generator, **generator_kwargs)
            if critic_kwargs is not None:
                build_critic(**critic_kwargs)
    except _OverBudget as err:
        raise ValueError(str(err)) from None
    except Exception as err:  # torch or the constructor: the config does not describe a network
        raise ValueError(f"{label}: the config does not build a network: {_brief(err)}") from None
    gflops = None
    if max_gflops_per_megapixel is not None:
        gflops = _gflops_per_megapixel(generator, generator_kwargs, label)
        if gflops > max_gflops_per_megapixel:
            raise ValueError(f"{label}: the generator needs {gflops:,.1f} GFLOPs per megapixel; the limit here is "
                             f"{max_gflops_per_megapixel:,g}")
    return ModelSize(budget.parameters, budget.elements, gflops)


class _OverBudget(Exception):
    pass


class _Budget:
    """Count parameters, buffers and modules as they are registered (global torch hooks, for this
    thread only) and stop construction as soon as a limit is passed."""

    def __init__(self, max_parameters: int | None, label: str) -> None:
        self.max_parameters, self.label = max_parameters, label
        self.parameters = self.elements = self.modules = 0

    def __enter__(self) -> _Budget:
        owner = threading.get_ident()
        hooks = nn.modules.module

        def on_parameter(module, name, param):
            if threading.get_ident() == owner and param is not None:
                self.parameters += param.numel()
                self.elements += param.numel()
                if self.max_parameters is not None and self.parameters > self.max_parameters:
                    raise _OverBudget(f"{self.label}: the config asks for more than {self.parameters:,} parameters; "
                                      f"the limit here is {self.max_parameters:,}")

        def on_buffer(module, name, buffer):
            if threading.get_ident() == owner and buffer is not None:
                self.elements += buffer.numel()

        def on_module(module, name, submodule):
            if threading.get_ident() == owner:
                self.modules += 1
                if self.modules > MAX_MODULES:
                    raise _OverBudget(f"{self.label}: the config asks for more than {MAX_MODULES:,} layers (modules); "
                                      "no sensible network has that many")

        self._handles = [hooks.register_module_parameter_registration_hook(on_parameter),
                         hooks.register_module_buffer_registration_hook(on_buffer),
                         hooks.register_module_module_registration_hook(on_module)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()


def _gflops_per_megapixel(generator: str, kwargs: dict[str, Any], label: str) -> float:
    # Fake tensors (shapes without storage) on the CPU rather than the meta device: the models run
    # parts of their forward under torch.autocast("cpu"), which has no meta-device variant.
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FakeTensorMode(), torch.no_grad():
            net = build_generator(generator, **kwargs).eval()
            with FlopCounterMode(display=False) as counter:
                net(torch.empty(1, 3, _FLOP_PROBE, _FLOP_PROBE))
    except Exception as err:  # noqa: BLE001 - any failure means it does not run on an RGB image
        raise ValueError(f"{label}: the generator does not run on an RGB image: {_brief(err)}") from None
    return counter.get_total_flops() / 1e9 / (_FLOP_PROBE**2 / 1e6)


def _brief(err: Exception) -> str:
    """First line of an exception (torch appends C++ stack traces to some)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {(lines[0] if lines else '')[:200]}"


def _weights_limit(size: ModelSize | None) -> str:
    return "" if size is None else f"what the config's {size.elements:,} tensor values can take, with room to spare"


def _check_file_size(n_bytes: int | None, max_bytes: int | None, label: str, reason: str) -> None:
    """Refuse a file before reading it when it is far bigger than it can be (it would be read whole into memory)."""
    if n_bytes is not None and max_bytes is not None and n_bytes > max_bytes:
        raise ValueError(f"{label}: {n_bytes:,} bytes, over the limit of {max_bytes:,} ({reason})")


def _fetch_from_hub(repo_id: str, filename: str, *, revision: str | None, cache_dir: str | Path | None,
                    force_download: bool, token: str | bool | None, local_files_only: bool, timeout: float,
                    max_bytes: int | None = None, limit_reason: str = "") -> str:
    """`hf_hub_download` that fails fast: one metadata request with `timeout` first.

    When that request gets no answer, huggingface_hub retries for minutes (60 s timeouts, 5
    retries); here a cached copy is used if there is one, else ConnectionError says what to do.
    """
    offline = hub_constants.HF_HUB_OFFLINE or local_files_only
    where = f"{repo_id}/{filename}"
    if not offline:
        try:
            meta = get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), token=token, timeout=timeout)
        except (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError) as err:
            raise _not_found(repo_id, filename, revision, err) from None
        except HfHubHTTPError as err:
            status = getattr(err.response, "status_code", "?")
            raise ConnectionError(f"{where}: the Hub ({hub_constants.ENDPOINT}) answered HTTP {status}") from None
        except Exception as err:  # noqa: BLE001 - the HTTP library's own network errors (refused, timed out, DNS)
            cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
            if isinstance(cached, str) and not force_download:
                return cached
            raise ConnectionError(
                f"{repo_id}: the Hub ({hub_constants.ENDPOINT}) could not be reached within {timeout:g} s "
                f"({type(err).__name__}: {err}), and {filename} is not in the local cache. "
                "Set HF_HUB_OFFLINE=1 to use cached models only, without waiting on the network."
            ) from None
        _check_file_size(meta.size, max_bytes, where, limit_reason)
    try:
        path = hf_hub_download(repo_id=repo_id, filename=filename, revision=revision, cache_dir=cache_dir,
                               force_download=force_download, token=token, local_files_only=local_files_only,
                               etag_timeout=timeout)
    except LocalEntryNotFoundError:
        raise FileNotFoundError(
            f"{where}: not in the local Hugging Face cache, and downloads are off "
            f"({'HF_HUB_OFFLINE is set' if hub_constants.HF_HUB_OFFLINE else 'local_files_only=True'})"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError) as err:
        raise _not_found(repo_id, filename, revision, err) from None
    if offline:
        _check_file_size(os.path.getsize(path), max_bytes, where, limit_reason)
    return path


def _not_found(repo_id: str, filename: str, revision: str | None, err: Exception) -> FileNotFoundError:
    if isinstance(err, RepositoryNotFoundError):
        return FileNotFoundError(f"{repo_id}: no such model repo on the Hub (or it is private or gated)")
    if isinstance(err, RevisionNotFoundError):
        return FileNotFoundError(f"{repo_id}: no revision {revision!r} on the Hub")
    hint = "; only safetensors weights are loaded (never pickle)" if filename == WEIGHTS_NAME else ""
    return FileNotFoundError(f"{repo_id}: the repo has no {filename}{hint}")
