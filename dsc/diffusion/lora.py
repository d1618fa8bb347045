"""LoRA personalization for ``dsc invert --method lora|ti+lora`` (docs/commands/invert.md, "Methods").

``lora``: one DreamBooth-style LoRA (peft, the library diffusers uses) on the UNet's attention projections,
trained on the train images of all classes, each prompted with its class's words ("a photo of a brake
caliper"). ``ti+lora``: the same LoRA trained together with one token per class (Diff-Mix's recipe); the
prompts carry the tokens. Prior preservation (off by default) adds class images of the frozen model to every
micro-batch (dsc/diffusion/prior.py). The job around it is dsc/diffusion/lora_job.py.

* Only the LoRA's matrices (and, with ``ti+lora``, the token vectors, spliced in exactly as
  dsc/diffusion/inversion.py does) get gradients; every weight of the UNet, text encoder and VAE stays
  bit-identical. LoRA matrices are float32 whatever the model's dtype (diffusers' ``cast_training_params``).
* The LoRA's start (A gaussian with std 1/rank, B zero: peft's ``"gaussian"`` init) and every batch, template,
  latent sample, noise and timestep come from generators seeded from ``seed``: same seed, same LoRA (CPU).
* A checkpoint (trainable tensors, optimizer, the batch generator and its epoch order) is written every
  ``CHECKPOINT_EVERY`` steps into ``TOKENS.partial/checkpoints/``; ``--resume`` continues from it and ends
  where an uninterrupted run ends.
* Several processes (``accelerate launch`` / ``torchrun``) train it data-parallel: every process draws the
  same global micro-batch from the same generator and computes the loss of its share (rows ``rank::world``),
  weighted by its share of the batch; gradients and the loss are summed over the processes before each
  optimizer step, so every process holds the same LoRA and the result is the one-process result up to float
  rounding. The main process writes checkpoints and outputs.
* The file is diffusers' own: ``StableDiffusionPipeline.save_lora_weights`` (with the adapter's config as
  metadata, so a stock ``load_lora_weights(TOKENS/)`` rebuilds the same rank and alpha), its header then
  written in a fixed order (safetensors orders metadata at random, so bytes and sha256 would vary).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsc.diffusion import inversion
from dsc.errors import MismatchError

if TYPE_CHECKING:
    import torch

    from dsc.diffusion.models import SDComponents
    from dsc.diffusion.tokens import TokenManifest
    from dsc.settings import InvertSettings

LORA_FILE = "pytorch_lora_weights.safetensors"
CHECKPOINT = "lora"
#: Optimizer steps between two checkpoints (a checkpoint is small: the LoRA and its Adam moments).
CHECKPOINT_EVERY = 100


def alpha(settings: InvertSettings) -> float:
    """The LoRA's alpha (its output is scaled by alpha / rank): ``lora_alpha``, else the rank."""
    return float(settings.lora_alpha if settings.lora_alpha is not None else settings.lora_rank)


def inject(components: SDComponents, settings: InvertSettings) -> dict[str, torch.nn.Parameter]:
    """Add the LoRA to the UNet (``unet.add_adapter``), its A seeded from ``seed``, B zero, both float32 and
    trainable; return its parameters by name (sorted). Refuses a UNet that already has one."""
    import torch
    from peft import LoraConfig

    unet = components.unet
    if getattr(unet, "peft_config", None):
        raise MismatchError("this model already has a LoRA", hint="load a fresh model to train another")
    from dsc.diffusion.lora_options import check_targets

    check_targets(unet, settings.lora_targets)
    config = LoraConfig(r=settings.lora_rank, lora_alpha=alpha(settings), init_lora_weights="gaussian",
                        target_modules=list(settings.lora_targets))
    unet.add_adapter(config)
    params = dict(sorted((n, p) for n, p in unet.named_parameters() if ".lora_" in n))
    generator = torch.Generator().manual_seed(int(settings.seed) * 1_000_003 + 7)
    with torch.no_grad():
        for name, p in params.items():
            p.data = p.data.float()
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=generator) / settings.lora_rank)
            else:
                p.zero_()
            p.requires_grad_(True)
    return params


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its header in a fixed order (the metadata keys sorted)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def save_lora(folder: Path, components: SDComponents) -> str:
    """Write the UNet's LoRA to ``folder/pytorch_lora_weights.safetensors`` with diffusers' own writer (a temp
    folder, then renamed); return the file's sha256."""
    import shutil
    import tempfile

    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    from dsc.diffusion.models import quiet_loading
    from dsc.outputs import atomic_write_bytes

    unet = components.unet
    layers = {k: v.detach().float().cpu().contiguous()
              for k, v in convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)).items()}
    meta = {k: sorted(v) if isinstance(v, set) else v for k, v in unet.peft_config["default"].to_dict().items()}
    tmp = Path(tempfile.mkdtemp(prefix=".lora-", dir=folder))
    try:
        with quiet_loading():
            StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=layers, unet_lora_adapter_metadata=meta,
                                                      weight_name=LORA_FILE, safe_serialization=True)
        data = canonical_safetensors((tmp / LORA_FILE).read_bytes())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_bytes(Path(folder) / LORA_FILE, data)
    return hashlib.sha256(data).hexdigest()


def install_lora(components: SDComponents, manifest: TokenManifest) -> dict[str, Any] | None:
    """Load the manifest's LoRA (if it has one) into the model with the stock ``load_lora_weights``, after
    checking its hash; return what provenance records (path, sha256, rank, alpha, targets), else ``None``."""
    entry, path = manifest.lora, manifest.lora_path
    if not entry or path is None:
        return None
    manifest.check_lora()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if entry.get("sha256") and digest != entry["sha256"]:
        raise MismatchError(f"{path} does not match the hash in tokens.json",
                            hint="the file was changed after `dsc invert`; rerun it")
    if getattr(components.unet, "peft_config", None):
        raise MismatchError("this model already has a LoRA loaded", hint="load a fresh model for these tokens")
    from dsc.diffusion.models import quiet_loading

    with quiet_loading():
        components.pipeline().load_lora_weights(str(manifest.directory), weight_name=path.name)
    return {"path": str(path.resolve()), "sha256": digest, "rank": entry.get("rank"), "alpha": entry.get("alpha"),
            "targets": entry.get("targets")}


# ------------------------------------------------------------------------------------------- training
@dataclass
class JointBatchSource(inversion.ClassBatchSource):
    """Micro-batches over the images of every class: ``prompt_ids`` is [C, T, L] (class, template) and
    ``labels`` gives each image's class."""

    labels: torch.Tensor | None = None

    @property
    def n_templates(self) -> int:
        return int(self.prompt_ids.shape[1])

    def prompts(self, idx: list[int], templ: torch.Tensor) -> torch.Tensor:
        """Each drawn image prompted as its own class (the same draws, in the same order, as per class)."""
        assert self.labels is not None
        return self.prompt_ids[self.labels[idx], templ]

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the generator: the rest of the current epoch's order."""
        return {"order": list(self._order)}

    def restore(self, state: dict[str, Any]) -> None:
        self._order = [int(i) for i in state.get("order", [])]


class JointTrainer:
    """One AdamW over the LoRA (``lora_lr``, never scaled) and, with tokens, their vectors (``lr``, scaled as
    textual inversion scales it); the same linear warm-up for both; a gradient scaler on CUDA float16."""

    def __init__(self, components: SDComponents, settings: InvertSettings, lora: dict[str, torch.nn.Parameter],
                 tokens: inversion.TokenTrainer | None) -> None:
        import torch
        from diffusers import DDPMScheduler

        self.c, self.settings, self.tokens = components, settings, tokens
        self.noise_scheduler = DDPMScheduler.from_config(components.scheduler.config)
        groups: list[dict[str, Any]] = [{"params": list(lora.values()), "lr": settings.lora_lr}]
        if tokens is not None:
            groups.append({"params": [tokens.vectors], "lr": inversion.learning_rate(settings)})
        self.base_lrs = [g["lr"] for g in groups]
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        self.updates = 0
        use_scaler = components.device.type == "cuda" and components.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        holder = torch.nn.Module()
        for i, p in enumerate([*lora.values(), *([tokens.vectors] if tokens is not None else [])]):
            holder.register_parameter(f"p{i}", p)
        self.holder = holder  # what a checkpoint saves and loads (the same tensors)

    def loss(self, latents: torch.Tensor, input_ids: torch.Tensor, noise: torch.Tensor,
             timesteps: torch.Tensor) -> torch.Tensor:
        return inversion.denoising_loss(self.c, self.noise_scheduler, latents, input_ids, noise, timesteps)

    def backward(self, loss: torch.Tensor, accumulation: int) -> None:
        inversion.scaled_backward(loss, accumulation, self.scaler)

    def reduce(self, total: float) -> float:
        """Sum every trainable gradient and this process's share of the loss over the processes (no-op in one
        process); the step's loss."""
        from dsc import parallel

        if not parallel.distributed():
            return total
        import torch
        import torch.distributed as dist

        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        device = params[0].device
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in params] + [torch.tensor([total], device=device)])
        dist.all_reduce(flat)
        at = 0
        for p in params:
            n = p.numel()
            p.grad = flat[at:at + n].view_as(p).to(p.dtype)
            at += n
        return float(flat[-1])

    def update(self) -> None:
        self.updates += 1
        inversion.warmed_step(self.optimizer, self.scaler, self.base_lrs, self.updates, self.settings.lr_warmup)

    # ----------------------------------------------------------------------------------- checkpoints
    def save(self, work: Path, step: int, losses: list[float], source: JointBatchSource, plan: list[str],
             prior: JointBatchSource | None = None) -> None:
        from dsc.train.checkpoint import save_checkpoint

        state = {"step": step, "losses": losses, "classes": plan, **source.state(),
                 "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        rng = {"batches": source.generator}
        if prior is not None:
            state["prior_order"], rng["prior"] = prior.state()["order"], prior.generator
        save_checkpoint(work, CHECKPOINT, {"trainable": self.holder}, state, optimizer=self.optimizer, rng=rng)

    def restore(self, work: Path, source: JointBatchSource, plan: list[str], prior: JointBatchSource | None = None
                ) -> tuple[int, list[float]]:
        """Continue from the checkpoint in ``work`` if there is one: (steps done, their losses)."""
        from dsc.train.checkpoint import has_checkpoint, load_checkpoint, read_checkpoint_info

        if not has_checkpoint(work, CHECKPOINT):
            return 0, []
        recorded = read_checkpoint_info(work, CHECKPOINT).get("classes")
        if recorded != plan:
            raise MismatchError(f"cannot resume {work}: its LoRA was trained on the classes {recorded}, not {plan}",
                                hint="resume with the same --classes, or pass --force to start over")
        info = load_checkpoint(work, CHECKPOINT, {"trainable": self.holder}, optimizer=self.optimizer)
        source.generator.set_state(info["rng_states"]["batches"])
        source.restore(info)
        if prior is not None:
            prior.generator.set_state(info["rng_states"]["prior"])
            prior.restore({"order": info.get("prior_order", [])})
        if self.scaler is not None and info.get("scaler"):
            self.scaler.load_state_dict(info["scaler"])
        self.updates = int(info["step"])
        return int(info["step"]), [float(x) for x in info.get("losses", [])]


@dataclass
class JointResult:
    """What ``train_joint`` returns: each class's token vectors (``ti+lora``; empty for ``lora``), the loss of
    every optimizer step, and the step a resumed run started from."""

    vectors: dict[str, torch.Tensor]
    losses: list[float]
    resumed_from: int


def class_words(name: str) -> str:
    """What ``lora`` prompts carry for a class: its name in words (``brake_caliper`` -> ``brake caliper``)."""
    return inversion.initializer_text("class-name", name)


def _token_trainer(components: SDComponents, jobs: list[inversion.ClassJob], settings: InvertSettings
                   ) -> inversion.TokenTrainer:
    """``ti+lora``: every class's token installed and spliced by one trainer (its vectors: [C * K, dim])."""
    import torch

    from dsc.diffusion import tokens as T

    inits, ids = [], []
    for job in jobs:
        text = inversion.initializer_text(settings.initializer, job.name)
        inits.append(inversion.initial_vectors(components, text, settings.num_vectors))
        ids += T.add_token_vectors(components, job.token, inits[-1])
    return inversion.TokenTrainer(components, ids, torch.cat(inits), lr=inversion.learning_rate(settings))


def _source(components: SDComponents, jobs: list[inversion.ClassJob], latents: list[tuple[Any, Any]],
            settings: InvertSettings, trainer: JointTrainer, *, prior: bool = False) -> JointBatchSource:
    """The batches of the real images (prompts with the tokens for ``ti+lora``), or with ``prior`` of the prior
    images (prompts with the class words, their own generator)."""
    import torch

    from dsc.diffusion.templates import templates

    words = [job.token if trainer.tokens is not None and not prior else class_words(job.name) for job in jobs]
    prompts = torch.stack([inversion.prompt_ids(components, w, templates(settings.templates)) for w in words])
    labels = torch.cat([torch.full((m.shape[0],), i, dtype=torch.long) for i, (m, _) in enumerate(latents)])
    generator = torch.Generator().manual_seed(int(settings.seed) * 1_000_003 + (999_979 if prior else 999_983))
    return JointBatchSource(torch.cat([m for m, _ in latents]), torch.cat([s for _, s in latents]), prompts,
                            generator, float(getattr(components.vae.config, "scaling_factor", 0.18215)),
                            int(trainer.noise_scheduler.config.num_train_timesteps), labels=labels)


def _rows_loss(trainer: JointTrainer, source: JointBatchSource, batch_size: int) -> torch.Tensor:
    """The loss of this process's rows (``rank::world``) of one global micro-batch drawn from ``source``,
    weighted by their share of the batch (summed over the processes: the whole batch's mean loss)."""
    from dsc import parallel

    world, rank = parallel.world_size(), parallel.rank()
    idx, input_ids, eps, noise, timesteps = source.draw(batch_size)
    share = len(idx[rank::world]) / len(idx)
    return trainer.loss(source.latents(idx[rank::world], eps[rank::world]), input_ids[rank::world],
                        noise[rank::world], timesteps[rank::world]) * share


def train_joint(components: SDComponents, jobs: list[inversion.ClassJob], latents: list[tuple[Any, Any]],
                settings: InvertSettings, work: Path, *, on_step: Any = None,
                prior: list[tuple[Any, Any]] | None = None) -> JointResult:
    """Train the LoRA (and with ``ti+lora`` the tokens) on every class's cached latents (``latents[i]``: the
    (mean, std) of ``jobs[i]``), continuing a checkpoint in ``work``; with ``prior`` (the class images'
    latents, dsc/diffusion/prior.py) each micro-batch adds as many of them, weighted by ``prior_weight``. The
    LoRA stays in the UNet (frozen afterwards) and the tokens stay installed with their learned vectors."""
    from dsc import parallel
    from dsc.diffusion import tokens as T
    from dsc.errors import ResourceError

    lora = inject(components, settings)
    tokens = _token_trainer(components, jobs, settings) if settings.method == "ti+lora" else None
    trainer = JointTrainer(components, settings, lora, tokens)
    source = _source(components, jobs, latents, settings, trainer)
    class_source = _source(components, jobs, prior, settings, trainer, prior=True) if prior else None
    plan = [j.name for j in jobs]
    start, losses = trainer.restore(work, source, plan, class_source)
    accumulation = settings.gradient_accumulation
    try:
        for step in range(start, settings.steps):
            total = 0.0
            for _ in range(accumulation):
                loss = _rows_loss(trainer, source, settings.batch_size)  # every process draws the global batch
                if class_source is not None:
                    loss = loss + settings.prior_weight * _rows_loss(trainer, class_source, settings.batch_size)
                trainer.backward(loss, accumulation)
                total += float(loss.detach())
            total = trainer.reduce(total)
            trainer.update()
            losses.append(round(total / accumulation, 6))
            if losses[-1] != losses[-1] or abs(losses[-1]) == float("inf"):
                raise ResourceError(f"the LoRA's loss became {losses[-1]}",
                                    hint="lower --lora-lr (and --lr), or use --dtype float32 / bfloat16")
            if (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < settings.steps and parallel.is_main():
                trainer.save(work, step + 1, losses, source, plan, class_source)
            if on_step is not None:
                on_step(losses[-1])
    finally:
        if tokens is not None:
            tokens.close()
    for p in lora.values():
        p.requires_grad_(False)
    vectors: dict[str, Any] = {}
    if tokens is not None:
        learned = tokens.vectors.detach().float().cpu().split(settings.num_vectors)
        for job, v in zip(jobs, learned, strict=True):
            vectors[job.name] = v.clone()
            T.add_token_vectors(components, job.token, v)
    return JointResult(vectors, losses, start)
