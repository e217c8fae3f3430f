"""`docker` for deploy.sh's image step, where there is no Docker engine: the three commands it runs.

- `docker login --username AWS --password-stdin REGISTRY`: reads the password ECR gave;
- `docker build --platform P --file DOCKERFILE --tag IMAGE CONTEXT`: checks what a build would read
  first (the Dockerfile, and every file its COPY instructions take from the context) and records
  the image; it fails, as a broken build does, when REHEARSAL_DOCKER_BUILD_FAILS is set (the
  rehearsal's check that a failed build stops a deployment);
- `docker push IMAGE`: puts the image's manifest into ECR (moto's), where Fargate will look for it;
  an image that was not built cannot be pushed.

The image's content is not built: the rehearsal runs the tasks from this checkout (fargate.py).
"""

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import boto3

STATE = Path(os.environ.get("REHEARSAL_DOCKER_STATE", "/tmp")) / "images.json"


def built() -> dict[str, str]:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def build(arguments: list[str]) -> int:
    options = dict(zip(arguments[0:-1:2], arguments[1:-1:2], strict=False))
    context, dockerfile, tag = Path(arguments[-1]), Path(options["--file"]), options["--tag"]
    if os.environ.get("REHEARSAL_DOCKER_BUILD_FAILS"):
        print(
            'ERROR: failed to solve: process "/bin/sh -c pip install" did not complete successfully: exit code: 1',
            file=sys.stderr,
        )
        return 1
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    for sources in re.findall(r"^COPY (?!.*--from)(.+) \S+$", text, re.MULTILINE):
        for source in (word for word in sources.split() if not word.startswith("--")):
            if not (context / source).exists():
                print(f'ERROR: failed to compute cache key: "/{source}": not found', file=sys.stderr)
                return 1
    STATE.write_text(json.dumps(built() | {tag: options.get("--platform", "")}))
    print(f"naming to {tag} done", file=sys.stderr)
    return 0


def push(image: str) -> int:
    if image not in built():
        print(f"An image does not exist locally with the tag: {image.rsplit(':', 1)[0]}", file=sys.stderr)
        return 1
    repository, tag = image.split("/", 1)[1].rsplit(":", 1)
    config = hashlib.sha256(image.encode()).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 0,
            "digest": f"sha256:{config}",
        },
        "layers": [],
    }
    boto3.client("ecr").put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    print(f"{tag}: digest: sha256:{config} size: 0", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    command, arguments = argv[0], argv[1:]
    if command == "login":
        sys.stdin.read()
        print("Login Succeeded")
        return 0
    if command == "build":
        return build(arguments)
    if command == "push":
        return push(arguments[0])
    print(f"docker {command}: not something deploy.sh runs", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
