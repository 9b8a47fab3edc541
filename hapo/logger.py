"""Run outputs: metrics.csv (deterministic), timing.csv (wall clock), TensorBoard scalars and videos."""

from __future__ import annotations

import csv
import math
import pathlib

import imageio.v3 as imageio
import numpy as np

from hapo.files import replaced_atomically

METRICS_FILE = "metrics.csv"
TIMING_FILE = "timing.csv"


class RunLogger:
    """Appends one row per iteration to the CSV files and TensorBoard.

    metrics.csv holds only values that a run with the same seed and thread count
    reproduces exactly; wall-clock figures go to timing.csv. On resume, metrics.csv is
    rewritten with the checkpoint's rows (which repairs a file lost or emptied meanwhile), and
    rows of timing.csv after the checkpoint's iteration (written before an interruption) are
    dropped, each file replaced atomically.
    """

    def __init__(
        self, run_dir: pathlib.Path, tensorboard: bool, resume_at: tuple[int, int] | None = None, rows: list[dict] | None = None,
    ):
        """`resume_at`: (iteration, env_steps) of the checkpoint a resumed run starts from; `rows`:
        its metrics rows 1 .. iteration, or None for a checkpoint that holds none (then
        metrics.csv must still have them: ValueError otherwise)."""
        self.run_dir = run_dir
        self._writers: dict[str, tuple] = {}
        if resume_at is not None:
            metrics = run_dir / METRICS_FILE
            if rows is None:
                kept = _truncate_after(metrics, resume_at[0])
                if kept != list(range(1, resume_at[0] + 1)):
                    raise ValueError(
                        f"cannot resume: {metrics} holds {_describe_rows(kept)} but the checkpoint is at iteration {resume_at[0]}, "
                        "and this checkpoint (written before checkpoints kept the rows) cannot restore them"
                    )
            elif rows:
                with replaced_atomically(metrics, newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]), restval="")
                    writer.writeheader()
                    writer.writerows(_csv_row(row) for row in rows)
            _truncate_after(run_dir / TIMING_FILE, resume_at[0])
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_at is None else resume_at[1] + 1
            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)

    def write(self, metrics: dict[str, float | int | None], timing: dict[str, float | int]) -> None:
        self._append(METRICS_FILE, metrics)
        self._append(TIMING_FILE, timing)
        if self._tb is not None:
            step = int(metrics["env_steps"])
            for key, value in {**metrics, **timing}.items():
                if key not in ("iteration", "env_steps") and value is not None and math.isfinite(value):
                    self._tb.add_scalar(key, value, global_step=step)
            self._tb.flush()

    def video(self, tag: str, frames: list[np.ndarray], fps: float, env_steps: int) -> None:
        """Show frames (uint8 [H, W, 3] each) in TensorBoard as an animated GIF at `env_steps`,
        as SummaryWriter.add_video does (without its moviepy dependency)."""
        if self._tb is None or not frames:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        gif = imageio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
        height, width = frames[0].shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        self._tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), env_steps)
        self._tb.flush()

    def _append(self, name: str, row: dict) -> None:
        if name not in self._writers:
            path = self.run_dir / name
            exists = path.exists() and path.stat().st_size > 0
            handle = path.open("a", newline="")
            writer = csv.DictWriter(handle, fieldnames=list(row), restval="")
            if not exists:
                writer.writeheader()
            self._writers[name] = (handle, writer)
        handle, writer = self._writers[name]
        writer.writerow(_csv_row(row))
        handle.flush()

    def close(self) -> None:
        for handle, _ in self._writers.values():
            handle.close()
        self._writers.clear()
        if self._tb is not None:
            self._tb.close()


def _csv_row(row: dict) -> dict:
    return {k: "" if v is None else v for k, v in row.items()}


def _truncate_after(path: pathlib.Path, iteration: int) -> list[int]:
    """Keep the rows of iterations <= `iteration` (dropping a row a kill cut short); return their iterations."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or "iteration" not in rows[0]:
        return []
    header, column = rows[0], rows[0].index("iteration")
    kept = [row for row in rows[1:] if len(row) == len(header) and row[column].isdigit() and int(row[column]) <= iteration]
    with replaced_atomically(path, newline="") as handle:
        csv.writer(handle).writerows([header, *kept])
    return [int(row[column]) for row in kept]


def _describe_rows(iterations: list[int]) -> str:
    if not iterations:
        return "no rows"
    shown = ", ".join(map(str, iterations[:8])) + (", ..." if len(iterations) > 8 else "")
    return f"the rows of iterations {shown}"


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


class ProgressBar:
    """A rich progress bar over environment steps, with env-steps/s and the recent returns."""

    def __init__(self, total_steps: int, done_steps: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from rich.console import Console

        self._progress = Progress(
            BarColumn(bar_width=20), MofNCompleteColumn(), TextColumn("steps"), TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"), console=Console(stderr=True),
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=done_steps, status="")
        self._eval = None
        self._progress.start()

    def update(self, env_steps: int, steps_per_second: float, row: dict) -> None:
        if row["eval_return"] is not None:
            self._eval = row["eval_return"]
        train = "-" if row["train_return"] is None else f"{row['train_return']:.3g}"
        status = f"{steps_per_second:,.0f} steps/s  return {train}"
        if self._eval is not None:
            status += f"  eval {self._eval:.3g}"
        self._progress.update(self._task, completed=env_steps, status=status)

    def close(self) -> None:
        self._progress.stop()
