import pytest
import torch

from training import device as dev


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch):
    """Set the CPU's bf16 flag and what the conv probe measures (seconds, fp32 then bf16); the cached verdict
    is cleared before and after."""

    def setup(flag: str | None, fp32_s: float = 1.0, bf16_s: float = 1.0) -> list[bool]:
        calls: list[bool] = []
        monkeypatch.setattr(dev, "cpu_bf16", lambda: flag)
        monkeypatch.setattr(dev, "_conv_step_seconds", lambda bf16: calls.append(bf16) or (bf16_s if bf16 else fp32_s))
        dev.cpu_bf16_pays.cache_clear()
        return calls

    yield setup
    dev.cpu_bf16_pays.cache_clear()


@pytest.mark.parametrize(
    ("flag", "bf16_s", "expected", "probed"),
    [
        ("amx_bf16", 9.9, "bf16-autocast", False),  # AMX: bf16, no probe
        ("avx512_bf16", 0.5, "bf16-autocast", True),  # measured twice as fast: bf16
        ("avx512_bf16", 1.4, "fp32", True),  # measured slower (the Xeon of train_cpu_avx512_bf16.md): fp32
        ("avx512_bf16", 0.95, "fp32", True),  # within the margin: fp32, the more exact
        (None, 0.1, "fp32", False),  # emulated bf16: fp32, no probe
    ],
)
def test_cpu_precision_follows_measured_native_bf16(probe, flag, bf16_s, expected, probed) -> None:
    calls = probe(flag, bf16_s=bf16_s)
    cpu = torch.device("cpu")
    assert dev.precision(cpu) == expected
    assert dev.precision(cpu, amp=False) == "fp32"
    with dev.autocast(cpu):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == (torch.bfloat16 if expected == "bf16-autocast" else torch.float32)
    assert sorted(calls) == ([False, True] if probed else [])  # measured once per process, then cached


def test_the_real_probe_times_both_precisions_and_leaves_the_rng_alone() -> None:
    fp32, bf16 = dev._conv_step_seconds(False, repeats=2), dev._conv_step_seconds(True, repeats=2)
    assert 0 < fp32 < 5 and 0 < bf16 < 5
    dev.cpu_bf16_pays.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert isinstance(dev.cpu_bf16_pays(), bool)
    assert torch.equal(torch.rand(3), expected)
    for no_grad in (torch.no_grad, torch.inference_mode):  # first asked by an evaluation: it still measures
        dev.cpu_bf16_pays.cache_clear()
        with no_grad():
            assert isinstance(dev.cpu_bf16_pays(), bool)


def test_describe_device_names_the_cpu_and_its_bf16() -> None:
    text = dev.describe_device(torch.device("cpu"))
    assert dev.cpu_model() in text and dev.cpu_isa() in text
    assert (dev.cpu_bf16() or "no native bf16") in text


def test_describe_device_shows_the_threads_a_run_sets() -> None:
    cpu = torch.device("cpu")
    assert "7 threads" in dev.describe_device(cpu, threads=7)
    assert f"{torch.get_num_threads()} threads" in dev.describe_device(cpu)
