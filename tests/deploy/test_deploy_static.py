"""The Flink and Dataflow deployments, checked statically (their engines need Java, Docker or a cloud)."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("check_deploy", ROOT / "deploy" / "check_deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deployments_are_consistent():
    assert _checker().check() == []


def _copy(tmp_path, monkeypatch):
    """The checker, looking at a copy of deploy/ that a test may break."""
    checker = _checker()
    deploy = tmp_path / "deploy"
    for sub in ("flink", "dataflow"):
        (deploy / sub).mkdir(parents=True)
        for f in (ROOT / "deploy" / sub).iterdir():
            (deploy / sub / f.name).write_text(f.read_text())
    monkeypatch.setattr(checker, "DEPLOY", deploy)
    return checker, deploy


def test_checker_finds_a_bad_option(tmp_path, monkeypatch):
    checker, deploy = _copy(tmp_path, monkeypatch)
    readme = deploy / "flink" / "README.md"
    readme.write_text(readme.read_text().replace("--parallelism 8", "--paralelism 8"))
    problems = checker.check()
    assert any("not Beam options: ['--paralelism'" in p for p in problems), problems


def test_flink_and_beam_versions_are_checked(tmp_path, monkeypatch):
    import apache_beam
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    checker, deploy = _copy(tmp_path, monkeypatch)
    compose = deploy / "flink" / "docker-compose.yml"
    text = compose.read_text()
    (cluster,) = set(re.findall(r"image: flink:(\d+\.\d+)", text))
    assert cluster in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert f"apache/beam_flink{cluster}_job_server:{apache_beam.__version__}" in text

    compose.write_text(text.replace(f"flink:{cluster}-", "flink:1.15-"))
    problems = checker.check()
    assert any("runs Flink 1.15; Beam" in p for p in problems), problems
    assert any(
        f"job server is built for Flink {cluster}; the cluster runs ['1.15']" in p for p in problems
    ), problems

    compose.write_text(text.replace(f"_job_server:{apache_beam.__version__}", "_job_server:2.50.0"))
    problems = checker.check()
    assert any("job server is tagged 2.50.0" in p for p in problems), problems
    assert any("names Beam 2.50.0" in p for p in problems), problems


def test_the_dataflow_worker_tag_is_the_package_version(tmp_path, monkeypatch):
    checker, deploy = _copy(tmp_path, monkeypatch)
    run_sh = deploy / "dataflow" / "run.sh"
    run_sh.write_text(re.sub(r"^VERSION=.*$", "VERSION=0.0.9", run_sh.read_text(), flags=re.M))
    assert any("tags the worker image 0.0.9" in p for p in checker.check())


def test_the_beam_pin_is_checked(tmp_path, monkeypatch):
    """pyproject.toml and constraints.txt must pin the installed Beam: a range, or another release, fails."""
    import apache_beam

    checker = _checker()
    monkeypatch.setattr(checker, "ROOT", tmp_path)
    pyproject = (ROOT / "pyproject.toml").read_text()
    constraints = (ROOT / "constraints.txt").read_text()
    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "constraints.txt").write_text(constraints)
    assert checker.check_pin() == []

    (tmp_path / "pyproject.toml").write_text(
        pyproject.replace(f'"apache-beam[gcp]=={apache_beam.__version__}"', '"apache-beam[gcp]>=2.60"')
    )
    assert any("asks for apache-beam>=2.60" in p for p in checker.check_pin())

    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "constraints.txt").write_text(
        constraints.replace(f"apache-beam=={apache_beam.__version__}", "apache-beam==2.50.0")
    )
    assert any("constraints.txt pins apache-beam ['2.50.0']" in p for p in checker.check_pin())

    (tmp_path / "constraints.txt").unlink()
    assert any("constraints.txt is missing" in p for p in checker.check_pin())
