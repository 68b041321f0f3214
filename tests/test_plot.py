"""plot-schedule: the expression language is safe (only scheduler calls on literals), the simulated schedule is
torch's, and the command writes a real image (matplotlib's Agg canvas, no display needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.optim import lr_scheduler as ref_sched

from optimlab import plot
from optimlab.optim import lr_scheduler

SEQUENTIAL = ("SequentialLR([LinearLR(start_factor=0.1, total_iters=10), CosineAnnealingLR(T_max=90)], "
              "milestones=[10])")
CHAINED = "ChainedScheduler([ConstantLR(factor=0.1, total_iters=20), ExponentialLR(gamma=0.97)])"
ONECYCLE = "OneCycleLR(max_lr=0.1, total_steps=1000)"
PLATEAU = "ReduceLROnPlateau(patience=2, factor=0.5, cooldown=1, min_lr=[0.02, 0.0001])"
METRICS = [1.0, 0.9, 0.85, 0.86, 0.86, 0.86, 0.87, 0.86, 0.86, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def test_the_schedulers_the_plots_use_exist():
    """The plot tests below use these; a missing one must fail loudly, not skip."""
    for name in ("StepLR", "OneCycleLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR"):
        assert name in plot.scheduler_classes(), name
        assert hasattr(lr_scheduler, name)
    assert "SWALR" in plot.scheduler_classes()


# ------------------------------------------------------------------------------------- parse safety


@pytest.mark.parametrize("expr,message", [
    ("__import__('os')", "unknown scheduler '__import__'"),
    ("__import__('os').system('touch /tmp/optimlab-pwned')", "only scheduler names may be called"),
    ("StepLR(step_size=__import__('os').getpid())", "only scheduler names may be called"),
    ("StepLR(step_size=__import__('os'))", "unknown scheduler '__import__'"),
    ("StepLR.__subclasses__()", "only scheduler names may be called"),
    ("StepLR(step_size=optimizer.param_groups)", "attribute access"),
    ("StepLR(step_size=(1).__class__)", "attribute access"),
    ("StepLR(step_size=x)", "unknown name 'x'"),
    ("Foo(1)", "unknown scheduler 'Foo'"),
    ("eval('1')", "unknown scheduler 'eval'"),
    ("StepLR(step_size=1+1)", "arithmetic operators"),
    ("StepLR(step_size=[1][0])", "indexing"),
    ("LambdaLR(lr_lambda=lambda e: 0.9 ** e)", "lambda"),
    ("StepLR(*[3])", "'*' unpacking"),
    ("StepLR(**{'step_size': 3})", "'**' unpacking"),
    ("StepLR(step_size=[i for i in range(3)])", "ListComp"),
    ("StepLR(step_size=b'3')", "literal of type bytes"),
    ("StepLR(step_size=-'3')", "numbers only"),
    ("StepLR(step_size=StepLR)", "StepLR must be called"),
    ("[StepLR(step_size=3)]", "must be a scheduler call"),
    ("3", "must be a scheduler call"),
    ("StepLR(step_size=3", "not a valid expression"),
    ("StepLR(step_size=3); import os", "not a valid expression"),
    ("StepLR(step_size=(y := 3))", "NamedExpr"),
])
def test_unsafe_or_unknown_expressions_are_rejected(expr, message):
    opt = plot.make_optimizer("SGD", (0.1,))
    with pytest.raises(plot.ScheduleExprError) as err:
        plot.build(expr, opt)
    assert message in str(err.value)
    assert not Path("/tmp/optimlab-pwned").exists()


def test_expression_size_is_bounded():
    with pytest.raises(plot.ScheduleExprError, match="longer than"):
        plot.build("StepLR(step_size=3" + " " * plot.MAX_EXPR_CHARS + ")", plot.make_optimizer("SGD", (0.1,)))


def test_literals_and_injection():
    opt = plot.make_optimizer("SGD", (0.1, 0.2))
    s = plot.build("MultiStepLR(milestones=(3, 7), gamma=+0.5, last_epoch=-1)", opt)
    assert isinstance(s, lr_scheduler.MultiStepLR) and s.optimizer is opt and s.gamma == 0.5
    explicit = plot.build("StepLR(optimizer, step_size=4)", opt)  # the optimizer may be written out
    assert explicit.optimizer is opt
    chained = plot.build(CHAINED, opt)  # ChainedScheduler takes the optimizer as a keyword
    assert chained.optimizer is opt and all(s.optimizer is opt for s in chained._schedulers)
    with pytest.raises(plot.ScheduleExprError, match="StepLR.*raised TypeError"):
        plot.build("StepLR(gamma=0.5)", opt)  # the scheduler's own errors name the call


# ------------------------------------------------------------------------------------- the schedule


def torch_trace(build, steps, lrs, kind="SGD", metrics=None):
    """The same schedule run with torch's scheduler classes on torch-style param groups."""
    defaults = plot.OPTIMIZER_DEFAULTS[kind]
    opt = plot._GroupsOnly(lrs, defaults)
    sched = build(opt)
    lr, mom = [], []
    for k in range(steps):
        if k:
            opt.step()
            sched.step(metrics[k - 1]) if metrics else sched.step()
        lr.append([g["lr"] for g in opt.param_groups])
        mom.append([g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups])
    return [list(c) for c in zip(*lr, strict=True)], [list(c) for c in zip(*mom, strict=True)]


@pytest.mark.parametrize("expr,build,steps,lrs,kind,metrics", [
    (ONECYCLE, lambda o: ref_sched.OneCycleLR(o, max_lr=0.1, total_steps=1000), None, (0.1,), "SGD", None),
    (SEQUENTIAL, lambda o: ref_sched.SequentialLR(
        o, [ref_sched.LinearLR(o, start_factor=0.1, total_iters=10), ref_sched.CosineAnnealingLR(o, T_max=90)],
        milestones=[10]), 120, (0.1, 0.01), "SGD", None),
    (CHAINED, lambda o: ref_sched.ChainedScheduler(
        [ref_sched.ConstantLR(o, factor=0.1, total_iters=20), ref_sched.ExponentialLR(o, gamma=0.97)],
        optimizer=o), 60, (0.05,), "SGD", None),
    ("CyclicLR(base_lr=0.001, max_lr=0.1, step_size_up=50, mode='triangular2')",
     lambda o: ref_sched.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=50, mode="triangular2"),
     400, (0.1,), "Adam", None),
    (PLATEAU, lambda o: ref_sched.ReduceLROnPlateau(o, patience=2, factor=0.5, cooldown=1, min_lr=[0.02, 0.0001]),
     None, (0.1, 0.01), "SGD", METRICS),
])
def test_simulated_schedule_is_torchs(expr, build, steps, lrs, kind, metrics):
    trace = plot.simulate(expr, steps, lrs, kind, metrics)
    n = steps or (len(metrics) + 1 if metrics else 1000)
    assert trace.steps == list(range(n))
    ref_lrs, ref_mom = torch_trace(build, n, lrs, kind, metrics)
    for ours, ref in zip(trace.lrs, ref_lrs, strict=True):
        assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)  # the scheduler parity tolerance
    cycles = any(row != ref_mom[0][:1] * len(row) for row in ref_mom)
    assert (trace.momenta is not None) == cycles
    if cycles:
        assert trace.momentum_name.startswith("β1" if kind == "Adam" else "momentum")
        for ours, ref in zip(trace.momenta, ref_mom, strict=True):
            assert ours == pytest.approx(ref, rel=1e-12)
    assert len(set(trace.lrs[0])) > 2  # the schedule actually moves


def test_simulate_input_errors():
    with pytest.raises(plot.ScheduleExprError, match="follows a metric"):
        plot.simulate("ReduceLROnPlateau()")
    with pytest.raises(plot.ScheduleExprError, match="takes no metrics"):
        plot.simulate("StepLR(step_size=3)", metrics=[1.0])
    with pytest.raises(plot.ScheduleExprError, match="need 9 metric values"):
        plot.simulate("ReduceLROnPlateau()", steps=10, metrics=[1.0, 2.0])
    with pytest.raises(plot.ScheduleExprError, match="OneCycleLR.step.. raised ValueError at step 101"):
        plot.simulate("OneCycleLR(max_lr=0.1, total_steps=100)", steps=200)
    with pytest.raises(ValueError, match="unknown optimizer"):
        plot.simulate("StepLR(step_size=3)", optimizer="Lion")


# ------------------------------------------------------------------------------------- the image


def png_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a drawn figure with text and curves, not an empty canvas


@pytest.mark.parametrize("args", [
    [ONECYCLE],
    [SEQUENTIAL, "--steps", "100", "--lrs", "0.1,0.01"],
    [CHAINED, "--steps", "100", "--log"],
    ["CyclicLR(base_lr=0.001, max_lr=0.1, step_size_up=50, mode='exp_range', gamma=0.995)", "--optimizer", "Adam",
     "--steps", "400"],
    ["SWALR(swa_lr=0.01, anneal_epochs=30)", "--steps", "60"],
])
def test_main_writes_png(args, tmp_path, capsys):
    out = tmp_path / "schedule.png"
    assert plot.main([*args, "--out", str(out)]) == 0
    png_ok(out)
    assert "wrote" in capsys.readouterr().out


def test_main_plateau_with_metric_file(tmp_path):
    metrics = tmp_path / "val_loss.txt"
    metrics.write_text("# validation loss\n" + "\n".join(map(str, METRICS)) + "\n\n")
    out = tmp_path / "plateau.png"
    assert plot.main([PLATEAU, "--metrics", str(metrics), "--lrs", "0.1,0.01", "--out", str(out)]) == 0
    png_ok(out)
    bad = tmp_path / "bad.txt"
    bad.write_text("1.0\nnan-ish\n")
    assert plot.main([PLATEAU, "--metrics", str(bad), "--out", str(out)]) == 2


def test_figure_panels_labels_and_legend():
    trace = plot.simulate(ONECYCLE, lrs=(0.1, 0.02))
    fig = plot.figure(trace)
    lr_ax, mom_ax = fig.axes
    assert lr_ax.get_ylabel() == "learning rate" and mom_ax.get_ylabel() == "momentum"
    assert mom_ax.get_xlabel() == "step"
    assert [t.get_text() for t in lr_ax.get_legend().get_texts()] == ["group 0 (initial lr 0.1)",
                                                                      "group 1 (initial lr 0.02)"]
    assert len(lr_ax.get_lines()) == 2 and len(mom_ax.get_lines()) == 2
    assert ONECYCLE in fig._suptitle.get_text()
    plain = plot.figure(plot.simulate("StepLR(step_size=30)", steps=100))
    assert len(plain.axes) == 1  # no momentum panel when nothing cycles it


def test_main_reports_bad_input(tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert plot.main(["__import__('os')", "--out", out]) == 2
    assert "unknown scheduler '__import__'" in capsys.readouterr().err
    assert plot.main(["StepLR(step_size=3)", "--lrs", "a,b", "--out", out]) == 2
    assert plot.main(["StepLR(step_size=3)", "--out", str(tmp_path / "missing-dir" / "x.png")]) == 2
    assert not Path(out).exists()
    assert plot.main(["--help"]) == 0


def test_missing_matplotlib_is_reported(tmp_path, monkeypatch, capsys):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)  # makes `import` raise ImportError
    assert plot.main(["StepLR(step_size=3)", "--steps", "10", "--out", str(tmp_path / "x.png")]) == 1
    assert "pip install 'optimlab[plot]'" in capsys.readouterr().err


def test_cli_entry_point(tmp_path):
    out = tmp_path / "cli.png"
    run = subprocess.run([sys.executable, "-m", "optimlab", "plot-schedule", ONECYCLE, "--steps", "200",
                          "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    png_ok(out)


def test_plotting_changes_no_torch_state():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    plot.simulate(SEQUENTIAL, 50)
    assert torch.equal(torch.rand(3), expected)


def test_fixed_switch_plots_corrected_behaviour(tmp_path):
    """torch's OneCycleLR refuses to step past total_steps; the family's corrected mode holds the final lr."""
    expr = "OneCycleLR(max_lr=0.1, total_steps=100)"
    out = tmp_path / "x.png"
    assert plot.main([expr, "--steps", "150", "--out", str(out)]) == 2
    assert plot.main([expr, "--steps", "150", "--fixed", "--out", str(out)]) == 0
    png_ok(out)
    assert not lr_scheduler.is_fixed()  # the global switch is restored
    trace = plot.simulate(expr, 150, fixed=True)
    assert trace.fixed and trace.lrs[0][100:] == [trace.lrs[0][99]] * 50


def test_step_count_is_bounded():
    with pytest.raises(plot.ScheduleExprError, match="steps must be between 1 and"):
        plot.simulate("OneCycleLR(max_lr=0.1, total_steps=10000000000)")
    with pytest.raises(plot.ScheduleExprError, match="steps must be between 1 and"):
        plot.simulate("StepLR(step_size=3)", steps=0)
