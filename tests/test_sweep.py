"""scripts/sweep.py's exit code as its docstring says: 0 when every run trained or diverged, 1 when a run
failed otherwise (the sweep still goes on and sums up every rate)."""

import importlib.util
import sys

from test_failures import FRAGILE  # a model that raises once b falls below 8

from conftest import ARTICLE, REPO


def sweep_module():
    spec = importlib.util.spec_from_file_location("sweep_script", REPO / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_diverged_run_is_a_result_and_a_failed_one_is_exit_code_1(tmp_path, monkeypatch, capsys):
    sweep = sweep_module().sweep
    flags = ["--trainer.max_steps=40", "--trainer.callbacks=[]"]
    assert sweep(ARTICLE, [0.01, 0.3], str(tmp_path), "diverges", flags) == 0  # 0.3 diverges: a result
    (tmp_path / "fragile_model.py").write_text(FRAGILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = sweep(ARTICLE, [0.01, 0.02], str(tmp_path), "fails", [*flags, "--model.model=fragile_model.Fragile"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.count(" failed ") == 2  # both rates ran and are summed up
    sys.modules.pop("fragile_model", None)
