"""How a run ended is decided in one place: stop rules record a reason and set should_stop (no
exception for a normal stop), the reason that matters most wins whatever the callbacks' order, and
every reader (the summary, fit, the exit code) gets the same outcome."""

from types import SimpleNamespace

import pytest

import gd_torch
from gd_torch.outcome import Outcome, StopRule, decide, requested_stop

from conftest import ARTICLE


def rule(reason: str | None, message: str | None = None) -> StopRule:
    stop = StopRule()
    if reason:
        stop.stop(SimpleNamespace(should_stop=False), reason, message)
    return stop


def test_the_most_important_reason_wins_in_any_order():
    rules = [rule("converged"), rule("diverged", "training diverged at step 7"), rule(None), rule("interrupted")]
    for order in (rules, rules[::-1]):
        trainer = SimpleNamespace(callbacks=order, max_steps=30, global_step=8)
        assert requested_stop(trainer) == ("diverged", "training diverged at step 7")
        assert decide(trainer) == ("diverged", "training diverged at step 7")


def test_a_rule_keeps_its_first_reason_and_stops_the_trainer():
    trainer = SimpleNamespace(should_stop=False)
    stop = StopRule()
    stop.stop(trainer, "terminated")
    stop.stop(trainer, "interrupted")
    assert trainer.should_stop and stop.stopping_reason == "terminated"


def test_the_budget_an_exception_and_a_second_ctrl_c():
    trainer = SimpleNamespace(callbacks=[], max_steps=30, global_step=30)
    assert decide(trainer) == ("max_steps", None)
    assert decide(SimpleNamespace(callbacks=[], max_steps=-1, global_step=30)) == ("max_epochs", None)
    assert decide(trainer, RuntimeError("shape\nmismatch")) == ("failed", "training failed: shape mismatch")
    assert decide(trainer, KeyboardInterrupt()) == ("interrupted", None)
    terminated = SimpleNamespace(callbacks=[rule("terminated")], max_steps=30, global_step=3)
    assert decide(terminated, KeyboardInterrupt()) == ("terminated", None)


def test_exit_codes():
    reasons = ("max_steps", "converged", "early_stopping", "diverged", "failed", "interrupted", "terminated")
    codes = {reason: Outcome(reason, 0).exit_code for reason in reasons}
    assert codes == {"max_steps": 0, "converged": 0, "early_stopping": 0, "diverged": 1, "failed": 1,
                     "interrupted": 130, "terminated": 143}  # fmt: skip


def test_a_diverged_run_logs_its_last_step_and_keeps_no_diverged_checkpoint(tmp_path):
    """Divergence stops like any rule: the diverging step is logged and measured, the summary and fit
    say so from memory, and last.ckpt is not overwritten with the blown-up state."""
    run = gd_torch.fit(ARTICLE, "--model.learning_rate=0.3", f"--trainer.logger.init_args.save_dir={tmp_path}")
    assert run.exit_code == 1 and run.summary["stop_reason"] == "diverged"
    assert [step for step, _ in run.history["train/loss"]] == list(range(8))
    # b - 1 = 9 * (-2)**8 after the 8th update: the loss there is 5 * (9 * 256)**2 = 405 * 4**8.
    assert run.summary["steps"] == 8 and run.summary["final_loss"] == pytest.approx(405.0 * 4**8, rel=1e-6)
    assert run.history["hparams/final_loss"] == [(7, pytest.approx(405.0 * 4**8, rel=1e-6))]
    assert not (run.run_dir / "checkpoints" / "last.ckpt").exists()
