"""DA-Fusion's strategy: prompts carry one learned token per class (from `dsc invert`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from dsc.contracts import AugmenterPlugin
from dsc.errors import InputError


class DaFusionAugmenter(AugmenterPlugin):
    """Image-to-image variants prompted with learned class tokens (DA-Fusion; needs --tokens from dsc invert)."""

    name = "dafusion"
    summary = "Image-to-image variants prompted with learned class tokens (DA-Fusion; needs --tokens)"
    needs_tokens = True

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.tokens: dict[str, str] = {}
        self._tokenizer: Any = None

    def prepare(self, components: Any, class_names: list[str], tokens: Path | None) -> dict[str, Any]:
        from dsc.diffusion.tokens import MANIFEST, install_tokens, load_manifest

        if tokens is None:
            raise InputError("strategy dafusion needs learned class tokens",
                             hint="pass --tokens TOKENS/ (made by `dsc invert`), or use --strategy real-guidance")
        manifest = load_manifest(tokens)
        self.tokens = install_tokens(components, manifest, class_names)  # all missing classes listed at once
        self._tokenizer = components.tokenizer
        path = Path(tokens) / MANIFEST
        return {"tokens_manifest": {"path": str(Path(tokens).resolve() / MANIFEST),
                                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                    "model": manifest.model_id, "data_fingerprint": manifest.data_fingerprint},
                "tokens": self.tokens}

    def class_phrase(self, class_name: str) -> str:
        if class_name not in self.tokens:
            raise InputError(f"no token installed for class {class_name!r}", hint="call prepare() first")
        return self.tokens[class_name]

    def encode(self, components: Any, prompts: list[str]) -> Any:
        from dsc.diffusion.generate import encode_prompts
        from dsc.diffusion.tokens import expand_prompt

        # multi-vector tokens are rewritten into all K tokens, exactly as stock diffusers pipelines do
        expanded = [expand_prompt(p, components.tokenizer) for p in prompts]
        return encode_prompts(components.tokenizer, components.text_encoder, expanded)
