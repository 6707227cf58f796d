"""Device names: what this machine offers, and one-line refusals for devices it does not have."""

from __future__ import annotations

import pytest
import torch

from napari_genprior.engines.base import InputError, available_devices, resolve_device


def test_cpu_and_auto_are_always_there():
    here = available_devices()
    assert here[:2] == ["auto", "cpu"]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device(None) == resolve_device("auto")


@pytest.fixture
def one_gpu(monkeypatch):
    """A machine with one CUDA GPU, as far as device parsing can tell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_cuda_n_is_parsed_against_the_gpus_present(one_gpu):
    assert available_devices()[:3] == ["auto", "cpu", "cuda:0"]
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(InputError) as err:
        resolve_device("cuda:1")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("device 'cuda:1' is not present on this machine") and "auto, cpu, cuda:0" in msg


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("cuda:one", "write cuda:N with N a GPU number"),
        ("cuda:", "write cuda:N"),
        ("mps:0", "unknown device 'mps:0'"),
        ("tpu", "unknown device 'tpu'"),
    ],
)
def test_malformed_names_say_how_to_write_one(one_gpu, name, match):
    with pytest.raises(InputError, match=match):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_cuda_on_a_machine_without_it_names_the_devices_there_are():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(
            InputError, match=f"'{name}' is not available on this machine: choose one of auto, cpu"
        ):
            resolve_device(name)


@pytest.mark.parametrize(("amx", "avx512_bf16"), [(True, True), (False, True), (False, False)])
def test_one_auto_precision_policy_with_two_criteria(monkeypatch, amx, avx512_bf16):
    """``auto`` precision: DIP's criterion (``amx``) takes bfloat16 on a CPU only with AMX and on GPUs
    that have it; JoIN's (``bf16``) on any CPU with native bfloat16 and never on a GPU."""
    from napari_genprior import runtime
    from napari_genprior.engines import dip, join

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: amx or avx512_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    bf16 = {True: "bfloat16", False: "float32"}
    resolve = runtime.resolve_precision
    assert resolve("auto", cpu, needs="amx") == dip.resolve_precision("auto", cpu) == bf16[amx]
    assert resolve("auto", cpu, needs=join.PRECISION_NEEDS) == bf16[amx or avx512_bf16]
    assert resolve("auto", cuda, needs="amx") == "bfloat16"
    assert resolve("auto", cuda, needs="bf16") == "float32"
    assert resolve("auto", mps, needs="amx") == resolve("auto", mps, needs="bf16") == "float32"
    for needs in runtime.PRECISION_NEEDS:  # an explicit choice is what it says, on any device
        assert resolve("float32", cpu, needs=needs) == "float32"
        assert resolve("bfloat16", cuda, needs=needs) == "bfloat16"
        with pytest.raises(InputError, match="precision must be one of"):
            resolve("half", cpu, needs=needs)
    with pytest.raises(InputError, match="criterion"):
        resolve("auto", cpu, needs="avx")
