"""JoIN's stage 2, generator fine-tuning (PTI): the stage-1 latents are the pivots, the synthesis
weights are fine-tuned around them and kept near each prior by its frozen discriminator."""

from __future__ import annotations

import copy
from collections.abc import Callable
from collections.abc import Generator as Gen

import numpy as np
import torch
import torch.nn.functional as F

from ...nets.stylegan2 import Generator
from ..base import Progress, autocast, check_cancel
from .losses import _distance, projector_lr
from .params import PRECISION_NEEDS
from .stage1 import JointSolver


def _finetune(
    solver: JointSolver, cancel: Callable[[], bool] | None
) -> Gen[Progress, None, tuple[dict[str, Generator], dict[str, torch.Tensor]]]:
    """Stage 2 on a solved ``solver`` (its latents are the pivots): fine-tune copies of the
    generators' synthesis weights around the frozen pivots. A smooth component in ``latent`` mode
    keeps its prior's weights and goes on moving its latent (with its in-domain penalty) instead.
    Yields a :class:`Progress` per step; returns (generators, latents ``(1, count, L, D)``)."""
    p, model, slots, dev = solver.p, solver.model, solver.slots, solver.dev
    gens, lat, extra = solver.gens, solver.lat, solver.extra
    target, n_tiles = solver.prob.target, solver.n_tiles
    mode = p.stage2_smooth_of(model)
    tuned_keys = [k for k in gens if mode == "weights" or not slots[k].comp.smooth]
    moved = [k for k in gens if mode == "latent" and slots[k].comp.smooth]
    tuned = {k: copy.deepcopy(g) if k in tuned_keys else g for k, g in gens.items()}
    lat = {k: v.clone().requires_grad_(True) if k in moved else v for k, v in lat.items()}
    params_ = []
    for k in tuned_keys:
        for name, t in tuned[k].named_parameters():
            t.requires_grad_(not name.startswith("style."))  # the mapping network stays the prior's
            if t.requires_grad:
                params_.append(t)
    groups = [{"params": params_}]
    if moved:
        groups.append({"params": [lat[k] for k in moved], "lr": p.lr})
    opt = torch.optim.Adam(groups, lr=p.finetune_lr, betas=(0.9, 0.999))
    rng = np.random.default_rng(p.seed + 1)
    for step in range(1, int(p.finetune_steps) + 1):
        check_cancel(cancel)
        if moved:  # the moving latent gets stage 1's ramp, so it settles by the end
            opt.param_groups[1]["lr"] = projector_lr((step - 1) / p.finetune_steps, p.lr)
        with autocast(p.precision, dev, needs=PRECISION_NEEDS):
            recon, _, raw = solver.decode(tuned, lat, extra, 1)
        recon = recon.float()
        rec = _distance(recon, target, p.distance).sum()
        loss = rec
        # stage 2's data term sums over tiles (stage 1's is the mean): the same balance needs × n_tiles
        loss = loss + n_tiles * solver.in_domain_loss(lat, moved)
        if p.adversarial > 0:
            for k in tuned_keys:
                s, g = slots[k], tuned[k]
                piv = lat[k].reshape(-1, *lat[k].shape[2:])
                piv = piv.expand(-1, g.n_latent, -1) if piv.shape[1] == 1 else piv
                with autocast(p.precision, dev, needs=PRECISION_NEEDS):
                    d_piv = s.disc(raw[k])
                adv = F.softplus(-d_piv.float()).mean()
                if p.support > 0:
                    idx = torch.from_numpy(rng.integers(0, piv.shape[0], int(p.support)))
                    z = torch.from_numpy(rng.standard_normal((int(p.support), g.style_dim))).float().to(dev)
                    with torch.no_grad():
                        wz = g.mapping(z)[:, None]
                    sup = 0.9 * piv[idx] + 0.1 * wz
                    with autocast(p.precision, dev, needs=PRECISION_NEEDS):
                        d_sup = s.disc(g(w_plus=sup))
                    adv = adv + F.softplus(-d_sup.float()).mean()
                loss = loss + p.adversarial * adv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        show = p.preview_every and (step % p.preview_every == 0 or step == p.finetune_steps)
        yield Progress(
            int(p.steps) + step,
            solver.total,
            float(rec.detach()) / n_tiles,
            solver.preview(recon) if show else None,
            "stage 2: fine-tuning",
            loss_label="distance",
        )
    for k in tuned_keys:
        tuned[k].requires_grad_(False).eval()
    return tuned, {k: v.detach() for k, v in lat.items()}
