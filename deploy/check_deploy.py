"""Static checks of the Flink and Dataflow deployments (run by the tests; no Docker, Java or cloud).

- the compose file and the template metadata parse;
- pyproject.toml pins one Beam release (``apache-beam==X`` in every requirement that names it),
  constraints.txt pins the same, and it is the installed one (an SDK must equal its worker image's,
  and the Dask translation patch is tied to Beam's internals);
- every Beam image (SDK workers, job server) names the same Beam release, the installed one;
- the Flink cluster's version is one the installed Beam publishes a Flink job server for, and the
  job server is the one built for that Flink version;
- the Dataflow script's worker image is tagged with the package's version;
- each Dockerfile copies only paths that exist in the repository;
- the Flex Template's parameters are options of ``imagenet-captions build``, and the documented
  command lines parse: our options by the build parser, the rest as Beam pipeline options.
Prints the problems and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import yaml
from apache_beam.options.pipeline_options import PipelineOptions

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BEAM_IMAGE = re.compile(r"apache/beam_[a-z0-9_.]+:(\d+\.\d+\.\d+)")
FLINK_IMAGE = re.compile(r"^flink:(\d+\.\d+)(?:[.-]|$)")
JOB_SERVER_IMAGE = re.compile(r"^apache/beam_flink(\d+\.\d+)_job_server:(\S+)$")


def _build_parser() -> argparse.ArgumentParser:
    from imagenet_captions.build.command import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def _documented_commands(text: str) -> list[list[str]]:
    """The `imagenet-captions build ...` command lines in a README or compose file (with continuations)."""
    joined = re.sub(r"\\\s*\n\s*#?\s*", " ", text)
    return [shlex.split(m) for m in re.findall(r"imagenet-captions build\s+(--metadata[^\n`]+)", joined)]


PIN = re.compile(r'"apache-beam(?:\[[a-z,]+\])?([^"]*)"')


def check_pin() -> list[str]:
    """pyproject.toml and constraints.txt pin the installed Beam release, in every requirement."""
    import apache_beam

    problems = []
    beam = apache_beam.__version__
    specs = PIN.findall((ROOT / "pyproject.toml").read_text())
    if not specs:
        problems.append("pyproject.toml names no apache-beam requirement")
    for spec in specs:
        if spec != f"=={beam}":
            problems.append(f"pyproject.toml asks for apache-beam{spec}; pin the tested release: =={beam}")
    constraints = ROOT / "constraints.txt"
    if not constraints.exists():
        problems.append("constraints.txt is missing (README's commands and .ci/run install with it)")
    else:
        pins = re.findall(r"^apache-beam==(\S+)$", constraints.read_text(), flags=re.M)
        if pins != [beam]:
            problems.append(f"constraints.txt pins apache-beam {pins}; the installed apache-beam is {beam}")
    return problems


def check_versions(compose: dict) -> list[str]:
    """Versions that must agree with the installed Beam and package (a mismatch fails only on a cluster)."""
    import apache_beam
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    import imagenet_captions

    problems = []
    beam = apache_beam.__version__
    supported = list(FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS)
    files = [
        DEPLOY / "flink" / "docker-compose.yml",
        DEPLOY / "flink" / "Dockerfile.worker",
        DEPLOY / "dataflow" / "Dockerfile",
    ]
    for f in files:
        for version in BEAM_IMAGE.findall(f.read_text()):
            if version != beam:
                problems.append(
                    f"{f.relative_to(DEPLOY.parent)} names Beam {version}; the installed apache-beam is {beam}"
                )
    images = {name: str(svc.get("image", "")) for name, svc in compose["services"].items()}
    flink = {name: m.group(1) for name, image in images.items() if (m := FLINK_IMAGE.match(image))}
    if set(flink) != {"jobmanager", "taskmanager"}:
        problems.append(
            f"flink compose file: jobmanager and taskmanager must run a flink image, not {images}"
        )
    if len(set(flink.values())) > 1:
        problems.append(f"flink compose file: the cluster's services run different Flink versions: {flink}")
    for name, version in flink.items():
        if version not in supported:
            problems.append(
                f"flink compose file: {name} runs Flink {version}; Beam {beam} supports Flink {', '.join(supported)}"
            )
    server = JOB_SERVER_IMAGE.match(images.get("job-server", ""))
    if server is None:
        problems.append(
            f"flink compose file: job-server is not a Beam Flink job server image: {images.get('job-server')}"
        )
    else:
        server_flink, server_beam = server.groups()
        if server_beam != beam:
            problems.append(f"flink job server is tagged {server_beam}; the installed apache-beam is {beam}")
        if flink and server_flink not in flink.values():
            problems.append(
                f"flink job server is built for Flink {server_flink}; the cluster runs {sorted(set(flink.values()))}"
            )
        if server_flink not in supported:
            problems.append(
                f"flink job server is for Flink {server_flink}; Beam {beam} supports {', '.join(supported)}"
            )
    run_sh = (DEPLOY / "dataflow" / "run.sh").read_text()
    version = re.search(r"^VERSION=(\S+)$", run_sh, flags=re.M)
    if version is None or version.group(1) != imagenet_captions.__version__:
        problems.append(
            f"dataflow/run.sh tags the worker image {version.group(1) if version else '(no VERSION)'}; "
            f"the package is {imagenet_captions.__version__}"
        )
    return problems


def check() -> list[str]:
    problems: list[str] = []
    compose = yaml.safe_load((DEPLOY / "flink" / "docker-compose.yml").read_text())
    if not {"jobmanager", "taskmanager", "job-server", "python-worker-pool"} <= set(compose["services"]):
        problems.append("flink compose file lacks a service")
    files = [
        DEPLOY / "flink" / "docker-compose.yml",
        DEPLOY / "flink" / "Dockerfile.worker",
        DEPLOY / "dataflow" / "Dockerfile",
    ]
    versions = {str(f.relative_to(DEPLOY.parent)): BEAM_IMAGE.findall(f.read_text()) for f in files}
    found = {v for vs in versions.values() for v in vs}
    if len(found) != 1:
        problems.append(f"Beam images name different releases: {versions}")
    for dockerfile in [DEPLOY / "flink" / "Dockerfile.worker", *DEPLOY.glob("dataflow/Dockerfile*")]:
        for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile.read_text(), flags=re.M):
            for path in src.split():
                if not (ROOT / path).exists():
                    problems.append(
                        f"{dockerfile.relative_to(DEPLOY.parent)} copies {path}, which does not exist"
                    )
    problems += check_pin()
    problems += check_versions(compose)
    parser = _build_parser()
    metadata = json.loads((DEPLOY / "dataflow" / "metadata.json").read_text())
    known = {a.dest for a in parser._actions}
    for p in metadata["parameters"]:
        if p["name"] not in known:
            problems.append(f"template parameter {p['name']} is not a build option")
    for doc in [DEPLOY / "flink" / "README.md", DEPLOY / "flink" / "docker-compose.yml"]:
        commands = _documented_commands(doc.read_text())
        if not commands:
            problems.append(f"{doc.relative_to(DEPLOY.parent)} documents no build command")
        for argv in commands:
            try:
                _, beam_args = parser.parse_known_args(argv)
                PipelineOptions(beam_args).get_all_options(retain_unknown_options=False)
            except SystemExit:
                problems.append(f"{doc.relative_to(DEPLOY.parent)}: build options do not parse: {argv}")
            unknown = [
                a
                for a in beam_args
                if a.startswith("--")
                and a.split("=")[0][2:] not in PipelineOptions([]).get_all_options(drop_default=False)
            ]
            if unknown:
                problems.append(f"{doc.relative_to(DEPLOY.parent)}: not Beam options: {unknown}")
    return problems


if __name__ == "__main__":
    found = check()
    for p in found:
        print(p)
    print("deploy checks:", "OK" if not found else f"{len(found)} problems")
    sys.exit(1 if found else 0)
