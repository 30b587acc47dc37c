"""Several processes through Lightning's DDP (gloo, on the CPU): each trains on its own shard of the
points, and the run follows the single-process trajectory, logged once, for both reductions."""

import json

import pytest

from conftest import ARTICLE, run_command

TAGS = ("train/loss", "params/slope", "params/intercept")


@pytest.mark.parametrize("reduction, learning_rate", [("sum", "0.02"), ("mean", "0.1")])
def test_two_processes_follow_one(tmp_path, train, reduction, learning_rate):
    # Both parameters learned, so the two shards (3 and 2 of the 5 points) pull differently.
    args = (
        "--model.model.init_args.learn_slope=true",
        f"--model.reduction={reduction}",
        f"--model.learning_rate={learning_rate}",
        "--trainer.max_steps=40",
        "--trainer.callbacks=[]",
    )
    ddp = run_command(
        "--config",
        str(ARTICLE),
        *args,
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        save_dir=tmp_path / "ddp",
    )
    assert ddp.exit_code == 0, ddp.stderr
    assert "Training on cpu, 2 processes" in ddp.stdout
    one = train(*args)
    assert one.exit_code == 0
    for tag in TAGS:
        two_processes, one_process = ddp.scalars(tag), one.scalars(tag)
        assert [step for step, _ in two_processes] == list(range(40))  # written once per step
        assert [v for _, v in two_processes] == pytest.approx([v for _, v in one_process], rel=1e-6, abs=1e-6)
    summary = json.loads((ddp.run_dir / "summary.json").read_text())
    assert summary["params"] == pytest.approx(one.summary["params"], rel=1e-6)
    assert summary["final_loss"] == pytest.approx(one.summary["final_loss"], rel=1e-5)
