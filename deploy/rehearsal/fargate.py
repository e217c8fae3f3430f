"""Fargate on this machine: each ECS task that moto's ECS is asked to run, and each service's task,
started as a local process the way Fargate starts the container.

It lives in the process that serves moto's API (it watches moto's ECS model through hooks on its
backend), and for each task it does what Fargate does before the container starts, refusing what
Fargate refuses:

- the image must be in ECR under its tag (else "CannotPullContainerError", the task stops);
- every `secrets` entry is resolved from Secrets Manager (`arn:...:secret:name-AbCdEf:json-key::`) or
  Parameter Store; one that does not resolve stops the task ("ResourceInitializationError");
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-ssm-paramstore.html
- the process gets exactly: the image's ENV (docker/Dockerfile), the container's `environment`, the
  resolved `secrets`, RunTask's container overrides, and what Fargate itself adds (the region, the
  task role's credentials: here moto's endpoint and test keys);
- its command is the image's ENTRYPOINT with the override, the container's `command` or the image's
  CMD, as Docker composes them; when it exits the task is STOPPED with the container's exit code.

What a container cannot be here, and how the stand-in makes up for it (`Image.local`):
- the image's files are this checkout's (COPY sources), its virtual environment this interpreter's,
  and the package the one PYTHONPATH points at; DAGSTER_HOME and the working directory are a folder
  per task; `extra_paths` maps more image paths (the CA bundle) to local files;
- awsvpc gives each task its own address: here a container port is mapped to a free port on
  127.0.0.1 (`--host 0.0.0.0` becomes 127.0.0.1, the container port the mapped one);
- DNS: the environment gets libpq's PGHOSTADDR for the RDS endpoint (`extra_environment`).
- TLS: a container whose definition does not set PGSSLROOTCERT yet gets `tls_environment`
  (PGSSLMODE=verify-full with the rehearsal's CA), as the task definitions will set it.

Services run one task each (whatever their desired count above 0), restarted on a new task
definition or a forced deployment, stopped at a desired count of 0; a service whose image is not
the pipeline's (Metabase's, from Docker Hub through ECR's cache) is not run here.
"""

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Image:
    """The pipeline image as docker/Dockerfile builds it (its last stage), run from this checkout."""

    def __init__(self, dockerfile: Path = DOCKERFILE, extra_paths: dict[str, Path] | None = None):
        lines = re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
        start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
        self.env: dict[str, str] = {}
        self.copied: dict[str, Path] = {}  # image path -> checkout path
        self.entrypoint: list[str] = []
        self.cmd: list[str] = []
        self.workdir = "/"
        for line in lines[start:]:
            instruction, _, rest = line.strip().partition(" ")
            if instruction == "ENV":
                for name, value in re.findall(r"(\w+)=(\S+)", rest):
                    self.env[name] = value
            elif instruction == "COPY" and "--from" not in rest:
                *sources, destination = [word for word in rest.split() if not word.startswith("--")]
                for source in sources:
                    target = destination + Path(source).name if destination.endswith("/") else destination
                    self.copied[target] = ROOT / source
            elif instruction == "ENTRYPOINT":
                self.entrypoint = json.loads(rest)
            elif instruction == "CMD":
                self.cmd = json.loads(rest)
            elif instruction == "WORKDIR":
                self.workdir = rest
        self.extra_paths = {path: Path(local) for path, local in (extra_paths or {}).items()}

    def paths(self, scratch: Path) -> dict[str, str]:
        """Image path -> local path, for one task whose own folders are under `scratch`."""
        venv_bin = self.env.get("PATH", "").split(":")[0]
        mapping = {image: str(local) for image, local in self.copied.items()}
        mapping |= {image: str(local) for image, local in self.extra_paths.items()}
        mapping[venv_bin] = str(Path(sys.executable).parent)
        for name in ("DAGSTER_HOME",):
            if name in self.env:
                mapping[self.env[name]] = str(scratch / "home")
        mapping[self.workdir] = str(scratch / "workdir")
        return mapping

    @staticmethod
    def local(value: str, mapping: dict[str, str]) -> str:
        for image_path in sorted(mapping, key=len, reverse=True):
            if value == image_path or value.startswith(image_path.rstrip("/") + "/"):
                return mapping[image_path] + value[len(image_path) :]
        return value


@dataclass
class TaskProcess:
    """One task's process and what it was started from."""

    arn: str
    definition_arn: str
    container: str
    log: Path
    process: subprocess.Popen | None = None
    ports: dict[int, int] = field(default_factory=dict)  # container port -> local port
    deployment: str = ""
    exit_code: int | None = None
    stopped_reason: str = ""
    moto_task: object = None  # the task in moto's ECS model (run tasks only)

    def tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""


class Fargate:
    def __init__(
        self,
        folder: Path,
        image: Image,
        repository: str,
        extra_environment: dict[str, str],
        account_id: str = "123456789012",
        region: str = "us-east-1",
        tls_environment: dict[str, str] | None = None,
    ):
        self.folder, self.image, self.repository = folder, image, repository
        self.extra_environment = extra_environment
        # Given (image paths mapped) to a container whose definition does not name PGSSLROOTCERT yet.
        self.tls_environment = tls_environment or {}
        self.given_tls: set[str] = set()  # containers that got it
        self.account_id, self.region = account_id, region
        self.tasks: dict[str, TaskProcess] = {}
        self.services: dict[str, TaskProcess] = {}
        self.not_run: dict[str, str] = {}  # service -> why
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self.errors: list[str] = []  # what went wrong in the stand-in itself
        # ECS's work (start a task, reconcile the services) in the order moto was asked for it.
        self._work: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._do_work, name="fargate-work", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="fargate-watch", daemon=True)

    # --- hooks into moto's ECS ------------------------------------------------------------------

    def install(self) -> None:
        """Hooks moto's ECS backend of this process: its tasks and services run here from now on."""
        from moto.ecs import models as ecs
        from moto.moto_api import state_manager

        # moto moves a task a step towards STOPPED each time it is described: here a task stops
        # when its process ends, and not before.
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        fargate = self
        run_task = ecs.EC2ContainerServiceBackend.run_task

        def run_task_on_fargate(
            backend, cluster, definition, count, overrides, started_by, tags, launch_type, *rest
        ):
            # moto drops RunTask's capacityProviderStrategy and then looks for EC2 container
            # instances; the cluster's providers (FARGATE, FARGATE_SPOT) put the task on Fargate.
            tasks = run_task(
                backend,
                cluster,
                definition,
                count,
                overrides,
                started_by,
                tags,
                launch_type or "FARGATE",
                *rest,
            )
            for task in tasks:
                fargate._work.put((fargate._start_task, backend, task))
            return tasks

        ecs.EC2ContainerServiceBackend.run_task = run_task_on_fargate
        # A Fargate task is sized as a whole (Cpu, Memory); moto adds up its containers' memory to
        # place it on an instance, and fails on a container that names none.
        requirements = ecs.EC2ContainerServiceBackend._calculate_task_resource_requirements

        def sized_as_a_whole(definition):
            try:
                return requirements(definition)
            except TypeError:
                return {"CPU": 0, "MEMORY": 0, "PORTS": [], "PORTS_UDP": []}

        ecs.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(sized_as_a_whole)
        for name in ("create_service", "update_service", "delete_service"):
            original = getattr(ecs.EC2ContainerServiceBackend, name)

            def changed(backend, *args, _original=original, **kwargs):
                result = _original(backend, *args, **kwargs)
                fargate._work.put((fargate.reconcile, backend))
                return result

            setattr(ecs.EC2ContainerServiceBackend, name, changed)
        self._worker.start()
        self._watcher.start()

    def _do_work(self) -> None:
        while True:
            function, *arguments = self._work.get()
            try:
                function(*arguments)
            except Exception:
                self.errors.append(traceback.format_exc())
            finally:
                self._work.task_done()

    def wait_idle(self) -> None:
        """Until every task start and service change asked of moto so far is done."""
        self._work.join()

    # --- tasks ----------------------------------------------------------------------------------

    def _resolve_secret(self, value_from: str) -> str:
        if ":secretsmanager:" in value_from:
            parts = value_from.split(":")
            arn, key = ":".join(parts[:7]), (parts[7] if len(parts) > 7 else "")
            stage = parts[8] if len(parts) > 8 and parts[8] else None
            kwargs = {"SecretId": arn} | ({"VersionStage": stage} if stage else {})
            text = boto3.client("secretsmanager", region_name=self.region).get_secret_value(**kwargs)[
                "SecretString"
            ]
            return str(json.loads(text)[key]) if key else text
        name = value_from.split(":parameter", 1)[1] if value_from.startswith("arn:") else value_from
        return boto3.client("ssm", region_name=self.region).get_parameter(Name=name, WithDecryption=True)[
            "Parameter"
        ]["Value"]

    def _pullable(self, image: str) -> str | None:
        """Why Fargate could not pull `image`, or None."""
        repository_uri, _, tag = image.rpartition(":")
        name = repository_uri.split("/", 1)[1]
        try:
            found = boto3.client("ecr", region_name=self.region).describe_images(
                repositoryName=name, imageIds=[{"imageTag": tag}]
            )["imageDetails"]
        except Exception as error:  # the repository or the tag does not exist
            found, why = [], str(error)
        else:
            why = "not found"
        return None if found else f"CannotPullContainerError: pull image manifest {image}: {why}"

    def _launch(self, task: TaskProcess, container: dict, overrides: dict) -> None:
        """The container's process, as Fargate starts it (see the module docstring)."""
        scratch = self.folder / task.arn.rsplit("/", 1)[-1]
        for folder in ("home", "workdir"):
            (scratch / folder).mkdir(parents=True, exist_ok=True)
        mapping = self.image.paths(scratch)
        why = self._pullable(container["image"])
        if why:
            raise RuntimeError(why)
        environment = {name: Image.local(value, mapping) for name, value in self.image.env.items()}
        environment["PATH"] = ":".join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]
        )
        for variable in container.get("environment", []):
            environment[variable["name"]] = Image.local(variable["value"], mapping)
        if self.tls_environment and "PGSSLROOTCERT" not in environment:
            environment |= {name: Image.local(value, mapping) for name, value in self.tls_environment.items()}
            self.given_tls.add(container["name"])
        try:
            for secret in container.get("secrets", []):
                environment[secret["name"]] = self._resolve_secret(secret["valueFrom"])
        except Exception as error:
            raise RuntimeError(f"ResourceInitializationError: unable to pull secrets: {error}") from error
        for variable in overrides.get("environment", []):
            environment[variable["name"]] = variable["value"]
        environment |= {
            "HOME": str(scratch / "workdir"),
            "PYTHONPATH": str(ROOT),  # the package, installed in the image
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
        for name, value in self.extra_environment.items():
            environment.setdefault(name, value)
        command = overrides.get("command") or container.get("command") or self.image.cmd
        argv = [Image.local(arg, mapping) for arg in [*self.image.entrypoint, *command]]
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        for mapping_ in container.get("portMappings", []):
            task.ports[mapping_["containerPort"]] = free_port()
        argv = [
            "127.0.0.1"
            if arg == "0.0.0.0"
            else str(task.ports[int(arg)])
            if arg.isdigit() and int(arg) in task.ports
            else arg
            for arg in argv
        ]
        with open(task.log, "ab") as log:
            task.process = subprocess.Popen(
                argv, env=environment, cwd=scratch / "workdir", stdout=log, stderr=subprocess.STDOUT
            )

    def _start_task(self, backend, task) -> None:
        definition = backend.describe_task_definition(task.task_definition_arn)
        (container,) = definition.container_definitions
        overrides = next(
            (
                o
                for o in (task.overrides or {}).get("containerOverrides", [])
                if o.get("name") == container["name"]
            ),
            {},
        )
        process = TaskProcess(
            task.task_arn,
            definition.arn,
            container["name"],
            self.folder / f"{container['name']}-{task.id}.log",
        )
        process.moto_task = task
        with self._lock:
            self.tasks[task.task_arn] = process
        try:
            self._launch(process, container, overrides)
        except Exception as error:
            process.stopped_reason = str(error)
            process.log.write_text(f"{error}\n")
            self._stopped(process, None, str(error), "TaskFailedToStart")

    def _stopped(self, process: TaskProcess, exit_code: int | None, reason: str, code: str) -> None:
        """The moto task as ECS shows a stopped one."""
        process.exit_code, process.stopped_reason = exit_code, reason
        task = process.moto_task
        if task is None:
            return
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = exit_code
        task.stopped_reason = reason
        task.stop_code = code
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"

    def wait(self, arn: str, seconds: float) -> TaskProcess:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                task = self.tasks.get(arn)
            if task and (task.exit_code is not None or task.stopped_reason):
                return task
            time.sleep(0.2)
        raise TimeoutError(f"task {arn} still running after {seconds:.0f} s")

    # --- services -------------------------------------------------------------------------------

    def reconcile(self, backend) -> None:
        """Each service's one task: started, restarted on a new definition or deployment, stopped."""
        with self._lock:
            wanted = {}
            for service in list(backend.services.values()):
                if service.status != "ACTIVE" or not service.desired_count:
                    continue
                definition = backend.describe_task_definition(service.task_definition)
                (container,) = definition.container_definitions
                if not container["image"].startswith(self.repository + ":"):
                    self.not_run[service.name] = f"image {container['image']} is not the pipeline's"
                    continue
                deployment = service.deployments[0]["id"] if service.deployments else ""
                wanted[service.name] = (definition, container, deployment)
            for name, running in list(self.services.items()):
                definition, _, deployment = wanted.get(name, (None, None, None))
                if (
                    definition is None
                    or definition.arn != running.definition_arn
                    or deployment != running.deployment
                ):
                    self._terminate(running)
                    del self.services[name]
            for name, (definition, container, deployment) in wanted.items():
                if name in self.services:
                    continue
                task = TaskProcess(
                    f"service/{name}/{int(time.time() * 1000)}",
                    definition.arn,
                    container["name"],
                    self.folder / f"{name}.log",
                    deployment=deployment,
                )
                self.services[name] = task
                try:
                    self._launch(task, container, {})
                except Exception as error:
                    task.stopped_reason = str(error)
                    task.log.write_text(f"{error}\n")

    # --- processes ------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                running = [t for t in self.tasks.values() if t.process and t.exit_code is None]
                services = [t for t in self.services.values() if t.process and t.exit_code is None]
            for task in running:
                code = task.process.poll()
                if code is not None:
                    self._stopped(
                        task, code, "Essential container in task exited", "EssentialContainerExited"
                    )
            for task in services:
                code = task.process.poll()
                if code is not None:
                    task.exit_code = code
                    task.stopped_reason = f"Essential container in task exited (exit code {code})"
            time.sleep(0.2)

    @staticmethod
    def _terminate(task: TaskProcess) -> None:
        if task.process and task.process.poll() is None:
            task.process.terminate()  # ECS's stop: SIGTERM, then SIGKILL after the stop timeout
            try:
                task.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                task.process.kill()
                task.process.wait()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            every = [*self.tasks.values(), *self.services.values()]
        for task in every:
            self._terminate(task)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
