"""Static checks of the Flink and Dataflow deployments (run by the tests; no Docker, Java or cloud).

- the compose file and the template metadata parse;
- every Beam image (SDK workers, job server) names the same Beam release;
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


def _build_parser() -> argparse.ArgumentParser:
    from imagenet_captions.build import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def _documented_commands(text: str) -> list[list[str]]:
    """The `imagenet-captions build ...` command lines in a README or compose file (with continuations)."""
    joined = re.sub(r"\\\s*\n\s*#?\s*", " ", text)
    return [shlex.split(m) for m in re.findall(r"imagenet-captions build\s+(--metadata[^\n`]+)", joined)]


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
