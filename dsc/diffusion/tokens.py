"""Learned class tokens: one diffusers textual-inversion file per class plus a ``tokens.json`` manifest.

File format (stock diffusers): ``{"<brake_caliper>": tensor[K, dim]}`` in ``<brake_caliper>.safetensors``,
loadable with ``pipe.load_textual_inversion(path)``. With K > 1 vectors diffusers adds the tokens
``<tok>``, ``<tok>_1`` ... ``<tok>_{K-1}`` and rewrites a prompt's ``<tok>`` into all of them
(``TextualInversionLoaderMixin.maybe_convert_prompt``). dsc does exactly the same (``add_token_vectors``,
``expand_prompt``), so a prompt means the same thing in dsc and in a stock pipeline.

Write prompts with the bare token (``"a photo of a <brake_caliper>"``). Stock pipelines expand it
themselves; when you tokenize yourself, call ``expand_prompt`` first — never pass an already expanded
prompt to a stock pipeline (it would expand ``<tok>`` inside ``<tok>_1`` again).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsc.errors import InputError, MismatchError, ModelError

if TYPE_CHECKING:
    import torch

    from dsc.diffusion.models import SDComponents

MANIFEST = "tokens.json"
MANIFEST_FORMAT = "dsc-tokens"
#: 2: a manifest may name a LoRA (``lora``; `dsc invert --method lora|ti+lora`); a TOKENS/ without one is still 1
MANIFEST_VERSION = 2


def token_for_class(name: str) -> str:
    """The token of a class: ``"Brake caliper"`` -> ``"<brake_caliper>"`` (lower case, as CLIP lowercases)."""
    slug = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_") or "class"
    return f"<{slug}>"


def tokens_for_classes(names: list[str]) -> dict[str, str]:
    """Tokens of several classes, made unique (``<a>``, ``<a_2>``) when two names map to the same token."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        tok = token_for_class(name)
        base, n = tok[1:-1], 2
        while tok in used:
            tok, n = f"<{base}_{n}>", n + 1
        used.add(tok)
        out[name] = tok
    return out


def vector_tokens(token: str, num_vectors: int) -> list[str]:
    """The K tokens that carry a K-vector embedding, named as diffusers names them."""
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def expand_prompt(prompt: str, tokenizer: Any) -> str:
    """Rewrite every multi-vector token into its K tokens, exactly as diffusers' ``maybe_convert_prompt``."""
    for token in set(tokenizer.tokenize(prompt)):
        if token in tokenizer.added_tokens_encoder:
            replacement, i = token, 1
            while f"{token}_{i}" in tokenizer.added_tokens_encoder:
                replacement += f" {token}_{i}"
                i += 1
            prompt = prompt.replace(token, replacement)
    return prompt


# ------------------------------------------------------------------------------------------ token files
def save_token_file(path: Path, token: str, vectors: torch.Tensor) -> str:
    """Write ``{token: vectors[K, dim]}`` (float32) atomically; return the file's sha256."""
    import safetensors.torch

    from dsc.outputs import atomic_write_bytes

    if vectors.ndim != 2:
        raise ValueError(f"token vectors must have shape [K, dim], got {tuple(vectors.shape)}")
    # one metadata key: safetensors writes the metadata map in a per-process random order, so with two keys
    # the same vectors gave different bytes (and sha256) from run to run
    data = safetensors.torch.save({token: vectors.detach().to("cpu").float().contiguous()},
                                  metadata={"format": "pt"})
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def read_token_file(path: Path) -> tuple[str, torch.Tensor]:
    """``(token, vectors[K, dim])`` of a diffusers textual-inversion ``.safetensors`` file."""
    import safetensors.torch

    try:
        state = safetensors.torch.load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"{path} is not a readable token file ({exc})", hint="rerun `dsc invert`") from None
    if len(state) != 1:
        raise InputError(f"{path} holds {len(state)} tensors, expected one token",
                         hint="use one file per class, as `dsc invert` writes them")
    token, vectors = next(iter(state.items()))
    return token, vectors if vectors.ndim == 2 else vectors.reshape(1, -1)


# --------------------------------------------------------------------------------------------- manifest
@dataclass
class ClassToken:
    """One class's entry in ``tokens.json``. ``token`` is what prompts carry for the class; with
    ``--method lora`` it is the class's words and ``file`` is empty (no token file)."""

    token: str
    file: str
    sha256: str
    num_vectors: int
    dim: int
    initializer: str = ""
    steps: int = 0
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps_per_second: float = 0.0
    batch_size: int = 0
    gradient_accumulation: int = 0
    validation_grid: str | None = None
    #: rows of DATA.h5 the token was learned from (train split)
    examples: list[int] = field(default_factory=list)


@dataclass
class TokenManifest:
    """``tokens.json``: which token each class has, and for which model and data it was learned."""

    directory: Path
    classes: dict[str, ClassToken]
    model: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    #: ``--method lora|ti+lora``: the LoRA file, its sha256, rank, alpha, targets and training record
    lora: dict[str, Any] | None = None
    #: Set on the manifest ``dsc invert --resume`` returns when TOKENS/ already held every class (not written).
    already_complete: bool = field(default=False, compare=False)

    @property
    def model_id(self) -> str:
        return str(self.model.get("model", ""))

    @property
    def text_fingerprint(self) -> str:
        return str(self.model.get("text_fingerprint", ""))

    @property
    def method(self) -> str:
        return str(self.settings.get("method") or "textual-inversion")

    @property
    def data_fingerprint(self) -> str:
        return str(self.data.get("fingerprint", ""))

    def to_json(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION if self.lora else 1,
                "complete": self.complete, "method": self.method, "lora": self.lora, "model": self.model,
                "data": self.data,
                "classes": {name: asdict(entry) for name, entry in self.classes.items()},
                "settings": self.settings, "timings": self.timings, "provenance": self.provenance}

    def write(self, directory: Path | None = None) -> Path:
        from dsc.outputs import atomic_write_json

        path = Path(directory or self.directory) / MANIFEST
        atomic_write_json(path, self.to_json())
        return path

    def file(self, name: str) -> Path:
        return self.directory / self.classes[name].file

    @property
    def lora_path(self) -> Path | None:
        """The LoRA file the manifest names (``--method lora|ti+lora``), else None."""
        return self.directory / str(self.lora.get("file", "")) if self.lora else None

    def check_lora(self) -> None:
        """The LoRA file the manifest names must exist: else one error."""
        if self.lora_path is not None and not self.lora_path.is_file():
            raise InputError(f"{self.directory} has no LoRA file {self.lora_path.name}, which {MANIFEST} names",
                             hint="restore the file or rerun `dsc invert --force`")

    def has(self, name: str) -> bool:
        """Whether class ``name`` is done: it has an entry, its token file (if it has one) exists, and so
        does the LoRA file when the manifest names one."""
        entry = self.classes.get(name)
        lora_ok = self.lora_path is None or self.lora_path.is_file()
        return entry is not None and (not entry.file or self.file(name).is_file()) and lora_ok

    def require(self, class_names: list[str]) -> None:
        """Every class must have a token entry and its file: else one error listing all that are missing."""
        missing = [c for c in class_names if c not in self.classes]
        absent = [c for c in class_names if c in self.classes and self.classes[c].file and not self.file(c).is_file()]
        if missing:
            what = "class" if len(missing) == 1 else "classes"
            raise InputError(f"{self.directory} has no token for {len(missing)} {what}: {', '.join(missing)}",
                             hint="run `dsc invert` for these classes (--classes a,b and --resume on the same "
                                  "output), or pass --classes to generate only classes that have tokens")
        self.check_lora()
        if absent:
            raise InputError(f"token files missing in {self.directory} for: "
                             + ", ".join(f"{c} ({self.classes[c].file})" for c in absent),
                             hint="restore the files or rerun `dsc invert --force`")


def load_manifest(directory: Path | str) -> TokenManifest:
    """Read ``TOKENS/tokens.json``. Errors name the problem: no directory, no manifest, not a manifest."""
    directory = Path(directory)
    if not directory.exists():
        hint = "create it with `dsc invert DATA.h5 --output " + str(directory) + "`"
        partial = directory.with_name(directory.name + ".partial")
        if partial.exists():
            hint = f"{partial} holds an unfinished run: finish it with `dsc invert ... --resume`"
        raise InputError(f"token directory {directory} does not exist", hint=hint)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory", hint="pass the folder `dsc invert` wrote")
    path = directory / MANIFEST
    if not path.is_file():
        raise InputError(f"{directory} has no {MANIFEST}", hint="pass a folder written by `dsc invert`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})", hint="rerun `dsc invert --force`") from None
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{path} is not a dsc token manifest", hint="pass a folder written by `dsc invert`")
    if int(raw.get("version", 0)) > MANIFEST_VERSION:
        raise InputError(f"{path} has manifest version {raw.get('version')}, newer than this dsc supports",
                         hint="upgrade dsc")
    known = set(ClassToken.__dataclass_fields__)
    classes = {name: ClassToken(**{k: v for k, v in entry.items() if k in known})
               for name, entry in raw.get("classes", {}).items()}
    return TokenManifest(directory=directory, classes=classes, model=raw.get("model", {}),
                         data=raw.get("data", {}), settings=raw.get("settings", {}),
                         timings=raw.get("timings", {}), provenance=raw.get("provenance", {}),
                         complete=bool(raw.get("complete", True)), lora=raw.get("lora") or None)


# ------------------------------------------------------------------------------------------ installing
def add_token_vectors(components: SDComponents, token: str, vectors: torch.Tensor) -> list[int]:
    """Add ``token`` (K vectors -> ``<tok>``, ``<tok>_1`` ...) to the tokenizer and text encoder, or
    overwrite its rows if it is already there with the same K. Returns the K token ids, in order."""
    tokenizer, encoder = components.tokenizer, components.text_encoder
    names = vector_tokens(token, int(vectors.shape[0]))
    dim = components.embedding_dim
    if int(vectors.shape[-1]) != dim:
        raise MismatchError(f"token {token} has vectors of dimension {int(vectors.shape[-1])}, but the model's "
                            f"text encoder uses dimension {dim}",
                            hint="use tokens learned for this model (rerun `dsc invert` with the same --model)")
    present = [n in tokenizer.added_tokens_encoder for n in names]
    extra = f"{token}_{len(names)}" in tokenizer.added_tokens_encoder
    if any(present) and (not all(present) or extra):
        raise MismatchError(f"token {token} is already installed with a different number of vectors",
                            hint="load tokens into a freshly loaded model")
    if not any(present):
        if any(n in tokenizer.get_vocab() for n in names):
            raise MismatchError(f"token {token} collides with a word of the model's vocabulary",
                                hint="rename the class")
        tokenizer.add_tokens(names)
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = [int(i) for i in tokenizer.convert_tokens_to_ids(names)]
    weight = encoder.get_input_embeddings().weight
    with _no_grad():
        weight.data[ids] = vectors.to(device=weight.device, dtype=weight.dtype)
    return ids


def _no_grad():
    import torch

    return torch.no_grad()


def check_model(components: SDComponents, manifest: TokenManifest) -> None:
    """Refuse tokens learned for another model (different tokenizer or embedding table)."""
    want = manifest.text_fingerprint
    have = components.text_fingerprint()
    if want and want != have:
        raise MismatchError(
            f"tokens in {manifest.directory} were learned for model {manifest.model_id} "
            f"(text fingerprint {want}), not for {components.model_id} ({have})",
            hint=f"pass --model {manifest.model_id}, or rerun `dsc invert` with this model")


def install_tokens(components: SDComponents, manifest: TokenManifest, class_names: list[str]) -> dict[str, str]:
    """Install the tokens of ``class_names`` into the loaded model; return class -> token for prompts.

    The returned token is the bare ``<tok>``: put it in prompts, and expand with ``expand_prompt`` when you
    tokenize yourself (stock pipelines expand by themselves). Errors: classes without a token file
    (all listed), a manifest for another model, vectors whose dimension differs from the text encoder's.
    """
    manifest.require(class_names)
    check_model(components, manifest)
    out: dict[str, str] = {}
    for name in class_names:
        entry = manifest.classes[name]
        if not entry.file:  # --method lora: the class's words, no token to install
            out[name] = entry.token
            continue
        path = manifest.file(name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if entry.sha256 and digest != entry.sha256:
            raise MismatchError(f"{path} does not match the hash in {MANIFEST}",
                                hint="the file was changed after `dsc invert`; rerun it")
        token, vectors = read_token_file(path)
        if token != entry.token:
            raise MismatchError(f"{path} holds token {token}, the manifest says {entry.token}",
                                hint="rerun `dsc invert`")
        add_token_vectors(components, token, vectors)
        out[name] = token
    return out


def token_embeddings(components: SDComponents, token: str) -> torch.Tensor:
    """The current vectors ``[K, dim]`` of an installed token (a copy, float32, CPU)."""
    tokenizer = components.tokenizer
    names = [token]
    while f"{token}_{len(names)}" in tokenizer.added_tokens_encoder:
        names.append(f"{token}_{len(names)}")
    if token not in tokenizer.added_tokens_encoder:
        raise ModelError(f"token {token} is not installed in the model")
    ids = tokenizer.convert_tokens_to_ids(names)
    return components.text_encoder.get_input_embeddings().weight.detach()[ids].float().cpu().clone()
