"""Tailor accuracy: teacher, Skip Remover, Skip Shortener and no-skip-from-scratch.

For every (dataset, model, seed): a long-skip teacher is trained; Skip Remover and Skip
Shortener retrain a student from it under KD; the same architecture without skips is
trained from scratch. All four runs get the same epoch budget. Test accuracy is
reported as mean +- std over the seeds that finished, and every cell says how many.

Each run lives in its own directory under --work and is resumed or skipped on rerun,
so the grid can be filled in over several invocations.

    python benchmarks/tailor_accuracy.py                          # the full grid
    python benchmarks/tailor_accuracy.py --datasets digits --models resnet8 --seeds 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from skipswitch.checkpoint import atomic_write_text
from skipswitch.jobs.training import TailorJob
from skipswitch.models import create_model
from skipswitch.tailor import AlterationSchedule, run_tailor
from skipswitch.tailor.schedule import recommended_every
from skipswitch.training import TrainConfig
from skipswitch.training.run import train_model

VARIANTS = ("teacher", "shortener", "remover", "scratch")
TARGETS = {"shortener": 0.5, "remover": 1.5}  # points below the teacher, from the issue


def skip_count(model: str) -> int:
    return len(create_model(model, num_classes=10, in_channels=1, input_size=8).blocks())


def alteration_every(model: str, epochs: int) -> int:
    return recommended_every(skip_count(model), epochs)


def epochs_for(budget: dict[str, int], dataset: str, model: str) -> int:
    """The cell's budget: a ``dataset/model`` entry overrides the dataset's."""
    for key in (f"{dataset}/{model}", dataset):
        if key in budget:
            return budget[key]
    raise SystemExit(f"error: --epochs gives no budget for {dataset}/{model}; add {dataset}=N or {dataset}/{model}=N")


def pace_warning(dataset: str, model: str, epochs: int) -> str | None:
    """The tailor job's own advice when the cell's alterations run past two thirds of its epochs."""
    net = create_model(model, num_classes=10, in_channels=1, input_size=8)
    advice = AlterationSchedule(net, "remove", recommended_every(len(net.blocks()), epochs)).pace_advice(epochs)
    return f"warning: {dataset}/{model}: {advice}" if advice else None


def schedule_misfit(dataset: str, model: str, epochs: int) -> str | None:
    """Why the students' schedule cannot run in ``epochs`` (checked before any training: a
    student would otherwise fail only after its teacher and scratch runs had been trained)."""
    skips = skip_count(model)
    every = recommended_every(skips, epochs)
    if skips * every < epochs:
        return None
    return (f"{dataset}/{model}: {skips} skips altered every {every} epoch(s) need more than {skips * every} "
            f"epochs, the budget is {epochs}; give the cell its own, e.g. --epochs ...,{dataset}/{model}={3 * skips // 2 + 1}")


# The Tailor settings of every student: the tailor job's defaults (KD, warm-up, clipping, BN
# recalibration; docs/tailor.md), so the benchmark measures what `skipswitch tailor` does.
TAILOR = {name: field.default for name, field in TailorJob.model_fields.items()}


def run_cell(work: Path, dataset: str, model: str, seed: int, epochs: int, tailor_lr: float,
             train: bool = True, teacher_warmup: int = 0, amp: str = "off",
             variants: tuple[str, ...] = VARIANTS, teacher_zero_init: bool = False,
             channels_last: bool = False) -> dict[str, float]:
    """Train the four variants (or reuse finished runs); return test accuracy per variant.
    With ``train=False`` only finished runs are read; only ``variants`` are trained, the others read
    if they have finished (so one seed's runs can go to several processes)."""
    base = work / dataset / model / f"seed{seed}"
    teacher_cfg = TrainConfig(epochs=epochs, lr=0.1, seed=seed, warmup_epochs=teacher_warmup, amp=amp,
                              channels_last=channels_last)
    student_cfg = TrainConfig(epochs=epochs, lr=tailor_lr, seed=seed, amp=amp, channels_last=channels_last)
    every = alteration_every(model, epochs)
    settings = {k: TAILOR[k] for k in ("kd", "alpha", "temperature", "warmup_steps", "clip",
                                               "recalibrate_batches", "fade_steps")}

    def student(method: str):
        return lambda d: run_tailor(base / "teacher" / "model.safetensors", method, config=student_cfg, out_dir=d,
                                    every=every, quiet=True, resume=True, **settings)

    jobs = {
        "teacher": lambda d: train_model(model, dataset, config=teacher_cfg, out_dir=d, quiet=True, resume=True,
                                         zero_init_residual=teacher_zero_init),
        "scratch": lambda d: train_model(model, dataset, config=teacher_cfg, out_dir=d, skip_mode="none",
                                         quiet=True, resume=True),
        "remover": student("remove"),
        "shortener": student("shorten"),
    }
    accs = {}
    for variant in ("teacher", "scratch", "remover", "shortener"):
        run_dir = base / variant
        results = run_dir / "results.json"
        finished = json.loads(results.read_text()) if results.exists() else {}
        done = finished.get("status") == "ok" and (run_dir / "model.safetensors").exists()
        if done and (trained := finished["train_config"]["epochs"]) != epochs:
            raise SystemExit(f"error: {run_dir} was trained for {trained} epochs, this cell's budget is {epochs}; "
                             "move it away or give another --work")
        if done and variant == "teacher" and finished.get("zero_init_residual", False) != teacher_zero_init:
            raise SystemExit(f"error: {run_dir} was trained {'with' if not teacher_zero_init else 'without'} "
                             "--teacher-zero-init-residual, this grid asks otherwise; give another --work")
        if done and (precision := finished["train_config"].get("amp", "off")) != amp:
            raise SystemExit(f"error: {run_dir} was trained with --amp {precision}, this grid asks for {amp}; "
                             "give another --work")
        if not done and not (train and variant in variants):
            continue
        if not done and variant in ("remover", "shortener") and "teacher" not in accs:
            raise SystemExit(f"error: the {variant} of {base} needs its teacher, which has not finished; "
                             "train it first (--variants teacher)")
        if not done:
            start = time.perf_counter()
            jobs[variant](run_dir)
            print(f"  {dataset} {model} seed {seed} {variant}: {time.perf_counter() - start:.0f} s", flush=True)
        accs[variant] = json.loads(results.read_text())["test_acc"] * 100
    return accs


def fmt(values: list[float]) -> str:
    if not values:
        return "not run"
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n={len(values)})"


def write_report(path: Path, grid: dict, args, command: str) -> None:
    kd_term = f"KL(T={TAILOR['temperature']})" if TAILOR["kd"] == "kl" else f"{TAILOR['kd'].upper()}(logits)"
    lines = [
        "# Tailor accuracy: teacher vs Skip Shortener vs Skip Remover vs no-skip from scratch",
        "",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU"
        + ("" if args.report_only else f" (torch CPU threads: {__import__('torch').get_num_threads()};"
           f" load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}, the machine shared)"),
        f"- Command: `{command}`",
        f"- Protocol: every variant gets the same epoch budget per dataset or dataset/model cell ({', '.join(f'{d}: {e}' for d, e in args.epoch_budget.items())});"
        " teacher and scratch: SGD lr 0.1, Nesterov 0.9, wd 1e-4, cosine, batch 64"
        + (f", lr warm-up over the first {args.teacher_warmup_epochs} epochs" if args.teacher_warmup_epochs else "")
        + ("; the teachers' blocks start as their skips (last BN scale 0, Goyal et al. 2017)"
           if args.teacher_zero_init_residual else "")
        + (f"; every run under {args.amp} autocast (mixed precision)" if args.amp != "off" else "") + "; Tailor students start from"
        f" the teacher, KD = {TAILOR['alpha']}*{kd_term}+{1 - TAILOR['alpha']:.2f}*CE, lr {args.tailor_lr},"
        f" warm-up {TAILOR['warmup_steps']} steps after each alteration, gradient norm clipped to"
        f" {TAILOR['clip']}, BN statistics recomputed over {TAILOR['recalibrate_batches']} batches"
        f" after each alteration, Remover: each skip faded out over {TAILOR['fade_steps']} steps before its removal,"
        " one skip altered every max(1, (2*epochs//3)//blocks) epochs from the input side,"
        " then training continues.",
        "- Test accuracy in percent, mean ± std over seeds (n = seeds finished). Splits: seeded, stratified"
        " 72/8/20 train/val/test.",
        *(["- Assembled with --report-only from the finished runs in "
           f"`{args.work}`, each trained by this script (it caches every run and resumes a partial one)."]
          if args.report_only else []),
        "",
        "| dataset | model | teacher | Shortener | Remover | no-skip scratch | Shortener − teacher | Remover − teacher | targets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    misses = []
    for (dataset, model), cell in grid.items():
        means = {v: statistics.mean(cell[v]) if cell[v] else None for v in VARIANTS}
        row = [dataset, model] + [fmt(cell[v]) for v in VARIANTS]
        verdicts = []
        for variant in ("shortener", "remover"):
            if means[variant] is None or means["teacher"] is None:
                row.append("–")
                continue
            gap = means[variant] - means["teacher"]
            row.append(f"{gap:+.2f}")
            ok = gap >= -TARGETS[variant]
            verdicts.append(f"{variant} {'met' if ok else 'MISSED'}")
            if not ok:
                misses.append(f"{dataset}/{model}: {variant} is {-gap:.2f} points below its teacher "
                              f"(target: within {TARGETS[variant]})")
        if model == "resnet56" and means["scratch"] is not None:
            for variant in ("shortener", "remover"):
                if means[variant] is not None:
                    ok = means[variant] > means["scratch"]
                    verdicts.append(f"{variant}>scratch {'met' if ok else 'MISSED'}")
                    if not ok:
                        misses.append(f"{dataset}/{model}: {variant} ({means[variant]:.2f}) is not above "
                                      f"no-skip-from-scratch ({means['scratch']:.2f})")
        row.append(", ".join(verdicts) or "–")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Misses", ""]
    lines += [f"- {m}" for m in misses] or ["- none among the cells that ran"]
    no_teacher = [f"{d}/{m}" for (d, m), cell in grid.items() if not cell["teacher"]]
    if no_teacher:  # no gap to judge (with --variants a cell may hold other finished runs)
        lines += ["", "Cells without a finished teacher: " + ", ".join(no_teacher) + "."]
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,mnist5k")
    parser.add_argument("--models", default="resnet8,resnet20,resnet56")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", default="digits=40,mnist5k=20,mnist5k/resnet56=40",
                        help="per-dataset epoch budget; a dataset/model entry overrides it for that cell (resnet56 "
                             "has 27 skips: one altered per epoch needs more than 27 epochs)")
    parser.add_argument("--tailor-lr", type=float, default=TAILOR["lr"])
    parser.add_argument("--teacher-warmup-epochs", type=int, default=0,
                        help="teacher and scratch: the learning rate rises linearly over this many epochs (Goyal et al. "
                             "2017); the wide ResNets' rows use 2 (docs/tailor.md)")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                        help="mixed precision of every run (on a CPU with AMX, bf16 trains a torchvision ResNet-18 "
                             "~2.3x faster than fp32)")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format for every run: a runtime setting (a run may resume with or without "
                             "it); with bf16 on an AMX CPU a torchvision:resnet50 step at 32x32 runs ~1.5x faster")
    parser.add_argument("--teacher-zero-init-residual", action="store_true",
                        help="start every teacher block as its skip (last BN scale 0, Goyal et al. 2017); a CIFAR-style "
                             "torchvision:resnet50 blows up in its first epoch without it (docs/tailor.md)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="train only these (the others are read if finished), e.g. to run one seed's teacher and "
                             "scratch in two processes, then its remover and shortener")
    parser.add_argument("--skip", default="", help="dataset/model cells to leave out, e.g. mnist5k/resnet56")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_tailor"))
    parser.add_argument("--report-only", action="store_true", help="train nothing; report the runs that finished")
    parser.add_argument("--out", type=Path, default=Path("docs/results/tailor_accuracy.md"))
    args = parser.parse_args(argv)
    args.epoch_budget = {k: int(v) for k, v in (item.split("=") for item in args.epochs.split(","))}
    skip = {s for s in args.skip.split(",") if s}
    variants = tuple(v for v in args.variants.split(",") if v)
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if not args.report_only:
        for dataset in args.datasets.split(","):
            for model in args.models.split(","):
                if f"{dataset}/{model}" in skip:
                    continue
                epochs = epochs_for(args.epoch_budget, dataset, model)
                if why := schedule_misfit(dataset, model, epochs):
                    parser.error(why)
                if warning := pace_warning(dataset, model, epochs):
                    print(warning, file=sys.stderr, flush=True)
    grid: dict = {}
    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            cell = grid.setdefault((dataset, model), {v: [] for v in VARIANTS})
            if f"{dataset}/{model}" in skip:
                continue
            for seed in map(int, args.seeds.split(",")):
                accs = run_cell(args.work, dataset, model, seed, epochs_for(args.epoch_budget, dataset, model), args.tailor_lr,
                                train=not args.report_only, teacher_warmup=args.teacher_warmup_epochs, amp=args.amp,
                                variants=variants, teacher_zero_init=args.teacher_zero_init_residual,
                                channels_last=args.channels_last)
                for variant, acc in accs.items():
                    cell[variant].append(acc)
                write_report(args.out, grid, args, "python " + " ".join(sys.argv))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
