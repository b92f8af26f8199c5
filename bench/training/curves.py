"""What every training recipe records: the machine it ran on, and its curves in MLflow."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from flashspeech.training.trainer import METRICS


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU x{torch.get_num_threads()} threads (torch {torch.__version__})"


class MlflowCurves:
    """Training curves to MLflow (SQLite under the output directory unless MLFLOW_TRACKING_URI is set)."""

    def __init__(self, out: Path, experiment: str, run_name: str, params: dict[str, Any], uri: str | None) -> None:
        import mlflow

        from bench.tracking import quiet_mlflow, tracking_uri

        quiet_mlflow()
        self.client = mlflow.MlflowClient(tracking_uri(out, uri))
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def validation_rows(stage_dir: Path) -> list[dict[str, Any]]:
    """The held-out validation rows (those with `val_*` keys) a stage logged to its metrics.jsonl."""
    path = stage_dir / METRICS
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if any(k.startswith("val_") for k in r)]
