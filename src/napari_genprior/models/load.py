"""Every checkpoint loader: GAN priors (and their discriminators), GLEAN models and IRN networks.

One place for reading weights, so that engines, training and the shells share one behaviour:
``torch.load(weights_only=True)``, float32 modules in eval mode, and a one-line error that says
what is wrong and what to do (:class:`~napari_genprior.errors.InputError`, or ``ValueError`` /
``FileNotFoundError`` where the callers turn it into their own message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..nets.glean import GLEAN
from ..nets.irn import InvRescaleNet
from ..nets.stylegan2 import Discriminator, Generator, build_discriminator, discriminator_config
from . import list_models, weights_path

__all__ = [
    "BUNDLE_FORMAT",
    "CKPT_FORMAT",
    "bank_fingerprint",
    "bundled_glean",
    "bundled_priors",
    "load_component_prior",
    "load_glean",
    "load_irn",
    "load_prior",
    "recommended_tau",
]


# GAN priors


def bundled_priors() -> list[str]:
    """Names of the bundled GAN priors (cards with ``"task": "gan-prior"`` and weights present)."""
    return [m["name"] for m in list_models() if m.get("task") == "gan-prior"]


def load_prior(name_or_path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """A generator in eval mode, float32, from a bundled prior's name or a checkpoint path.

    Accepted files: a bundle (``{"model": state, "config": …}``), a training checkpoint of
    ``napari-genprior train gan`` or a ``stylegan2-pytorch`` (rosinality) checkpoint — both hold
    ``g_ema`` — or a bare generator state dict. Loaded with ``torch.load(weights_only=True)``.
    """
    path = weights_path(str(name_or_path)) if "/" not in str(name_or_path) else None
    if path is None:
        path = Path(name_or_path)
        if not path.is_file():
            names = ", ".join(bundled_priors()) or "none bundled"
            raise FileNotFoundError(
                f"{name_or_path!r} is neither a bundled prior ({names}) nor a checkpoint file"
            )
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - say which file and what to do
        hint = (
            " It holds Python objects (stylegan2-pytorch training checkpoints store 'args'); if you trust "
            "the file, keep only the generator: torch.save({'g_ema': torch.load(p, weights_only=False)"
            "['g_ema']}, 'generator.pt')"
            if "weights_only" in str(err) or "Unsupported global" in str(err)
            else ""
        )
        raise ValueError(f"{path} is not a loadable checkpoint ({str(err).splitlines()[0]}).{hint}") from None
    state = ck.get("model", ck) if isinstance(ck, dict) else None
    if not isinstance(state, dict) or not ("g_ema" in state or "style.1.weight" in state):
        raise ValueError(f"{path} holds no StyleGAN2 generator (expected 'g_ema' or a generator state dict)")
    if "g_ema" in state:
        state = state["g_ema"]
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Generator.from_state_dict(state).to(device).eval()


def load_component_prior(name_or_path: str, component: str) -> tuple[Generator, Discriminator | None, str]:
    """``(generator, discriminator or None, label)`` of a bundled prior or a checkpoint file;
    anything else raises :class:`InputError` naming the component."""
    label = str(name_or_path)
    path = weights_path(label) if "/" not in label and not label.endswith(".pt") else None
    path = path or Path(label)
    if not path.is_file():
        raise InputError(
            f"prior {label!r} for {component} is neither a bundled prior ({', '.join(bundled_priors())}) "
            "nor an existing file: train one with `napari-genprior train gan`"
        )
    try:
        gen = load_prior(path)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        raise InputError(f"prior {label!r} for {component} is not a generator: {err}") from None
    disc = None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(ck, dict) and "discriminator" in ck:
            disc = build_discriminator(ck["discriminator_config"])
            disc.load_state_dict({k: v.float() for k, v in ck["discriminator"].items()})
            disc.eval().requires_grad_(False)
        elif (
            isinstance(ck, dict) and isinstance(ck.get("d"), dict) and "config" in ck
        ):  # a train gan checkpoint
            disc = build_discriminator(discriminator_config(ck["config"], int(ck["channels"])))
            disc.load_state_dict(ck["d"])
            disc.eval().requires_grad_(False)
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(f"the discriminator stored with {label!r} does not load: {err}") from None
    return gen.requires_grad_(False), disc, label


# GLEAN


CKPT_FORMAT = "napari-genprior-glean-checkpoint"

BUNDLE_FORMAT = "napari-genprior-glean"


def bundled_glean() -> list[str]:
    """Names of the bundled GLEAN models (cards with ``"task": "glean"`` and weights present)."""
    return [m["name"] for m in list_models() if m.get("task") == "glean"]


def bank_fingerprint(bank: Generator) -> float:
    """A number that changes when the bank's weights do (sum of |w| over the synthesis layers)."""
    mods = [bank.input, bank.conv1, bank.convs]
    return float(sum(p.detach().double().abs().sum() for m in mods for p in m.parameters()))


def load_glean(name_or_path: str | Path, device: str | torch.device = "cpu") -> tuple[GLEAN, dict[str, Any]]:
    """A GLEAN net in eval mode (float32) and its info (``model``, ``scale``, ``in_size``,
    ``channels``, ``bank``, ``steps``) from a bundled model's name, a bundle of :func:`export_glean`
    or a checkpoint of :func:`train_glean`. Anything else raises :class:`InputError` saying why."""
    label = str(name_or_path)
    is_name = "/" not in label and "\\" not in label and not label.endswith(".pt")
    path = weights_path(label) if is_name else Path(label)
    if path is None or not path.is_file():
        names = ", ".join(bundled_glean()) or "none bundled yet"
        what = f"unknown model {label!r}" if is_name else f"model file {label} does not exist"
        raise InputError(
            f"{what}: give a bundled GLEAN model ({names}) or the path of a file made by "
            "`napari-genprior train glean` (or its export)"
        )
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise InputError(
            f"{path} is not a GLEAN model: not a readable torch file ({str(err).splitlines()[0]})"
        ) from None
    if not isinstance(ck, dict) or ck.get("format") not in (BUNDLE_FORMAT, CKPT_FORMAT) or "glean" not in ck:
        raise InputError(
            f"{path} is not a GLEAN model (no GLEAN settings in it): give a file made by "
            "`napari-genprior train glean` or its export"
        )
    gcfg, bank_ref = ck["glean"], ck.get("bank") or ck["config"]["bank"]
    if "bank_state" in ck:
        bank = Generator.from_state_dict({k: v.float() for k, v in ck["bank_state"].items()}).eval()
    else:
        ref = bank_ref
        if not weights_path(str(ref)) and not Path(ref).is_absolute():
            ref = path.parent / ref  # a bank file named relative to the model
        try:
            bank = load_prior(ref)
        except (FileNotFoundError, ValueError) as err:
            raise InputError(f"the latent bank {bank_ref!r} of {path.name} is not available: {err}") from None
    fp = ck.get("bank_fingerprint")
    if (
        fp
        and not gcfg["no_bank"]
        and gcfg["bank_frozen"]
        and abs(bank_fingerprint(bank) - fp) > 1e-3 * abs(fp)
    ):
        raise InputError(f"the latent bank {bank_ref!r} differs from the one {path.name} was trained with")
    try:
        net = GLEAN(
            bank,
            int(gcfg["in_size"]),
            int(gcfg["scale"]),
            int(gcfg["rrdb_blocks"]),
            int(gcfg["width"]),
            bank_frozen=bool(gcfg["bank_frozen"]),
            no_bank=bool(gcfg["no_bank"]),
            centred_latents=bool(gcfg.get("centred_latents", False)),
            residual_fusion=bool(gcfg.get("residual_fusion", False)),
        )
        net.load_trainable_state_dict({k: v.float() for k, v in ck["model"].items()})
    except (RuntimeError, ValueError, KeyError) as err:
        raise InputError(f"{path} does not load as a GLEAN model: {str(err).splitlines()[0]}") from None
    info = {
        "model": label,
        "scale": net.scale,
        "in_size": net.in_size,
        "channels": net.image_channels,
        "bank": str(bank_ref),
        "no_bank": net.no_bank,
        "steps": int(ck.get("step", 0)),
    }
    return net.to(device).eval(), info


# IRN


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "netG.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def recommended_tau(weights: str | Path) -> float:
    """The ``recommended_tau`` of the model card beside ``weights`` (``NAME.json``), else 1."""
    try:
        return float(json.loads(Path(weights).with_suffix(".json").read_text()).get("recommended_tau", 1.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1.0


def load_irn(path: str | Path) -> tuple[InvRescaleNet, dict[str, Any]]:
    """A checkpoint → ``(network in eval mode, info)``.

    Accepts the checkpoints of ``napari-genprior train irn`` and the bundled models (a dict with
    ``model`` and ``config``) and plain state dicts in the official ``InvRescaleNet`` key layout
    (``operations.{i}.haar_weights``, ``operations.{i}.{F,G,H}.conv{1..5}``, optionally under a
    ``module.`` prefix). The architecture (channels, levels, blocks, growth) is read from the keys.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"weights file {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise InputError(f"cannot read {path} as a torch checkpoint ({err})") from None
    info: dict[str, Any] = {"weights": str(path), "recommended_tau": recommended_tau(path)}
    if isinstance(ck, dict) and isinstance(ck.get("model"), dict):
        info["config"] = ck.get("config")
        ck = ck["model"]
    if not isinstance(ck, dict) or not ck:
        raise InputError(f"{path} holds no state dict")
    sd = _strip_prefix({k: v for k, v in ck.items() if isinstance(v, torch.Tensor)})
    haar = sorted(
        int(k.split(".")[1]) for k in sd if k.startswith("operations.") and k.endswith(".haar_weights")
    )
    if not haar or "operations.1.F.conv1.weight" not in sd:
        raise InputError(
            f"{path} is not an IRN checkpoint: expected keys like operations.0.haar_weights and "
            "operations.1.F.conv1.weight (the official InvRescaleNet layout)"
        )
    channels = sd[f"operations.{haar[0]}.haar_weights"].shape[0] // 4
    levels = len(haar)
    n_ops = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("operations."))
    blocks = (n_ops - levels) // levels
    growth = sd["operations.1.F.conv1.weight"].shape[0]
    net = InvRescaleNet(channels, levels, blocks, growth)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise InputError(f"{path} does not match an IRN network ({str(err).splitlines()[0]})") from None
    info.update(channels=channels, scale=2**levels, blocks=blocks, growth=growth)
    return net.eval(), info
