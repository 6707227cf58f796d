"""JoIN's stage 1, the joint latent optimisation, as a solver object: the latents, extra parameters
and noise maps of every restart, how they decode into the working tiles, and the loop that runs
all restarts side by side for the probe and then the best one alone."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Generator as Gen
from typing import Any

import numpy as np
import torch

from ...nets.stylegan2 import Generator
from ..base import Progress, autocast, check_cancel
from ..tiling import TileBlender
from .latents import InDomainLoss, init_latents, init_noises
from .losses import _distance, _noise_reg, projector_lr
from .params import PRECISION_NEEDS
from .plan import Problem, _resize


class JointSolver:
    """The state of one solve of ``prob``: ``lat`` ``{slot: (R, count, L, D)}`` (count = tiles for
    a local prior, groups for a smooth one), ``extra`` (the model's non-GAN parameters, ``(R, …)``
    per name), ``noises`` (per-layer noise maps of priors that use them), ``gens`` (the generators
    that decode them; stage 2 swaps in fine-tuned copies) and ``losses`` (what stage 1 measured;
    ``stage2`` is filled in after stage 2). ``R`` is the number of restarts until :meth:`solve`
    keeps the best one."""

    def __init__(self, prob: Problem) -> None:
        p, model, slots, dev = prob.p, prob.model, prob.slots, prob.dev
        self.prob, self.p, self.model, self.slots, self.dev = prob, p, model, slots, dev
        self.n_tiles, self.n_groups, self.tile_group = prob.n_tiles, prob.n_groups, prob.tile_group
        self.channels = prob.lin_full.shape[1]
        self.total = int(p.steps) + int(p.finetune_steps)
        self.restarts = int(p.restarts)
        # latents: (R, count, n_latent, D) per slot; count = tiles (local) or groups (smooth)
        counts = {k: (self.n_groups if s.comp.smooth else self.n_tiles) for k, s in slots.items()}
        gen_rng = np.random.default_rng(p.seed)
        self.lat, w_means, whiten = init_latents(
            slots, counts, self.restarts, p, p.metric_of(model), gen_rng, dev
        )
        extra0 = model.init_extra(self.n_groups, prob.work)
        self.extra = {
            k: v[None].repeat(self.restarts, *([1] * v.ndim)).to(dev).requires_grad_(True)
            for k, v in extra0.items()
        }
        self.noises = init_noises(slots, counts, self.restarts, dev)
        self.gens: dict[str, Generator] = {k: s.gen for k, s in slots.items()}
        # the stack term only where the tiles leave some of the stack unsolved: then the mean plane
        # brings the planes the tiles miss; with every tile solved it only repeats the data, blurred
        # and biased (no offset, specimen left in the mean), and measured worse than the tiles alone
        # (docs/join.md)
        partial = self.n_tiles < len(prob.groups) * len(prob.plan)
        stats = model.group_stats(prob.lin_full, prob.groups) if p.stack_weight > 0 and partial else None
        if stats is not None and not bool(stats["valid"].any()):
            prob.warnings.append(
                "the planes show the same content (a time-lapse or z-stack of one field of view?), so their "
                "mean is no estimate of the field: the stack term is off, the field comes from the tiles alone"
            )
            stats = None
        self.stats = stats
        self.in_domain_loss = InDomainLoss(
            p.in_domain_of(model, stacked=stats is not None), w_means, whiten, dev
        )
        self.losses: dict[str, Any] = {}

    def decode(
        self, gens: dict[str, Generator], lat: dict[str, torch.Tensor], ex: dict[str, torch.Tensor], r: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The reconstruction ``(r·T, C, P, P)`` of ``r`` restarts' latents ``lat`` and extra
        parameters ``ex`` through ``gens`` (with the current noise maps), the working components
        and the raw generator outputs."""
        prob, model, tile = self.prob, self.model, self.prob.tile
        wh, ww = prob.work_hw
        n_groups, n_tiles, tile_group = self.n_groups, self.n_tiles, self.tile_group
        parts, raw = {}, {}
        for k, s in self.slots.items():
            w = lat[k].reshape(-1, *lat[k].shape[2:])
            w = w.expand(-1, s.gen.n_latent, -1) if w.shape[1] == 1 else w
            nz = [nn.reshape(-1, *nn.shape[1:]) for nn in self.noises[k]] if k in self.noises else "fixed"
            out = gens[k](w_plus=w, noise=nz)
            raw[k] = out
            comp = model.component(s.comp, out, self.channels)
            if s.comp.smooth:  # a field per group over the working plane, cropped to each tile
                field_ = _resize(comp, (wh, ww), smooth=True).view(r, n_groups, comp.shape[1], wh, ww)
                crops = [field_[:, g_][:, :, t.ys, t.xs] for g_, (_, t) in zip(tile_group, prob.tiles)]
                comp = torch.stack(crops, 1).reshape(r * n_tiles, comp.shape[1], tile, tile)
            elif comp.shape[-1] != tile:
                comp = _resize(comp, (tile, tile))
            parts[k] = comp
        flat_ex = {k: v.reshape(-1, *v.shape[2:]) for k, v in ex.items()}
        grp = torch.tensor([ri * n_groups + g_ for ri in range(r) for g_ in tile_group], device=self.dev)
        return model.compose(parts, flat_ex, grp), parts, raw

    def preview(self, recon: torch.Tensor) -> np.ndarray:
        """The first plane's reconstruction from the tiles ``recon`` ``(T, C, P, P)``, at full size
        in the input's units and layout (float32); unsolved parts show the input."""
        prob = self.prob
        hy, hx = prob.lin_full.shape[-2:]
        blend = TileBlender((self.channels, *prob.work_hw))
        for j, (i, t) in enumerate(prob.tiles):
            if i == 0:
                blend.add(t, recon[j].detach().float().cpu().numpy())
        est = np.where(blend.wacc > 0, blend.acc / np.maximum(blend.wacc, 1e-12), prob.work[0].numpy())
        up = _resize(torch.from_numpy(est)[None], (hy, hx))[0].numpy()
        up = self.model.delinearise(up)
        return prob.layout.plane_view(up * prob.top).astype(np.float32)

    def solve(self, cancel: Callable[[], bool] | None) -> Gen[Progress, None, None]:
        """Run stage 1, yielding a :class:`Progress` per step; afterwards ``lat``, ``extra`` and
        ``noises`` hold the best restart's values (R = 1, detached) and ``losses`` its distances."""
        p, model, slots, dev = self.p, self.model, self.slots, self.dev
        n_tiles, n_groups, target = self.n_tiles, self.n_groups, self.prob.target
        params_ = [*self.lat.values(), *self.extra.values(), *(t for v in self.noises.values() for t in v)]
        opt = torch.optim.Adam(params_, lr=p.lr, betas=(0.9, 0.999))
        r = self.restarts
        probe = max(1, int(round(p.probe * p.steps))) if r > 1 and p.probe < 1 else -1
        restart_losses: list[float] = []
        target_r = target.repeat(r, 1, 1, 1)
        rec_loss = torch.zeros(r)
        stack_mis = None
        smooth_keys = [k for k, s in slots.items() if s.comp.smooth]
        for step in range(1, int(p.steps) + 1):
            check_cancel(cancel)
            for group_ in opt.param_groups:
                group_["lr"] = projector_lr((step - 1) / p.steps, p.lr)
            with autocast(p.precision, dev, needs=PRECISION_NEEDS):
                recon, _, raw = self.decode(self.gens, self.lat, self.extra, r)
            recon = recon.float()
            # the mean over tiles: the in-domain penalty then weighs the same for 1 tile or 8 (with a
            # sum, more tiles meant a weaker prior and the shared field drifted off the prior's domain)
            rec_loss = _distance(recon, target_r, p.distance).view(r, n_tiles).mean(1)
            loss = rec_loss.sum()
            if self.stats is not None:
                sm = {
                    k: model.component(slots[k].comp, raw[k].float(), self.channels).view(
                        r, n_groups, -1, *raw[k].shape[-2:]
                    )
                    for k in smooth_keys
                }
                stack_mis = model.group_loss(sm, self.stats)
                loss = loss + p.stack_weight * stack_mis.sum()
            loss = loss + self.in_domain_loss(self.lat, slots)
            for v in self.noises.values():
                loss = loss + 1e5 * _noise_reg(v)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for v in self.noises.values():  # keep the noise maps unit-variance, as the projector does
                    for t_ in v:
                        t_.sub_(t_.mean((1, 2, 3), keepdim=True)).div_(t_.std((1, 2, 3), keepdim=True) + 1e-8)
            if step == probe:
                restart_losses = [round(float(v), 6) for v in rec_loss.detach()]
                opt = self._keep_restart(opt, int(torch.argmin(rec_loss.detach())), r)
                r = 1
                target_r = target
            show = p.preview_every and (step % p.preview_every == 0 or step == p.steps)
            yield Progress(
                step,
                self.total,
                float(rec_loss.detach().min()),
                self.preview(recon[:n_tiles] if r == 1 else recon.view(-1, n_tiles, *recon.shape[1:])[0])
                if show
                else None,
                "stage 1: latents" + (f" · {r} restarts" if r > 1 else ""),
                loss_label="distance",
            )
        if r > 1:  # fewer steps than the probe: keep the best now
            restart_losses = [round(float(v), 6) for v in rec_loss.detach()]
            opt = self._keep_restart(opt, int(torch.argmin(rec_loss.detach())), r)
        self.lat = {k: v.detach() for k, v in self.lat.items()}
        self.extra = {k: v.detach() for k, v in self.extra.items()}
        self.noises = {k: [t_.detach() for t_ in v] for k, v in self.noises.items()}
        self.losses = {
            "stage1": float(rec_loss.detach().min()),
            "stage2": None,
            "restarts": restart_losses,
            # the stack term's misfit (0: the field explains the blurred mean plane; ~1: flat)
            "stack": None if stack_mis is None else round(float(stack_mis.detach().min()), 6),
        }

    def _keep_restart(self, opt: torch.optim.Adam, best: int, r: int) -> torch.optim.Adam:
        """Keep restart ``best`` of ``r``: new leaf tensors and the Adam state sliced to it."""
        lat, extra, noises = self.lat, self.extra, self.noises
        old = [*lat.values(), *extra.values(), *(t for v in noises.values() for t in v)]
        state = [opt.state.get(t, {}) for t in old]

        def pick(t: torch.Tensor, per_r: bool) -> torch.Tensor:
            return (
                t.detach()[best : best + 1] if per_r else t.detach().view(r, -1, *t.shape[1:])[best]
            ).clone()

        self.lat = {k: pick(v, True).requires_grad_(True) for k, v in lat.items()}
        self.extra = {k: pick(v, True).requires_grad_(True) for k, v in extra.items()}
        self.noises = {k: [pick(t, False).requires_grad_(True) for t in v] for k, v in noises.items()}
        new = [*self.lat.values(), *self.extra.values(), *(t for v in self.noises.values() for t in v)]
        opt2 = torch.optim.Adam(new, lr=opt.param_groups[0]["lr"], betas=(0.9, 0.999))
        for t_old, t_new, st in zip(old, new, state):
            if st:
                per_r = t_old.shape[0] == r and t_new.shape[0] == 1
                opt2.state[t_new] = {
                    "step": st["step"].clone() if torch.is_tensor(st["step"]) else st["step"],
                    "exp_avg": pick(st["exp_avg"], per_r),
                    "exp_avg_sq": pick(st["exp_avg_sq"], per_r),
                }
        return opt2
