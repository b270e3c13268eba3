"""The Flink and Dataflow deployments, checked statically (their engines need Java, Docker or a cloud)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("check_deploy", ROOT / "deploy" / "check_deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deployments_are_consistent():
    assert _checker().check() == []


def test_checker_finds_a_bad_option(tmp_path, monkeypatch):
    checker = _checker()
    deploy = tmp_path / "deploy"
    for sub in ("flink", "dataflow"):
        (deploy / sub).mkdir(parents=True)
        for f in (ROOT / "deploy" / sub).iterdir():
            (deploy / sub / f.name).write_text(f.read_text())
    readme = deploy / "flink" / "README.md"
    readme.write_text(readme.read_text().replace("--parallelism 8", "--paralelism 8"))
    monkeypatch.setattr(checker, "DEPLOY", deploy)
    problems = checker.check()
    assert any("not Beam options: ['--paralelism'" in p for p in problems), problems
