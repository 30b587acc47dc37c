"""Where the data lives: every step trains on the very tensors the DataModule put on the device (no
per-step copy, no collation), and on a GPU the article follows the CPU's trajectory."""

import lightning.pytorch as pl
import pytest
import torch

from gd_torch import load_run

from conftest import REPO

ACCELERATORS = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


class BatchSpy(pl.Callback):
    """Records, at every step, whether the batch is the DataModule's own tensors on the device."""

    seen: list[tuple[bool, str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x, y = trainer.datamodule.points
        same = batch[0].data_ptr() == x.data_ptr() and batch[1].data_ptr() == y.data_ptr()
        BatchSpy.seen.append((same, str(batch[0].device)))


def needs(accelerator: str) -> None:
    if accelerator == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.mark.parametrize("accelerator", ACCELERATORS)
def test_every_step_uses_the_same_on_device_tensors(train, accelerator):
    needs(accelerator)
    BatchSpy.seen = []
    run = train("--trainer.accelerator", accelerator, "--trainer.callbacks+=test_device.BatchSpy")
    assert run.exit_code == 0, run.stderr
    device = "cuda:0" if accelerator == "cuda" else "cpu"
    assert BatchSpy.seen == [(True, device)] * 30
    assert run.summary["device"] == device


@pytest.mark.cuda
@pytest.mark.parametrize("compile", ["false", "true"])
def test_line_on_cuda_follows_the_cpu(train, compile):
    """Both parameters, mean reduction, 200 steps: the GPU's trajectory is the CPU's within float32."""
    needs("cuda")
    args = (
        "--model.model.init_args.learn_slope=true",
        "--model.learning_rate=0.02",
        "--trainer.max_steps=200",
        "--trainer.callbacks=[]",
        f"--model.compile={compile}",
    )
    gpu, cpu = train(*args), train(*args, "--trainer.accelerator=cpu", "--model.compile=false")
    assert gpu.exit_code == cpu.exit_code == 0, gpu.stderr
    assert gpu.summary["device"] == "cuda:0"
    for tag in ("train/loss", "params/slope", "params/intercept"):
        got, want = gpu.scalars(tag), cpu.scalars(tag)
        assert [s for s, _ in got] == [s for s, _ in want] == list(range(200))
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5, abs=1e-5)


@pytest.mark.cuda
def test_article_on_cuda_follows_the_cpu(train):
    needs("cuda")
    gpu = train()  # accelerator: auto picks the GPU
    assert gpu.exit_code == 0, gpu.stderr
    assert gpu.stdout.startswith("Training on cuda:0 (")
    cpu = train("--trainer.accelerator", "cpu")
    assert cpu.exit_code == 0, cpu.stderr
    assert gpu.table == cpu.table
    for tag in ("train/loss", "params/intercept"):
        assert [s for s, _ in gpu.scalars(tag)] == [s for s, _ in cpu.scalars(tag)] == list(range(30))
        gpu_values = [v for _, v in gpu.scalars(tag)]
        cpu_values = [v for _, v in cpu.scalars(tag)]
        assert gpu_values == pytest.approx(cpu_values, rel=1e-6)


class NoSync(pl.Callback):
    """From step 2 to the last step, any operation that makes the host wait for the GPU raises."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 2:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == trainer.max_steps:  # before the end-of-run reads of the other callbacks
            torch.cuda.set_sync_debug_mode("default")

    def on_exception(self, trainer, pl_module, exception) -> None:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
def test_training_steps_never_wait_for_the_gpu(train):
    """Logging and the divergence check keep per-step values on the device: no sync between steps."""
    needs("cuda")
    run = train("--trainer.callbacks=[test_device.NoSync]", "--trainer.max_steps=40", "--tensorboard.flush_every=1000")
    assert run.exit_code == 0, run.stderr
    assert [step for step, _ in run.scalars("train/loss")] == list(range(40))  # still one point per step


@pytest.mark.cuda
def test_real_yaml_on_cuda_follows_the_cpu(train):
    """Splits, standardization, val/loss and metrics on the GPU are the CPU's within float32, and the
    checkpoint of a GPU run loads on the CPU."""
    needs("cuda")
    houses = REPO / "data" / "houses.csv"
    args = (f"--data.init_args.path={houses}", "--trainer.callbacks=[]", "--trainer.max_steps=300")
    config = REPO / "configs" / "real.yaml"
    gpu, cpu = train(*args, config=config), train(*args, "--trainer.accelerator=cpu", config=config)
    assert gpu.exit_code == cpu.exit_code == 0, gpu.stderr
    assert gpu.summary["device"] == "cuda:0"
    for tag in ("train/loss", "val/loss"):
        got, want = gpu.scalars(tag), cpu.scalars(tag)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-4)
    for split, metrics in cpu.summary["metrics"].items():
        assert gpu.summary["metrics"][split] == pytest.approx(metrics, rel=1e-4)
    model = load_run(gpu.run_dir)
    assert model.x_mean.device.type == "cpu"
