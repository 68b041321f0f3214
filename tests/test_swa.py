"""swa_utils against torch's: AveragedModel (SWA/EMA, per-tensor and list averaging functions, with and
without buffers) and update_bn on a small BatchNorm model, bit for bit; SWALR errors, closed form and
state dicts. SWALR's stepped sequence is also in the scheduler parity catalogue (optimlab/catalog/swa.py)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from _util import checkpoint_roundtrip
from torch.optim import swa_utils as ref_swa

from optimlab import optim
from optimlab.optim import swa_utils as swa


def small_model(dtype: torch.dtype, device: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3),
    ).to(device=device, dtype=dtype)


def perturb(model: torch.nn.Module, gen: torch.Generator, dtype: torch.dtype, device: str) -> None:
    """A stand-in for a training step: move the weights and update BatchNorm statistics."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=dtype).to(device), alpha=0.1)
    model.train()
    model(torch.randn(8, 4, generator=gen, dtype=dtype).to(device))


def same_outcome(ours, ref) -> bool:
    """Run both; if torch raises, ours must raise the same type (returns False); else returns True."""
    try:
        ref()
    except Exception as e:  # noqa: BLE001 - whatever torch raises is the contract
        with pytest.raises(type(e)):
            ours()
        return False
    ours()
    return True


# (name, kwargs for ours, kwargs for torch's)
AVERAGING = {
    "swa-default": ({}, {}),
    "ema-multi": ({"multi_avg_fn": swa.get_ema_multi_avg_fn(0.9)},
                  {"multi_avg_fn": ref_swa.get_ema_multi_avg_fn(0.9)}),
    "ema-single": ({"avg_fn": swa.get_ema_avg_fn(0.75)}, {"avg_fn": ref_swa.get_ema_avg_fn(0.75)}),
    "swa-multi": ({"multi_avg_fn": swa.get_swa_multi_avg_fn()}, {"multi_avg_fn": ref_swa.get_swa_multi_avg_fn()}),
    "swa-single": ({"avg_fn": swa.get_swa_avg_fn()}, {"avg_fn": ref_swa.get_swa_avg_fn()}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("use_buffers", [False, True], ids=["params", "buffers"])
@pytest.mark.parametrize("name", list(AVERAGING))
def test_averaged_model_equals_torch(name, use_buffers, dtype, device):
    ours_kw, ref_kw = AVERAGING[name]
    model = small_model(dtype, device)
    ours = swa.AveragedModel(model, use_buffers=use_buffers, **ours_kw)
    ref = ref_swa.AveragedModel(model, use_buffers=use_buffers, **ref_kw)
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        perturb(model, gen, dtype, device)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        if not same_outcome(lambda: ours.update_parameters(model), lambda: ref.update_parameters(model)):
            # torch raises here (list SWA over the integer num_batches_tracked buffer hits integer addcdiv);
            # ours raised the same exception type
            assert step == 1 and name == "swa-multi" and use_buffers
            return
        sd_o, sd_r = ours.state_dict(), ref.state_dict()
        assert list(sd_o) == list(sd_r)
        for key in sd_r:
            assert sd_o[key].dtype == sd_r[key].dtype, key
            assert torch.equal(sd_o[key], sd_r[key]), f"step {step}: {key}"
        for key, value in model.state_dict().items():  # the source model is left alone
            assert torch.equal(value, before[key])
    assert int(ours.n_averaged) == 6
    # the average really moved away from the live model (the test would catch a no-op)
    assert not torch.equal(ours.module[0].weight, model[0].weight)
    x = torch.randn(5, 4, dtype=dtype, device=device)
    ours.eval()
    ref.eval()
    assert torch.equal(ours(x), ref(x))


def test_averaged_model_checkpoints_interchange(device):
    model = small_model(torch.float32, device)
    gen = torch.Generator().manual_seed(3)
    ref = ref_swa.AveragedModel(model, multi_avg_fn=ref_swa.get_ema_multi_avg_fn(0.5), use_buffers=True)
    for _ in range(3):
        perturb(model, gen, torch.float32, device)
        ref.update_parameters(model)
    ckpt = checkpoint_roundtrip(ref.state_dict())
    ours = swa.AveragedModel(small_model(torch.float32, device, seed=9), multi_avg_fn=swa.get_ema_multi_avg_fn(0.5),
                             use_buffers=True)
    ours.load_state_dict(ckpt)
    perturb(model, gen, torch.float32, device)
    ref.update_parameters(model)
    ours.update_parameters(model)
    back = ref_swa.AveragedModel(small_model(torch.float32, device, seed=5))
    back.load_state_dict(ours.state_dict())  # and the reverse direction, strict
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
        assert torch.equal(back.state_dict()[key], value), key


def test_averaged_model_device_argument(device):
    model = small_model(torch.float64, "cpu")
    ours = swa.AveragedModel(model, device=device)
    assert ours.n_averaged.device.type == torch.device(device).type
    assert all(p.device.type == torch.device(device).type for p in ours.parameters())
    ours.update_parameters(model)
    assert torch.equal(ours.module[0].weight.cpu(), model[0].weight)


def test_averaged_model_rejects_both_functions():
    model = small_model(torch.float32, "cpu")
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
        swa.AveragedModel(model, avg_fn=swa.get_swa_avg_fn(), multi_avg_fn=swa.get_swa_multi_avg_fn())


@pytest.mark.parametrize("getter", ["get_ema_avg_fn", "get_ema_multi_avg_fn"])
@pytest.mark.parametrize("decay", [-0.1, 1.5])
def test_ema_decay_range(getter, decay):
    with pytest.raises(ValueError) as ref_err:
        getattr(ref_swa, getter)(decay)
    with pytest.raises(ValueError) as err:
        getattr(swa, getter)(decay)
    assert str(err.value) == str(ref_err.value)


def test_averaging_functions_on_integer_tensors():
    """Integer tensors take the non-lerp branches (foreach lerp handles float/complex only). torch's list SWA
    raises there (integer add with a float alpha, integer addcdiv); ours must raise the same; EMA truncates."""
    cases = [("swa", swa.get_swa_multi_avg_fn(), ref_swa.get_swa_multi_avg_fn()),
             ("ema", swa.get_ema_multi_avg_fn(0.5), ref_swa.get_ema_multi_avg_fn(0.5))]
    for name, ours_fn, ref_fn in cases:
        for n in (3, torch.tensor(3)):
            a_o, a_r = [torch.tensor([10, 20, 31])], [torch.tensor([10, 20, 31])]
            cur = [torch.tensor([2, 4, 6])]
            ran = same_outcome(lambda: ours_fn(a_o, cur, n), lambda: ref_fn(a_r, cur, n))
            assert ran == (name == "ema")
            assert torch.equal(a_o[0], a_r[0])
            if ran:
                assert not torch.equal(a_o[0], torch.tensor([10, 20, 31]))


def loader_batches(kind: str, dtype: torch.dtype) -> list:
    gen = torch.Generator().manual_seed(7)
    xs = [torch.randn(16, 4, generator=gen, dtype=dtype) * 3 + 1 for _ in range(4)]
    if kind == "tensors":
        return xs
    return [(x, torch.zeros(16)) for x in xs] if kind == "tuples" else [[x, torch.zeros(16)] for x in xs]


@pytest.mark.parametrize("kind", ["tensors", "tuples", "lists"])
@pytest.mark.parametrize("training", [False, True])
def test_update_bn_equals_torch(kind, training, device):
    dtype = torch.float64
    ours_model, ref_model = small_model(dtype, device), small_model(dtype, device)
    for m in (ours_model, ref_model):
        m[1].momentum = 0.3
        m.train(training)
    batches = loader_batches(kind, dtype)
    swa.update_bn(batches, ours_model, device=device)
    ref_swa.update_bn(batches, ref_model, device=device)
    for key, value in ref_model.state_dict().items():
        assert torch.equal(ours_model.state_dict()[key], value), key
    assert ours_model[1].momentum == 0.3 and ours_model.training == training
    assert int(ours_model[1].num_batches_tracked) == 4
    # the statistics are the cumulative average of the batches' statistics, not a momentum average
    means = [ours_model[0](b if kind == "tensors" else b[0]).mean(0).detach() for b in batches]
    torch.testing.assert_close(ours_model[1].running_mean, torch.stack(means).mean(0), rtol=1e-12, atol=1e-12)


def test_update_bn_on_averaged_model_and_without_bn():
    model = small_model(torch.float32, "cpu")
    avg = swa.AveragedModel(model)
    avg.update_parameters(model)
    batches = loader_batches("tensors", torch.float32)
    swa.update_bn(batches, avg)
    assert int(avg.module[1].num_batches_tracked) == 4
    plain = torch.nn.Linear(4, 2)
    before = plain.weight.clone()
    swa.update_bn(batches, plain)  # no BatchNorm: nothing happens
    assert torch.equal(plain.weight, before)


# ----------------------------------------------------------------------------------------- SWALR


def optimizer(lrs=(0.1,)) -> torch.optim.Optimizer:
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0], momentum=0.9)


@pytest.mark.parametrize("kwargs", [
    {"swa_lr": 0.05, "anneal_strategy": "exp"},
    {"swa_lr": 0.05, "anneal_strategy": "Cos"},
    {"swa_lr": 0.05, "anneal_strategy": ["cos"]},
    {"swa_lr": 0.05, "anneal_epochs": -1},
    {"swa_lr": 0.05, "anneal_epochs": 2.5},
    {"swa_lr": 0.05, "anneal_epochs": "10"},
    {"swa_lr": [0.05, 0.01]},
    {"swa_lr": []},
])
def test_swalr_errors_match_torch(kwargs):
    with pytest.raises(Exception) as ref_err:
        ref_swa.SWALR(optimizer(), **kwargs)
    with pytest.raises(Exception) as err:
        swa.SWALR(optimizer(), **kwargs)
    assert type(err.value) is type(ref_err.value)
    assert str(err.value) == str(ref_err.value)


def test_swalr_resume_without_initial_lr_raises_keyerror():
    with pytest.raises(KeyError):
        swa.SWALR(optimizer(), swa_lr=0.1, last_epoch=3)


def test_swalr_validates_before_touching_the_optimizer():
    opt = optimizer()
    with pytest.raises(ValueError):
        swa.SWALR(opt, swa_lr=0.05, anneal_strategy="exp")
    assert "swa_lr" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 10, 2500])
def test_swalr_lr_at_matches_stepped_sequence(strategy, anneal_epochs):
    lrs, swa_lrs = (0.1, 1.0, 0.003), [0.05, 0.001, 0.3]
    opt = optimizer(lrs)
    sched = swa.SWALR(opt, swa_lr=swa_lrs, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    for k in range(10_001):
        if k:
            opt.step()
            sched.step()
        for lr, closed, base in zip(sched.get_last_lr(), sched.lr_at(k), lrs, strict=True):
            # the recursion inverts the previous step exactly in real arithmetic; rounding stays ~1e-15
            assert abs(lr - closed) <= 1e-9 * base, (k, lr, closed)
    assert sched.get_last_lr() == pytest.approx(swa_lrs, rel=1e-12)


def test_swalr_closed_form_values():
    opt = optimizer((0.2,))
    sched = swa.SWALR(opt, swa_lr=0.04, anneal_epochs=4, anneal_strategy="cos")
    state = dict(sched.state_dict())
    got = [sched.lr_at(k)[0] for k in range(7)]
    assert sched.state_dict() == state  # lr_at changes nothing
    expected = [0.04 * a + 0.2 * (1 - a) for a in ((1 - math.cos(math.pi * min(1, k / 4))) / 2 for k in range(7))]
    assert got == pytest.approx(expected, rel=1e-15)
    assert got[0] == pytest.approx(0.2) and got[2] == pytest.approx(0.12) and got[4:] == pytest.approx([0.04] * 3)


def test_swalr_lr_at_starts_from_the_lr_it_was_built_with():
    """In the usual recipe another scheduler has already moved the lr; SWALR anneals from there."""
    opt = optimizer((0.1,))
    first = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(5):
        opt.step()
        first.step()
    start = opt.param_groups[0]["lr"]
    assert start != 0.1
    sched = swa.SWALR(opt, swa_lr=0.001, anneal_epochs=6, anneal_strategy="linear")
    assert sched.lr_at(0) == [pytest.approx(start, rel=1e-15)]
    for k in range(1, 10):
        opt.step()
        sched.step()
        assert sched.get_last_lr()[0] == pytest.approx(sched.lr_at(k)[0], rel=1e-12)


@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
def test_swalr_state_dict_interchanges_mid_schedule(direction):
    src_cls, dst_cls = (ref_swa.SWALR, swa.SWALR) if direction == "torch->ours" else (swa.SWALR, ref_swa.SWALR)
    src_opt, dst_opt = optimizer((0.1, 0.02)), optimizer((0.1, 0.02))
    src = src_cls(src_opt, swa_lr=[0.01, 0.05], anneal_epochs=30)
    for _ in range(12):
        src_opt.step()
        src.step()
    ckpt = checkpoint_roundtrip(src.state_dict())
    dst = dst_cls(dst_opt, swa_lr=[0.01, 0.05], anneal_epochs=30)
    dst.load_state_dict(ckpt)
    for g_dst, g_src in zip(dst_opt.param_groups, src_opt.param_groups, strict=True):
        g_dst["lr"] = g_src["lr"]  # the optimizer's own state dict would carry this
    for _ in range(40):
        src_opt.step()
        src.step()
        dst_opt.step()
        dst.step()
        assert dst.get_last_lr() == src.get_last_lr()
    ours = dst if direction == "torch->ours" else src
    assert ours.lr_at(52) == pytest.approx(ours.get_last_lr(), rel=1e-12)
    if direction == "torch->ours":  # torch's state lacks the start lr; it was recovered mid-annealing
        assert ours._anneal_from == pytest.approx([0.1, 0.02], rel=1e-12)


def test_swalr_state_dict_keys_match_torch():
    ours = swa.SWALR(optimizer(), swa_lr=0.05).state_dict()
    ref = ref_swa.SWALR(optimizer(), swa_lr=0.05).state_dict()
    assert set(ours) - set(ref) == {"_anneal_from"}
    assert set(ref) <= set(ours)


def test_swalr_get_lr_outside_step_warns():
    sched = swa.SWALR(optimizer(), swa_lr=0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched.get_lr()
    assert any(issubclass(w.category, UserWarning) and "get_last_lr" in str(w.message) for w in caught)


@pytest.mark.parametrize("name", ["swa-default", "ema-multi", "ema-single"])
def test_averaged_model_mixed_dtypes(name):
    """Parameters of several dtypes are averaged per (device, dtype) bucket, as torch groups them."""
    ours_kw, ref_kw = AVERAGING[name]
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 3).double(), "b": torch.nn.Linear(3, 2),
                                 "c": torch.nn.Linear(2, 2).double()})
    ours, ref = swa.AveragedModel(model, **ours_kw), ref_swa.AveragedModel(model, **ref_kw)
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1).add_(0.01)
        ours.update_parameters(model)
        ref.update_parameters(model)
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
        assert ours.state_dict()[key].dtype == value.dtype


def test_swalr_step_with_epoch_as_torch():
    """torch's SWALR has no closed form: step(epoch) warns (deprecated) and still runs the recursive form."""
    opts = optimizer((0.1, 0.5)), optimizer((0.1, 0.5))
    scheds = swa.SWALR(opts[0], swa_lr=0.02, anneal_epochs=5), ref_swa.SWALR(opts[1], swa_lr=0.02, anneal_epochs=5)
    for epoch in (3, 1, 7, 7, 2):
        caught = []
        for opt, sched in zip(opts, scheds, strict=True):
            opt.step()
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                sched.step(epoch)
            caught.append(sorted((x.category.__name__, str(x.message)) for x in w))
        assert caught[0] == caught[1] and caught[0]
        assert scheds[0].get_last_lr() == scheds[1].get_last_lr()
        assert scheds[0].last_epoch == scheds[1].last_epoch == epoch
