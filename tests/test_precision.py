"""run.update_matmul_precision: the update's float32 matrix products on bfloat16-rounded inputs (bf16),
or exact (ieee, the default)."""

import numpy as np
import pytest
import torch

from hapo import config
from hapo import train as train_lib
from hapo.config import ConfigError
from hapo.train import Trainer

QUIET = ["run.progress=false", "run.tensorboard=false"]
needs_bf16 = pytest.mark.skipif(not train_lib.bf16_matmul_supported(), reason="this CPU has no oneDNN bfloat16 matrix products")


def bfloat16_values(a: np.ndarray) -> np.ndarray:
    """float32 `a` rounded to the nearest bfloat16 (ties to even: the top 16 of its 32 bits), as float64."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def products_while(trainer: Trainer, monkeypatch) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One iteration of `trainer`, with the product x @ w of two fixed float32 [256, 64] x [64, 64]
    matrices taken by torch as it starts collecting and as it starts updating."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((256, 64), dtype=np.float32), rng.standard_normal((64, 64), dtype=np.float32)
    products = {}

    def taking_product(phase, method):
        def wrapped(*args, **kwargs):
            products[phase] = (torch.from_numpy(x) @ torch.from_numpy(w)).double().numpy()
            return method(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(trainer, "_collect", taking_product("collect", trainer._collect))
    monkeypatch.setattr(trainer, "_update", taking_product("update", trainer._update))
    trainer.iterate()
    products["after"] = (torch.from_numpy(x) @ torch.from_numpy(w)).double().numpy()
    return products, x, w


@needs_bf16
@pytest.mark.parametrize("name", ["toy_reach", "toy_reach_maddpg"])
def test_bf16_update_multiplies_rounded_inputs_and_collection_stays_exact(name, monkeypatch):
    trainer = Trainer(config.load(name).with_overrides(QUIET + ["run.update_matmul_precision=bf16"]))
    products, x, w = products_while(trainer, monkeypatch)
    exact = x.astype(np.float64) @ w.astype(np.float64)
    rounded = bfloat16_values(x) @ bfloat16_values(w)
    tolerance = 1e-5 * np.abs(exact).max()  # float32 sums of 64 terms
    assert np.abs(products["update"] - rounded).max() < tolerance
    assert np.abs(products["update"] - exact).max() > 100 * tolerance  # bfloat16 keeps 8 bits of mantissa
    for phase in ("collect", "after"):
        assert np.abs(products[phase] - exact).max() < tolerance, phase


def test_bf16_is_reported_supported_exactly_where_products_take_rounded_inputs():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((256, 256), dtype=np.float32), rng.standard_normal((256, 256), dtype=np.float32)
    precision = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        product = (torch.from_numpy(x) @ torch.from_numpy(w)).double().numpy()
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = precision
    exact = x.astype(np.float64) @ w.astype(np.float64)
    tolerance = 1e-5 * np.abs(exact).max()
    takes_rounded = np.abs(product - bfloat16_values(x) @ bfloat16_values(w)).max() < tolerance
    assert takes_rounded == train_lib.bf16_matmul_supported()
    assert takes_rounded or np.abs(product - exact).max() < tolerance


def test_ieee_update_multiplies_exactly(monkeypatch):
    products, x, w = products_while(Trainer(config.load("toy_reach").with_overrides(QUIET)), monkeypatch)
    exact = x.astype(np.float64) @ w.astype(np.float64)
    for phase, product in products.items():
        assert np.abs(product - exact).max() < 1e-5 * np.abs(exact).max(), phase


def short_run(name: str, precision: str) -> list[dict]:
    # ToyReach: 5 iterations of 640 steps; its MADDPG config: 10 of 160, updating after the 1,000-step warm-up.
    steps = {"toy_reach": 3200, "toy_reach_maddpg": 1600}[name]
    overrides = [f"run.update_matmul_precision={precision}", f"run.num_env_steps={steps}", "run.eval_interval=0"]
    return Trainer(config.load(name).with_overrides(QUIET + overrides)).train()


@needs_bf16
@pytest.mark.parametrize("name", ["toy_reach", "toy_reach_maddpg"])
def test_bf16_runs_repeat_exactly_and_differ_from_ieee(name):
    first, second = short_run(name, "bf16"), short_run(name, "bf16")
    assert first == second
    assert first != short_run(name, "ieee")


@needs_bf16
@pytest.mark.parametrize(("name", "overrides"), [
    pytest.param("toy_reach", ["run.num_env_steps=20480"], id="happo"),
    pytest.param("toy_reach_maddpg", ["algo.name=hatd3"], id="hatd3"),
])
def test_solves_toy_reach_with_bf16_updates(name, overrides, toy_reach_returns):
    trainer = Trainer(config.load(name).with_overrides(QUIET + overrides + ["run.update_matmul_precision=bf16"]))
    trainer.train()
    learned = trainer.evaluate(200)
    idle, optimum = toy_reach_returns
    assert learned > idle + 0.9 * (optimum - idle), (learned, idle, optimum)


def test_bf16_on_a_cpu_without_it_and_unknown_precisions_are_refused(monkeypatch):
    monkeypatch.setattr(train_lib, "bf16_matmul_supported", lambda: False)
    with pytest.raises(ConfigError, match="run.update_matmul_precision bf16 needs oneDNN's bfloat16 matrix products"):
        Trainer(config.load("toy_reach").with_overrides(QUIET + ["run.update_matmul_precision=bf16"]))
    with pytest.raises(ConfigError, match=r"run.update_matmul_precision.*one of ieee, bf16.*'tf32'"):
        config.load("toy_reach").with_overrides(["run.update_matmul_precision=tf32"])
