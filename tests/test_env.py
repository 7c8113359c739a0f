from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch

from gradsight.env import collect_env, git_commit


def test_env_is_json_and_names_versions() -> None:
    env = collect_env(torch.device("cpu"), seed=3, argv=["gradsight", "train"])
    assert json.loads(json.dumps(env)) == env
    assert env["torch"] == torch.__version__ and env["seed"] == 3
    assert env["cuda"] == torch.version.cuda
    assert env["cuda_available"] == torch.cuda.is_available()
    assert env["command_line"] == ["gradsight", "train"]
    assert isinstance(env["device_name"], str) and env["device_name"]


def test_git_commit_of_a_repo_and_of_a_plain_folder(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == (None, None)
    repo = tmp_path / "repo"
    repo.mkdir()
    run = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*run, "init", "-q"], check=True)
    (repo / "f.txt").write_text("a")
    subprocess.run([*run, "add", "f.txt"], check=True)
    subprocess.run([*run, "commit", "-qm", "x"], check=True)
    commit, dirty = git_commit(repo)
    assert commit is not None and len(commit) == 40 and dirty is False
    (repo / "f.txt").write_text("b")
    assert git_commit(repo) == (commit, True)
