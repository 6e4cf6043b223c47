"""diffgates recipe: stages in order, outputs chained, and after a kill the same command continues at
the first unfinished stage."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from diffgates.cli import main
from diffgates.config import TrainConfig

STAGES = [
    {"name": "a", "options": {"dataset": "digits", "epochs": 2, "widths": [200, 200], "parametrization": "softmax16"}},
    {"name": "b", "base": "a", "options": {"init_from": "@a", "forward": "hard", "epochs": 3, "widths": [200, 200]}},
]


def write_recipe(path, out, stages=STAGES):
    path.write_text(yaml.safe_dump({"out": str(out), "stages": stages}))
    return path


def files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_a_two_stage_recipe_chains_its_stages(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "runs")
    assert main(["recipe", str(recipe), "--quiet", "--threads", "1"]) == 0
    b = TrainConfig.from_run(tmp_path / "runs" / "b")
    assert b.init_from == str(tmp_path / "runs" / "a") and b.forward == "hard"
    assert b.parametrization == "softmax16" and b.epochs == 3  # from the base stage, then its own options
    assert (tmp_path / "runs" / "b" / "summary.json").is_file()
    before = {s: files(tmp_path / "runs" / s) for s in "ab"}
    capsys.readouterr()
    assert main(["recipe", str(recipe), "--quiet"]) == 0  # nothing left to do
    assert capsys.readouterr().out.count("done already") == 2
    assert {s: files(tmp_path / "runs" / s) for s in "ab"} == before


def test_a_recipe_killed_between_stages_continues_where_it_stopped(tmp_path):
    a = {**STAGES[0]["options"], "widths": [2000, 2000]}
    b = {"init_from": "@a", "forward": "hard", "epochs": 15, "checkpoint_every": 2}
    stages = [{"name": "a", "options": a}, {"name": "b", "base": "a", "options": b}]
    killed = write_recipe(tmp_path / "killed.yaml", tmp_path / "killed", stages)
    whole = write_recipe(tmp_path / "whole.yaml", tmp_path / "whole", stages)
    cmd = [sys.executable, "-m", "diffgates", "recipe", "--quiet", "--threads", "1"]
    proc = subprocess.Popen([*cmd, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    b = tmp_path / "killed" / "b"
    while not (b / "train_state.safetensors").exists():  # stage a is done, stage b has a checkpoint
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    a_before = files(tmp_path / "killed" / "a")
    assert (tmp_path / "killed" / "a" / "summary.json").exists() and not (b / "summary.json").exists()

    assert subprocess.run([*cmd, str(killed)], capture_output=True).returncode == 0
    assert files(tmp_path / "killed" / "a") == a_before  # the finished stage was not run again
    assert subprocess.run([*cmd, str(whole)], capture_output=True).returncode == 0
    with (
        np.load(tmp_path / "killed" / "b" / "circuit.npz") as k,
        np.load(tmp_path / "whole" / "b" / "circuit.npz") as w,
    ):
        for name in ("ops", "a", "b", "outputs"):
            np.testing.assert_array_equal(k[name], w[name])


@pytest.mark.parametrize(
    "stages,message",
    [
        ([{"name": "a", "options": {"init_from": "@b"}}, {"name": "b"}], "refers to b, not an earlier stage"),
        ([{"name": "a"}, {"name": "a"}], "needs a unique name"),
        ([{"name": "a", "command": "deploy"}], "command must be one of train, teacher"),
        ([{"name": "../x"}], "needs a unique name"),
        ([{"name": "a", "options": [1]}], "options must be a mapping"),
        ([{"name": "a", "options": {"epochs": "many"}}], "epochs must be an integer"),
        ([{"name": "a"}, {"name": "b", "base": ["a"]}], "base must be the name of an earlier stage"),
        ([{"name": "a", "options": {1: 2, "x": 3}}], "unknown train options 1, x"),
        ([{"name": "a"}, {"name": "b", "options": {"candidates": 4}}], "stage b: --candidates does nothing"),
    ],
)
def test_bad_recipes_are_refused_before_anything_runs(tmp_path, capsys, stages, message):
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "runs", stages)
    assert main(["recipe", str(recipe)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("recipe", sorted((__import__("pathlib").Path(__file__).parents[1] / "recipes").glob("*.yaml")))
def test_committed_recipes_are_valid(recipe):
    from diffgates.recipe import load_recipe

    loaded = load_recipe(recipe)
    assert loaded.stages
