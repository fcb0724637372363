"""Training jobs from the API's queue (POST /train-jobs), run with :func:`.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qembed_worker.jobs.queue import Reporter, Runner


def train_runner(models_dir: Path) -> Runner:
    """Runs a job spec (as the API stores it) with :func:`qembed_worker.qat.train.train`.

    The new bundle is named ``output_name`` (its manifest ``name``, what requests send as
    ``model``) and goes to ``<models-dir>/<output_name>-<fingerprint of the source>-<n>``, a
    folder name no earlier job used.
    """

    def run(spec: dict[str, Any], on_step: Reporter) -> dict[str, Any]:
        from qembed_worker.qat.config import TrainConfig
        from qembed_worker.qat.train import train

        base = spec["base_model"]
        stem = f"{spec['output_name']}-{base['fingerprint'][:8]}"
        n = 1
        while (models_dir / f"{stem}-{n}").exists():
            n += 1
        out = models_dir / f"{stem}-{n}"
        config = TrainConfig(
            bundle=Path(base["dir"]),
            dataset=Path(spec["dataset_path"]),
            out=out,
            mode=spec["mode"],
            loss=spec["loss"],
            precisions=tuple(spec["precisions"]),
            weights=tuple(float(w) for w in spec["weights"]),
            asymmetric=bool(spec["asymmetric"]),
            batch_size=int(spec["batch_size"]),
            lr=float(spec["learning_rate"]),
            seed=int(spec["seed"]),
            epochs=int(spec["epochs"]),
            max_steps=int(spec["steps"]) if spec["steps"] is not None else None,
            crop_queries=bool(spec["crop_queries"]),
            name=spec["output_name"],
            checkpoint_dir=models_dir / ".checkpoints" / out.name,
            progress=False,
            on_step=on_step,
        )
        summary = train(config)
        return {"fingerprint": summary["fingerprint"], "dir": str(out), "summary": summary}

    return run
