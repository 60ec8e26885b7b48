import pytest
import torch

from training import device as dev


@pytest.mark.parametrize(
    ("flag", "expected"), [("amx_bf16", "bf16-autocast"), ("avx512_bf16", "bf16-autocast"), (None, "fp32")]
)
def test_cpu_precision_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, flag: str | None, expected: str) -> None:
    monkeypatch.setattr(dev, "cpu_bf16", lambda: flag)
    cpu = torch.device("cpu")
    assert dev.precision(cpu) == expected
    assert dev.precision(cpu, amp=False) == "fp32"
    with dev.autocast(cpu):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == (torch.bfloat16 if flag else torch.float32)


def test_describe_device_names_the_cpu_and_its_bf16() -> None:
    text = dev.describe_device(torch.device("cpu"))
    assert dev.cpu_model() in text and dev.cpu_isa() in text
    assert (dev.cpu_bf16() or "no native bf16") in text


def test_describe_device_shows_the_threads_a_run_sets() -> None:
    cpu = torch.device("cpu")
    assert "7 threads" in dev.describe_device(cpu, threads=7)
    assert f"{torch.get_num_threads()} threads" in dev.describe_device(cpu)
