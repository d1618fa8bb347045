"""DA-Fusion's strategy: prompts carry one learned token per class (from `dsc invert`); when TOKENS/ also holds
a LoRA (`dsc invert --method lora|ti+lora`), ``prepare`` loads it into the UNet with the stock diffusers loader.

The learned tokens are an option of this family (``DaFusionOptions.tokens``, ``--tokens`` on the command
line), not of the generic augmenter contract: a strategy built on learned tokens subclasses these two.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from dsc.contracts import AugmenterPlugin, PluginOptions, SDComponents
from dsc.errors import InputError


class DaFusionOptions(PluginOptions):
    """Options of the DA-Fusion family: ``tokens``, the ``TOKENS/`` folder made by `dsc invert`."""

    tokens: Path | None = None


class DaFusionAugmenter(AugmenterPlugin):
    """Image-to-image variants prompted with learned class tokens (DA-Fusion; needs --tokens from dsc invert)."""

    name = "dafusion"
    summary = "Image-to-image variants prompted with learned class tokens (DA-Fusion; needs --tokens)"
    Options = DaFusionOptions
    options: DaFusionOptions

    def __init__(self, options: DaFusionOptions | None = None) -> None:
        super().__init__(options)
        self.tokens: dict[str, str] = {}

    def _folder(self) -> Path:
        if self.options.tokens is None:
            raise InputError(f"strategy {self.name} needs learned class tokens",
                             hint="pass --tokens TOKENS/ (made by `dsc invert`), or use --strategy real-guidance")
        return Path(self.options.tokens)

    def check(self, class_names: list[str]) -> None:
        """No ``--tokens``, an unreadable manifest or a class without a token file: refused before the model
        loads, every missing class named at once."""
        from dsc.diffusion.tokens import load_manifest

        load_manifest(self._folder()).require(class_names)

    def prepare(self, components: SDComponents, class_names: list[str]) -> dict[str, Any]:
        from dsc.diffusion.lora import install_lora
        from dsc.diffusion.tokens import MANIFEST, install_tokens, load_manifest

        tokens = self._folder()
        manifest = load_manifest(tokens)
        self.tokens = install_tokens(components, manifest, class_names)  # all missing classes listed at once
        lora = install_lora(components, manifest)  # `dsc invert --method lora|ti+lora`: the stock loader
        path = tokens / MANIFEST
        return {"tokens_manifest": {"path": str(tokens.resolve() / MANIFEST),
                                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                    "model": manifest.model_id, "data_fingerprint": manifest.data_fingerprint,
                                    "method": manifest.method, "lora": lora},
                "tokens": self.tokens}

    def class_phrase(self, class_name: str) -> str:
        if class_name not in self.tokens:
            raise InputError(f"no token installed for class {class_name!r}", hint="call prepare() first")
        return self.tokens[class_name]

    def encode(self, components: SDComponents, prompts: list[str]) -> Any:
        from dsc.diffusion.generate import encode_prompts
        from dsc.diffusion.tokens import expand_prompt

        # multi-vector tokens are rewritten into all K tokens, exactly as stock diffusers pipelines do
        expanded = [expand_prompt(p, components.tokenizer) for p in prompts]
        return encode_prompts(components.tokenizer, components.text_encoder, expanded)
