"""JoIN: forward models, the two-stage solver on tiny cases, outputs, bad input, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_genprior.data.generators import nuclei
from napari_genprior.engines import join
from napari_genprior.engines.base import Cancelled, InputError, drive
from napari_genprior.engines.classical import blur_flatfield, blur_shading, retinex_shading
from napari_genprior.engines.prior import load_prior
from napari_genprior.metrics import lmse, si_mse
from napari_genprior.physics.composition import FORWARD_MODELS, FlatField, Intrinsic, forward_model

# the tests below are about the priors; stacks use them too (not the stack statistics)
FAST = {"steps": 40, "finetune_steps": 0, "restarts": 2, "preview_every": 0, "stack_method": "priors"}


@torch.no_grad()
def _prior_sample(name: str, seed: int, psi: float = 0.6) -> np.ndarray:
    """A typical sample ``(S, S[, C])`` in [0, 1] of a bundled prior (truncated towards w̄)."""
    g = load_prior(name)
    w0 = join._mean_w(g)
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((1, g.style_dim))).float()
    w = w0 + psi * (g.mapping(z) - w0)
    x = ((g(w=w) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


# ---------------------------------------------------------------- forward models


def test_intrinsic_composes_and_recomputes_the_albedo():
    m = forward_model("intrinsic")
    a, s = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8) + 0.1
    torch.testing.assert_close(
        m.compose({"albedo": a, "shading": s}, {}, torch.zeros(2, dtype=torch.long)), a * s
    )
    img = (a * s)[0].numpy()
    out = m.full_resolution(img, {"shading": s[0].numpy()}, {})
    np.testing.assert_allclose(out["albedo"], a[0].numpy(), rtol=1e-5)
    # a colour albedo prior into a grey image: its grey (the channel mean)
    g_out = torch.rand(1, 3, 4, 4) * 2 - 1
    grey = m.component(m.components[0], g_out, 1)
    assert grey.shape == (1, 1, 4, 4)
    torch.testing.assert_close(grey, ((g_out + 1) / 2).mean(1, keepdim=True))
    assert float(m.component(m.components[1], -torch.ones(1, 1, 2, 2), 1).min()) == pytest.approx(0.01)
    assert torch.allclose(Intrinsic(gamma=2.2).linearise(torch.tensor([0.5])), torch.tensor([0.5**2.2]))
    with pytest.raises(ValueError, match="gamma"):
        Intrinsic(gamma=0)


def test_flatfield_composes_with_gain_and_dark_and_corrects_exactly():
    m = FlatField(darkfield="scalar")
    x, f = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8) + 0.5
    extra = {
        "log_gain": torch.log(torch.tensor([2.0, 1.0])),
        "dark": torch.tensor([0.1, 0.3]).view(2, 1, 1, 1),
    }
    group = torch.tensor([0, 0, 1])
    out = m.compose({"specimen": x, "flatfield": f}, extra, group)
    torch.testing.assert_close(out[:2], 2 * f[:2] * x[:2] + 0.1)
    torch.testing.assert_close(out[2:], f[2:] * x[2:] + 0.3)
    img = (f[0] * x[0] + 0.1).numpy()
    res = m.full_resolution(img, {"flatfield": f[0].numpy()}, {"dark": np.float32(0.1)})
    assert res["flatfield"].mean() == pytest.approx(1.0, rel=1e-5)  # BaSiC's convention
    corr = res["corrected"] * 1.0
    np.testing.assert_allclose(corr, x[0].numpy() * f[0].numpy().mean(), rtol=1e-4, atol=1e-5)
    assert float(res["darkfield"].max()) == pytest.approx(0.1)
    field = FlatField(darkfield="field")
    e = field.init_extra(1, torch.full((1, 1, 16, 16), 0.2))
    assert e["dark"].shape == (1, 1, 4, 4)
    assert field.dark_map(e, 0, (10, 12)).shape == (1, 10, 12)
    with pytest.raises(ValueError, match="darkfield"):
        FlatField(darkfield="bright")


def test_registry_names_the_models():
    assert set(FORWARD_MODELS) == {"intrinsic", "flatfield"}
    with pytest.raises(ValueError, match="intrinsic, flatfield"):
        forward_model("specular")


def test_classical_baselines_and_metrics():
    y, x = np.mgrid[0:64, 0:64] / 64
    shading = (0.3 + 0.7 * np.exp(-((y - 0.4) ** 2 + (x - 0.6) ** 2) / 0.2)).astype(np.float32)
    albedo = np.where(x > 0.5, 0.8, 0.3).astype(np.float32)
    img = albedo * shading
    for fn in (retinex_shading, blur_shading):
        a, s = fn(img)
        assert a.shape == img.shape and s.shape == img.shape and s.max() == pytest.approx(1.0)
    assert si_mse(2 * shading, shading) == pytest.approx(0.0, abs=1e-12)  # scale-invariant
    assert lmse(3 * shading, shading) == pytest.approx(0.0, abs=1e-12)
    assert si_mse(np.ones_like(shading), shading) > 0.005
    corr, f = blur_flatfield(img)
    assert f.mean() == pytest.approx(1.0) and corr.shape == img.shape


# ---------------------------------------------------------------- the solver


def test_intrinsic_recovers_a_pair_of_the_priors_better_than_the_baselines():
    a = _prior_sample("albedo", 3)
    s = _prior_sample("shading", 4)
    img = (a * s[..., None]).astype(np.float32)
    res = drive(join.run(img, {**FAST, "steps": 300}, device="cpu"))
    alb, sh = res.layer("albedo").data, res.layer("shading").data
    assert alb.shape == img.shape and sh.shape == img.shape[:2]
    assert alb.dtype == np.float32 and 0.0 < sh.min() and sh.max() <= 1.0
    err = si_mse(sh, s)
    _, s_blur = blur_shading(img)
    _, s_ret = retinex_shading(img)
    assert err < min(si_mse(s_blur, s), si_mse(s_ret, s))
    # the reconstruction explains the image
    rec = res.layer("reconstruction").data
    assert 10 * np.log10(1 / np.mean((rec - img) ** 2)) > 25
    np.testing.assert_allclose(res.layer("residual").data, img - rec, atol=1e-6)
    meta = res.metadata
    assert (
        meta["engine"] == "join" and meta["forward"] == "intrinsic" and len(meta["losses"]["restarts"]) == 2
    )
    assert meta["priors_used"] == {"albedo": "albedo", "shading": "shading"}


def test_flatfield_single_image_beats_the_blur_baseline():
    x = _prior_sample("nuclei", 5, psi=0.7)
    f = torch.nn.functional.interpolate(
        torch.from_numpy(_prior_sample("illumination", 6))[None, None], size=(128, 128), mode="bicubic"
    )[0, 0].numpy()
    f = np.clip(f, 0.1, None)
    img = (f * x + 0.05).astype(np.float32)
    res = drive(join.run(img, {**FAST, "forward": "flatfield", "steps": 60}, device="cpu"))
    ff = res.layer("flatfield").data
    assert ff.shape == img.shape and ff.mean() == pytest.approx(1.0, rel=1e-4)
    err = si_mse(ff, f / f.mean())
    _, f_blur = blur_flatfield(img)
    assert err < 0.5 * si_mse(f_blur, f / f.mean())
    dark = res.layer("darkfield").data
    assert dark.shape == img.shape and abs(float(dark.mean()) - 0.05) < 0.03
    corr = res.layer("corrected").data
    # corrected: proportional to the specimen, far closer than the input is
    assert si_mse(corr - corr.min(), x) < 0.5 * si_mse(img - img.min(), x)


def test_stage_two_on_and_off():
    img = (_prior_sample("albedo", 7) * _prior_sample("shading", 8)[..., None]).astype(np.float32)
    off = drive(join.run(img, {**FAST, "steps": 30}, device="cpu"))
    assert off.metadata["losses"]["stage2"] is None
    on = drive(join.run(img, {**FAST, "steps": 30, "finetune_steps": 15}, device="cpu"))
    # same seed: the same stage 1, then fine-tuning lowers the reconstruction distance
    assert on.metadata["losses"]["stage1"] == pytest.approx(off.metadata["losses"]["stage1"], rel=1e-5)
    assert on.metadata["losses"]["stage2"] < on.metadata["losses"]["stage1"]
    # the bundled priors stay untouched by fine-tuning (it works on copies)
    again = drive(join.run(img, {**FAST, "steps": 30}, device="cpu"))
    assert again.metadata["losses"]["stage1"] == pytest.approx(off.metadata["losses"]["stage1"], rel=1e-5)


def test_stage_two_smooth_component_modes():
    """Intrinsic stage 2 by default frees the albedo generator and keeps moving the shading latent
    (the shading prior's weights stay); ``frozen`` leaves stage 1's shading exactly as it was."""
    img = (_prior_sample("albedo", 3) * _prior_sample("shading", 4)[..., None]).astype(np.float32)
    base = {**FAST, "steps": 30, "restarts": 1}
    s1 = drive(join.run(img, base, device="cpu")).layer("shading").data
    frozen = drive(join.run(img, {**base, "finetune_steps": 10, "stage2_smooth": "frozen"}, device="cpu"))
    np.testing.assert_allclose(frozen.layer("shading").data, s1, atol=1e-6)
    moved = drive(join.run(img, {**base, "finetune_steps": 10}, device="cpu"))
    assert moved.metadata["stage2_smooth"] == "auto" and moved.metadata["stage2_smooth_used"] == "latent"
    assert np.abs(moved.layer("shading").data - s1).max() > 1e-4
    with pytest.raises(InputError, match="stage2_smooth"):
        drive(join.run(img, {**base, "stage2_smooth": "both"}, device="cpu"))


def test_stack_shares_one_field_unless_per_plane():
    rng = np.random.default_rng(0)
    stack = (rng.random((2, 128, 128)) * 0.5 + 0.1).astype(np.float32)
    fast = {**FAST, "forward": "flatfield", "steps": 3, "restarts": 1}
    shared = drive(join.run(stack, fast, device="cpu"))
    assert shared.layer("flatfield").data.shape == (128, 128)
    assert shared.layer("darkfield").data.shape == (128, 128)
    assert shared.layer("corrected").data.shape == stack.shape
    assert shared.metadata["shared_field"] and shared.metadata["tiles"] == 2
    per = drive(join.run(stack, {**fast, "per_plane": True}, device="cpu"))
    assert per.layer("flatfield").data.shape == stack.shape
    assert not per.metadata["shared_field"]


def _field(seed: int, size: int) -> np.ndarray:
    f = torch.nn.functional.interpolate(
        torch.from_numpy(_prior_sample("illumination", seed))[None, None], size=(size, size), mode="bicubic"
    )[0, 0].numpy()
    return np.clip(f, 0.1, None)


def test_stack_term_scores_the_field_against_the_mean_plane():
    m = FlatField()
    rng = np.random.default_rng(4)
    f = _field(9, 128)
    planes = torch.from_numpy((f * rng.random((6, 128, 128))).astype(np.float32))[:, None]
    # a plane of its own: its own blurred image, never "the same content"
    alone = m.group_stats(planes[:2], [0, 1])
    assert alone["grid"].shape == (2, 1, m.STACK_GRID, m.STACK_GRID) and bool(alone["valid"].all())
    assert forward_model("intrinsic").group_stats(planes, [0] * 6) is None
    stats = m.group_stats(planes, [0] * 6)
    true = torch.from_numpy(f)[None, None, None]  # (R=1, G=1, 1, s, s)
    flat = torch.ones_like(true)
    assert float(m.group_loss({"flatfield": flat}, stats)[0]) == pytest.approx(1.0, abs=1e-4)
    # the true field explains the mean plane up to the specimens' own spread (gain is free)
    assert float(m.group_loss({"flatfield": 3 * true}, stats)[0]) < 0.05
    both = m.group_loss({"flatfield": torch.cat([true, flat])}, stats)
    assert both.shape == (2,) and both[0] < both[1]


def test_the_stack_term_brings_a_shared_field_closer_than_the_tiles_alone():
    # 16 planes, 8 tiles: the mean plane carries the planes that the tiles leave out
    f = _field(11, 128)
    stack = (f * np.stack([nuclei(128, 20 + i) for i in range(16)]) + 0.02).astype(np.float32)
    fast = {**FAST, "forward": "flatfield", "steps": 40, "restarts": 1}
    runs = {w: drive(join.run(stack, {**fast, "stack_weight": w}, device="cpu")) for w in (0.0, 0.3)}
    err = {w: si_mse(r.layer("flatfield").data, f / f.mean()) for w, r in runs.items()}
    assert runs[0.0].metadata["losses"]["stack"] is None
    assert 0 <= runs[0.3].metadata["losses"]["stack"] < 1  # better than a flat field
    # (with the Mahalanobis field prior the tiles alone already do better, so the margin is smaller)
    assert err[0.3] < 0.8 * err[0.0], err


def test_the_stack_term_is_off_where_the_tiles_cover_the_stack_or_the_planes_repeat():
    f = _field(11, 128)
    fast = {**FAST, "forward": "flatfield", "steps": 2, "restarts": 1, "stack_weight": 0.3}
    covered = (f * np.stack([nuclei(128, 20 + i) for i in range(4)]) + 0.02).astype(np.float32)
    res = drive(join.run(covered, fast, device="cpu"))  # 4 planes, 4 tiles: all solved
    assert res.metadata["losses"]["stack"] is None and "warnings" not in res.metadata
    # one plane with more tile positions than max_tiles: its blurred self is the term
    single = drive(join.run(covered[0:1].reshape(128, 128), {**fast, "max_tiles": 1}, device="cpu"))
    assert single.metadata["losses"]["stack"] is None  # one position, solved
    big = np.tile(covered[0], (2, 2))  # 256²: 4 positions, 2 solved
    half = drive(join.run(big, {**fast, "max_tiles": 2}, device="cpu"))
    assert 0 <= half.metadata["losses"]["stack"] < 2
    # samples of the prior near its mean share one layout, as a time-lapse of one field of view
    # does: their mean plane is mostly specimen, so it must not steer the field
    specs = np.stack([_prior_sample("nuclei", 20 + i, psi=0.7) for i in range(4)])
    same = (f * specs + 0.02).astype(np.float32)
    on = drive(join.run(same, {**fast, "max_tiles": 2}, device="cpu"))
    off = drive(join.run(same, {**fast, "max_tiles": 2, "stack_weight": 0.0}, device="cpu"))
    assert on.metadata["losses"]["stack"] is None
    assert any("same content" in w for w in on.metadata["warnings"])
    np.testing.assert_allclose(on.layer("flatfield").data, off.layer("flatfield").data, rtol=1e-5)
    stats = FlatField().group_stats(torch.from_numpy(same)[:, None], [0] * 4)
    assert float(stats["shared_content"][0]) > FlatField.SHARED_CONTENT
    assert (
        float(FlatField().group_stats(torch.from_numpy(covered)[:, None], [0] * 4)["shared_content"][0]) < 0.1
    )


def test_tiles_for_a_shared_field_cover_every_position_and_vary_the_planes():
    assert join._pick_tiles(2, 3, 8) == [(i, q) for i in range(2) for q in range(3)]  # all fit
    picked = join._pick_tiles(8, 4, 8)
    assert len(set(picked)) == 8 and {q for _, q in picked} == {0, 1, 2, 3}
    assert len({i for i, _ in picked}) >= 7  # tiles from (almost) every plane
    single = join._pick_tiles(1, 16, 8)
    assert len(single) == 8 and {0, 15} <= {q for _, q in single}  # spread over the plane
    for n, npos, budget in [(4, 4, 8), (3, 5, 7), (1, 3, 2), (16, 1, 8)]:
        got = join._pick_tiles(n, npos, budget)
        positions = {q for _, q in got}
        assert len(set(got)) == budget and all(0 <= i < n for i, _ in got)
        assert positions == set(range(npos)) if budget >= npos else {0, npos - 1} <= positions


def test_a_stack_sharing_a_field_solves_some_tiles_at_the_prior_scale():
    rng = np.random.default_rng(3)
    stack = (rng.random((6, 128, 128)) * 0.5 + 0.1).astype(np.float32)
    fast = {**FAST, "forward": "flatfield", "steps": 2, "restarts": 1, "max_tiles": 2}
    res = drive(join.run(stack, fast, device="cpu"))
    assert res.metadata["tiles"] == 2 and res.metadata["work_size"] == [128, 128]  # not downscaled
    assert res.metadata["fitted_fraction"] == pytest.approx(2 / 6, abs=1e-3)
    labels = res.layer("unexplained").data
    assert labels.shape == stack.shape
    solved = [i for i in range(6) if not (labels[i] == 3).any()]
    others = [i for i in range(6) if i not in solved]
    assert len(solved) == 2 and 0 in solved and all((labels[i] == 3).all() for i in others)
    np.testing.assert_allclose(res.layer("residual").data[others], 0, atol=1e-6)  # not fitted: the input
    assert np.isfinite(res.layer("corrected").data).all()  # every plane is corrected


def test_large_planes_are_solved_downscaled_and_come_back_full_size():
    img = np.random.default_rng(1).random((300, 260)).astype(np.float32) + 0.1
    res = drive(
        join.run(
            img, {**FAST, "forward": "flatfield", "steps": 2, "restarts": 1, "max_tiles": 4}, device="cpu"
        )
    )
    assert res.metadata["tiles"] <= 4 and res.metadata["work_size"][0] < 300
    for name in ("corrected", "flatfield", "darkfield", "reconstruction", "residual", "unexplained"):
        assert res.layer(name).data.shape == img.shape


def test_intrinsic_stack_is_decomposed_plane_by_plane_and_uint8_keeps_units():
    rng = np.random.default_rng(2)
    img = (rng.random((2, 64, 80, 3)) * 255).astype(np.uint8)
    res = drive(join.run(img, {**FAST, "steps": 2, "restarts": 1}, device="cpu"))
    assert res.layer("albedo").data.shape == img.shape
    assert res.layer("shading").data.shape == img.shape[:-1]
    rec = res.layer("reconstruction").data
    assert rec.shape == img.shape and rec.dtype == np.float32 and rec.max() <= 255.5
    mask = res.layer("unexplained").data
    assert mask.dtype == np.uint8 and mask.shape == img.shape[:-1]
    assert set(np.unique(mask)) <= {0, 1, 2} and (mask[img.max(-1) == 255] == 2).all()  # saturated


def test_unexplained_mask_marks_outliers():
    r = np.random.default_rng(0).normal(0, 0.01, (32, 32))
    r[5, 5] = 1.0
    m = join.unexplained_mask(r)
    assert m[5, 5] == 1 and m.sum() < 10


def test_cancel_stops_the_run():
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    calls = []
    with pytest.raises(Cancelled):
        drive(
            join.run(img, {**FAST, "steps": 50}, device="cpu"),
            cancel=lambda: calls.append(1) or len(calls) > 2,
        )
    assert len(calls) == 3


def test_in_domain_weights_per_component():
    ff = FlatField()
    assert join.JoinParams().in_domain_of(ff) == {
        c.name: (ff.in_domain if c.in_domain is None else c.in_domain) for c in ff.components
    }
    assert set(join.JoinParams(in_domain=0.5).in_domain_of(ff).values()) == {0.5}  # one for all
    mixed = join.JoinParams(in_domain={"flatfield": 0.0}).in_domain_of(ff)
    assert mixed["flatfield"] == 0.0 and mixed["specimen"] == join.JoinParams().in_domain_of(ff)["specimen"]
    with pytest.raises(InputError, match="in_domain"):
        join.JoinParams(in_domain={"flatfield": -1.0}).validate()
    # the stack term has its own default for the field; a weight given explicitly still wins
    stacked = join.JoinParams().in_domain_of(ff, stacked=True)
    assert stacked["flatfield"] == ff.stack_in_domain["flatfield"] != ff.in_domain
    assert join.JoinParams(in_domain=0.5).in_domain_of(ff, stacked=True)["flatfield"] == 0.5


def test_mahalanobis_penalty_frees_the_directions_the_prior_varies_in():
    g = load_prior("illumination")
    w0, white = join._mean_w(g), join._w_whitener(g)
    with torch.no_grad():
        z = torch.from_numpy(np.random.default_rng(3).standard_normal((2048, g.style_dim))).float()
        d = g.mapping(z) - w0  # samples the whitener was not fitted on
        evals, evecs = torch.linalg.eigh(torch.cov(d.T))
    # rescaled so that a typical sample scores about what it scores under ‖w − w̄‖²
    assert (d @ white).square().mean() == pytest.approx(float(d.square().mean()), rel=0.15)
    # one step along the prior's widest direction costs far less, along its narrowest far more
    wide, narrow = evecs[:, -1], evecs[:, 0]
    assert (wide @ white).square().sum() < 0.2 < 5 < (narrow @ white).square().sum()
    assert join.JoinParams().metric_of(FlatField()) == {"specimen": "euclidean", "flatfield": "mahalanobis"}
    assert set(join.JoinParams(in_domain_metric="euclidean").metric_of(FlatField()).values()) == {"euclidean"}
    assert set(join.JoinParams().metric_of(Intrinsic()).values()) == {"euclidean"}


def test_projector_schedule():
    assert join.projector_lr(0.0, 0.1) == 0.0
    assert join.projector_lr(0.5, 0.1) == pytest.approx(0.1)
    assert join.projector_lr(0.99, 0.1) < 0.01


def test_precision_is_resolved_per_device_and_bfloat16_solves_about_the_same():
    from functools import partial

    from napari_genprior.engines.base import native_cpu_bf16
    from napari_genprior.engines.base import resolve_precision as resolve

    resolve_precision = partial(resolve, needs=join.PRECISION_NEEDS)  # JoIN's criterion
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == ("bfloat16" if native_cpu_bf16() else "float32")
    assert resolve_precision("auto", cuda) == "float32"
    assert (
        resolve_precision("bfloat16", cuda) == "bfloat16" and resolve_precision("float32", cpu) == "float32"
    )
    with pytest.raises(InputError, match="precision"):
        resolve_precision("half", cpu)
    img = (_field(6, 128) * _prior_sample("nuclei", 5, psi=0.7) + 0.05).astype(np.float32)
    fast = {**FAST, "forward": "flatfield", "steps": 15, "restarts": 1}
    runs = {
        pr: drive(join.run(img, {**fast, "precision": pr}, device="cpu")) for pr in ("float32", "bfloat16")
    }
    assert {pr: r.metadata["precision_used"] for pr, r in runs.items()} == {
        "float32": "float32",
        "bfloat16": "bfloat16",
    }
    f32, bf16 = (runs[pr].layer("flatfield").data for pr in ("float32", "bfloat16"))
    assert f32.dtype == bf16.dtype == np.float32
    assert si_mse(bf16, f32) < 0.01  # the same solve up to bfloat16's rounding


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "image, params, match",
    [
        (np.zeros((40, 40), np.float32), {}, "smaller than"),
        (np.zeros((100, 100), np.float32), {"forward": "flatfield"}, "smaller than"),
        (np.full((64, 64), np.nan, np.float32), {}, "NaN"),
        (np.zeros((128, 128, 3), np.float32), {"forward": "flatfield"}, "one channel"),
        (np.zeros((64, 64, 4), np.float32), {}, "alpha"),
        (np.zeros((128, 128), np.float32), {"forward": "flatfield", "per_plane": True}, "single plane"),
        (np.zeros((64, 64), np.float32), {"priors": {"shading": "albedo"}}, "grey"),
        (
            np.zeros((128, 128), np.float32),
            {"forward": "flatfield", "priors": {"specimen": "albedo"}},
            "grey prior",
        ),
        (np.zeros((64, 64), np.float32), {"priors": {"albedo": "no-such-prior"}}, "neither a bundled prior"),
        (np.zeros((64, 64), np.float32), {"priors": {"specimen": "nuclei"}}, "no component"),
        (np.zeros((64, 64), np.float32), {"restarts": 0}, "restarts"),
        (np.zeros((2, 128, 128), np.float32), {"forward": "flatfield", "stack_weight": -1}, "stack_weight"),
        (np.zeros((64, 64), np.float32), {"precision": "half"}, "precision"),
        (np.zeros((64, 64), np.float32), {"in_domain_metric": "cosine"}, "in_domain_metric"),
    ],
)
def test_bad_input_is_refused_with_a_message(image, params, match):
    with pytest.raises(InputError, match=match):
        join.run(image, {**FAST, **params}, device="cpu")


def test_a_file_that_is_not_a_generator(tmp_path):
    bad = tmp_path / "notagan.pt"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="not a generator"):
        join.run(np.zeros((64, 64), np.float32), {**FAST, "priors": {"albedo": str(bad)}}, device="cpu")
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a generator"):
        join.run(np.zeros((64, 64), np.float32), {**FAST, "priors": {"shading": str(text)}}, device="cpu")


def test_grey_image_into_the_colour_albedo_prior_says_what_happens():
    img = (_prior_sample("shading", 1) * 0.8).astype(np.float32)
    res = drive(join.run(img, {**FAST, "steps": 2, "restarts": 1}, device="cpu"))
    assert res.layer("albedo").data.shape == img.shape
    assert any("grey image" in w for w in res.metadata["warnings"])


def test_stage_two_needs_discriminators_or_says_so(tmp_path):
    g = load_prior("shading")
    path = tmp_path / "gen_only.pt"
    torch.save({"model": g.state_dict()}, path)
    params = {**FAST, "finetune_steps": 2, "priors": {"shading": str(path)}}
    with pytest.raises(InputError, match="train disc"):
        join.run(np.zeros((64, 64), np.float32), params, device="cpu")
    res = drive(
        join.run(np.full((64, 64), 0.5, np.float32), {**params, "steps": 2, "adversarial": 0.0}, device="cpu")
    )
    assert res.metadata["losses"]["stage2"] is not None


def test_bundled_priors_carry_their_discriminators():
    from napari_genprior.models import card, weights_path

    for name in ("albedo", "shading", "nuclei", "illumination"):
        gen, disc, _ = join.load_component_prior(name, name)
        assert disc is not None, name
        ck = torch.load(weights_path(name), weights_only=True)
        assert all(v.dtype == torch.float16 for v in ck["discriminator"].values() if v.is_floating_point())
        info = card(name)["discriminator"]
        assert info["steps"] > 0 and info["held_out"]["accuracy"] > 0.5
        with torch.no_grad():
            x = gen(torch.randn(2, gen.style_dim))
            assert disc(x).shape == (2, 1)


# ---------------------------------------------------------------- CLI


def test_cli_join_writes_the_components(tmp_path):
    import tifffile

    from napari_genprior.cli import main

    img = np.random.default_rng(0).random((3, 128, 128)).astype(np.float32) + 0.1
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, img)
    out = tmp_path / "out"
    args = [
        "join",
        str(src),
        "-o",
        str(out),
        "--forward",
        "flatfield",
        "--steps",
        "2",
        "--finetune-steps",
        "0",
    ]
    assert (
        main(
            [
                *args,
                "--restarts",
                "1",
                "--stack-weight",
                "0.5",
                "--precision",
                "float32",
                "--stack-method",
                "priors",
                "--quiet",
            ]
        )
        == 0
    )
    names = {p.name for p in out.iterdir()}
    assert names == {
        "corrected.tif",
        "flatfield.tif",
        "darkfield.tif",
        "reconstruction.tif",
        "residual.tif",
        "unexplained.tif",
        "join.json",
    }
    assert tifffile.imread(out / "corrected.tif").shape == img.shape
    assert tifffile.imread(out / "flatfield.tif").shape == (128, 128)  # one shared field
    assert tifffile.imread(out / "corrected.tif").dtype == np.float32
    meta = json.loads((out / "join.json").read_text())
    assert meta["forward"] == "flatfield" and meta["steps"] == 2 and "stage1" in meta["losses"]
    assert meta["stack_weight"] == 0.5 and meta["precision_used"] == "float32"
    assert main([*args, "--prior", "specimen"]) == 2  # malformed --prior
    assert main([*args, "--per-plane", "--prior", "flatfield=nope.pt"]) == 2


def test_stack_statistics_recover_a_field_and_dark_offset():
    """The closed-form stack estimate (stack_method auto): on specimens that vary from plane to
    plane, the field comes back close to the truth, the dark offset is found from 16 planes on,
    and the corrected planes are far closer to the specimens than the input."""
    from napari_genprior.metrics import si_mse

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    field = 0.4 + 0.6 * np.exp(-((yy - 0.35) ** 2 + (xx - 0.55) ** 2) / 0.15)
    field = field / field.mean()
    blobs = []
    for _ in range(24):  # sparse bright blobs on a dim background, anywhere in the plane
        x = np.full((128, 128), 0.02)
        for cy, cx in rng.random((10, 2)) * 128:
            x += 0.8 * np.exp(-((yy * 128 - cy) ** 2 + (xx * 128 - cx) ** 2) / 80.0)
        blobs.append(x)
    spec = np.stack(blobs)
    stack = (field * spec + 0.05 + 0.003 * rng.standard_normal(spec.shape)).astype(np.float32)

    def affine_db(est, truth):
        a, b = np.polyfit(est.ravel(), truth.ravel(), 1)
        r = a * est.ravel() + b - truth.ravel()
        return 10 * np.log10(float(truth.max() - truth.min()) ** 2 / float(np.mean(r**2)))

    res = drive(join.run(stack, {"forward": "flatfield"}, device="cpu"))
    meta = res.metadata
    assert meta["stack_method_used"] == "statistics" and meta["dark_identified"]
    assert abs(float(res.layer("darkfield").data.mean()) - 0.05) < 0.01
    f, corrected = res.layer("flatfield").data, res.layer("corrected").data
    assert si_mse(f, field) < 0.3 * si_mse(np.ones_like(field), field)
    np.testing.assert_allclose(corrected, (stack - res.layer("darkfield").data) / f, rtol=1e-5)
    gain = np.mean([affine_db(c, x) - affine_db(i, x) for c, i, x in zip(corrected, stack, spec)])
    assert gain > 4.0
    off = drive(join.run(stack, {"forward": "flatfield", "darkfield": "none"}, device="cpu"))
    assert float(np.abs(off.layer("darkfield").data).max()) == 0.0
    few = drive(join.run(stack[:8], {"forward": "flatfield"}, device="cpu"))  # too few planes: not subtracted
    assert not few.metadata["dark_identified"] and "not subtracted" in few.metadata["warnings"][-1]


def test_a_stack_of_sparse_cells_is_flagged():
    """Tiles that are mostly background (a few cells each) are where the stack statistics follow
    the cells more than the field: the run says so; dense tiles are not flagged."""
    from napari_genprior.engines.flatstack import SPARSE_OCCUPANCY, occupancy

    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:128, 0:128]

    def tiles(n_cells):
        out = []
        for _ in range(10):
            x = np.full((128, 128), 0.02)
            for cy, cx in rng.random((n_cells, 2)) * 128:
                x += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
            out.append(x + 0.003 * rng.standard_normal(x.shape))
        return np.stack(out).astype(np.float32)

    sparse, dense = tiles(2), tiles(40)
    assert occupancy(sparse) < SPARSE_OCCUPANCY < occupancy(dense)
    res = drive(join.run(sparse, {"forward": "flatfield"}, device="cpu"))
    assert any("mostly background" in w for w in res.metadata["warnings"])
    res = drive(join.run(dense, {"forward": "flatfield"}, device="cpu"))
    assert not any("mostly background" in w for w in res.metadata["warnings"])
