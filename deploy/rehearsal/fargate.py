"""Fargate on this machine: each ECS task that moto's ECS is asked to run, and each service's task,
started as local processes, one per container, the way Fargate starts the containers of a task.

It lives in the process that serves moto's API (it watches moto's ECS model through hooks on its
backend), and for each task it does what Fargate does before and while the containers run, refusing
what ECS refuses (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html,
`essential`, `dependsOn`, `stopTimeout`, and API_ContainerDependency.html):

- a task definition needs at least one essential container; a dependency names a container of the
  task, COMPLETE and SUCCESS only on a container that is not essential, HEALTHY only on one with a
  health check (none here: HEALTHY is refused as not modelled);
- every container's image must be pullable: the pipeline image in ECR under its tag, or an image the
  rehearsal stands in for (`stand_ins`: Metabase's); else "CannotPullContainerError" and the task stops
  before any container starts;
- every `secrets` entry is resolved from Secrets Manager (`arn:...:secret:name-AbCdEf:json-key::`) or
  Parameter Store; one that does not resolve stops the task ("ResourceInitializationError");
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-ssm-paramstore.html
- the task's volumes (bind mounts on Fargate's ephemeral storage) are folders of the task, mounted at
  each container's `mountPoints`; a volume mounted where the image declares a VOLUME is first filled
  with the image's files at that path ("the data in the VOLUME directive path is copied to the data
  volume", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html);
- a container starts once each of its `dependsOn` conditions holds: START (the other one started),
  COMPLETE (it exited), SUCCESS (it exited 0; exiting otherwise, the condition can never hold and the
  task stops);
- each process gets exactly: the image's ENV (docker/Dockerfile), the container's `environment`, the
  resolved `secrets`, RunTask's container overrides, and what Fargate itself adds (the region, the
  task role's credentials: here moto's endpoint and test keys); its command is the image's
  ENTRYPOINT with the override, the container's `command` or the image's CMD, as Docker composes them;
- when an essential container exits, the task stops ("Essential container in task exited"): the
  other containers get SIGTERM, dependents before what they depend on, and SIGKILL after their
  `stopTimeout` (30 s by default); a container that is not essential may exit alone. The task is
  then STOPPED with each container's exit code.

What a container cannot be here, and how the stand-in makes up for it:
- the pipeline image's files are this checkout's (COPY sources), its virtual environment this
  interpreter's, and the package the one PYTHONPATH points at; DAGSTER_HOME and the working directory
  are folders of the container (`Image.local`); `extra_paths` maps more image paths (the CA bundle);
- an image the rehearsal stands in for runs `stand_ins[repository]`, a command of this checkout given
  the container's environment, REHEARSAL_MOUNTS (its mount points, here) and REHEARSAL_PORTS;
- awsvpc gives a task one address that its containers share: here each container port of the task is
  mapped to a free port on 127.0.0.1, and the commands and environment say so (`--host 0.0.0.0`
  becomes 127.0.0.1, a container port given alone or after localhost: the mapped one);
- DNS: the environment gets libpq's PGHOSTADDR for the RDS endpoint (`extra_environment`);
- a read-only mount point is not enforced, nor are CPU, memory and disk limits.

Services run one task each (whatever their desired count above 0), replaced on a new task
definition or a forced deployment, stopped at a desired count of 0. A service's task that stops is
not replaced (ECS would start another): the rehearsal reports it instead.
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
STOP_TIMEOUT = 30  # seconds, ECS's default stopTimeout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TaskFailed(Exception):
    """The task cannot start: its stoppedReason."""


class Image:
    """The pipeline image as docker/Dockerfile builds it (its last stage), run from this checkout."""

    def __init__(self, dockerfile: Path = DOCKERFILE, extra_paths: dict[str, Path] | None = None):
        lines = re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
        start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
        self.env: dict[str, str] = {}
        self.copied: dict[str, Path] = {}  # image path -> checkout path
        self.volumes: list[str] = []
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
            elif instruction == "VOLUME":
                self.volumes += json.loads(rest) if rest.startswith("[") else rest.split()
            elif instruction == "ENTRYPOINT":
                self.entrypoint = json.loads(rest)
            elif instruction == "CMD":
                self.cmd = json.loads(rest)
            elif instruction == "WORKDIR":
                self.workdir = rest
        self.extra_paths = {path: Path(local) for path, local in (extra_paths or {}).items()}

    def paths(self, scratch: Path) -> dict[str, str]:
        """Image path -> local path, for one container whose own folders are under `scratch`."""
        venv_bin = self.env.get("PATH", "").split(":")[0]
        mapping = {image: str(local) for image, local in self.copied.items()}
        mapping |= {image: str(local) for image, local in self.extra_paths.items()}
        mapping[venv_bin] = str(Path(sys.executable).parent)
        for name in ("DAGSTER_HOME",):
            if name in self.env:
                mapping[self.env[name]] = str(scratch / "home")
        mapping[self.workdir] = str(scratch / "workdir")
        return mapping

    def files_under(self, path: str) -> dict[str, Path]:
        """The image's files at `path` and below (relative path -> local file), as far as they are known."""
        files = {**self.copied, **self.extra_paths}
        return {
            image[len(path) :].lstrip("/"): local
            for image, local in files.items()
            if image.startswith(path.rstrip("/") + "/") and local.is_file()
        }

    @staticmethod
    def local(value: str, mapping: dict[str, str]) -> str:
        for image_path in sorted(mapping, key=len, reverse=True):
            if value == image_path or value.startswith(image_path.rstrip("/") + "/"):
                return mapping[image_path] + value[len(image_path) :]
        return value


@dataclass
class Container:
    """One container of a task: its definition and, once started, its process."""

    name: str
    definition: dict
    log: Path
    argv: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen | None = None
    exit_code: int | None = None

    @property
    def essential(self) -> bool:
        return self.definition.get("essential", True)

    @property
    def depends_on(self) -> list[tuple[str, str]]:
        return [(d["containerName"], d["condition"]) for d in self.definition.get("dependsOn") or []]

    def tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""


@dataclass
class Task:
    """One task: its containers, the ports they share, and why it stopped."""

    arn: str
    definition_arn: str
    folder: Path
    containers: dict[str, Container]
    volumes: list[dict] = field(default_factory=list)  # the definition's
    ports: dict[int, int] = field(default_factory=dict)  # container port -> local port
    ready: bool = False  # prepared: its containers may start
    deployment: str = ""
    stopped_reason: str = ""
    stop_code: str = ""
    moto_task: object = None  # the task in moto's ECS model (run tasks only)
    started: list[str] = field(default_factory=list)  # container names, in the order they started
    ended: threading.Event = field(default_factory=threading.Event)  # every process gone

    @property
    def stopping(self) -> bool:
        return bool(self.stopped_reason)

    def tail(self, characters: int = 4000) -> str:
        """Each container's last output, named."""
        return "\n".join(
            f"[{container.name}] {container.tail(characters)}"
            for container in self.containers.values()
            if container.tail(characters).strip()
        )


class Fargate:
    def __init__(
        self,
        folder: Path,
        image: Image,
        repository: str,
        extra_environment: dict[str, str],
        account_id: str = "123456789012",
        region: str = "us-east-1",
        stand_ins: dict[str, list[str]] | None = None,
    ):
        self.folder, self.image, self.repository = folder, image, repository
        self.extra_environment = extra_environment
        # A repository (e.g. "metabase/metabase", wherever it is pulled from) -> the command standing in for it.
        self.stand_ins = stand_ins or {}
        self.account_id, self.region = account_id, region
        self.tasks: dict[str, Task] = {}  # run tasks, by ARN
        self.services: dict[str, Task] = {}  # each service's task, by service name
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
        # when its processes end, and not before.
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
        self.start()

    def start(self) -> None:
        """ECS's worker and the watcher of the processes (`install` starts them)."""
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

    # --- what ECS checks before a task starts -----------------------------------------------------

    @staticmethod
    def _check_definition(containers: dict[str, Container]) -> None:
        """What ECS refuses in a task definition, and moto accepts (module docstring)."""
        if not any(container.essential for container in containers.values()):
            raise TaskFailed("ClientException: a task definition needs at least one essential container")
        for container in containers.values():
            for name, condition in container.depends_on:
                other = containers.get(name)
                if other is None:
                    raise TaskFailed(f"ClientException: container {container.name} depends on unknown {name}")
                if condition in ("COMPLETE", "SUCCESS") and other.essential:
                    raise TaskFailed(
                        f"ClientException: {condition} cannot be set on the essential container {name}"
                    )
                if condition == "HEALTHY":
                    raise TaskFailed(
                        f"HEALTHY ({container.name} on {name}): container health checks not modelled"
                    )
                if condition not in ("START", "COMPLETE", "SUCCESS"):
                    raise TaskFailed(f"ClientException: unknown dependency condition {condition}")

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
        """Why Fargate could not pull the pipeline image `image`, or None."""
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

    def _stand_in(self, image: str) -> list[str] | None:
        """The command standing in for `image` (registry/.../repository:tag or @digest), if any."""
        # The first component names a registry if it has a dot or a port, or is localhost (Docker's rule).
        first, _, rest = image.partition("/")
        path = rest if rest and (re.search(r"[.:]", first) or first == "localhost") else image
        repository = re.split(r"[@:]", path, maxsplit=1)[0]
        for name, command in self.stand_ins.items():
            if repository == name or repository.endswith("/" + name):
                return command
        return None

    @staticmethod
    def _ports(value: str, ports: dict[int, int], alone: bool = True) -> str:
        """`value` with the task's container ports as they are mapped here (module docstring); a port
        `alone` (a command's argument, not a variable's value) too."""
        if value == "0.0.0.0":
            return "127.0.0.1"
        if alone and value.isdigit() and int(value) in ports:
            return str(ports[int(value)])
        return re.sub(
            r"\b(localhost|127\.0\.0\.1):(\d+)\b",
            lambda match: f"{match[1]}:{ports.get(int(match[2]), match[2])}",
            value,
        )

    def _prepare(self, task: Task, overrides: dict) -> None:
        """Everything Fargate does before the first container starts; TaskFailed when it cannot."""
        containers = task.containers
        self._check_definition(containers)
        commands = {}
        for container in containers.values():
            image = container.definition["image"]
            if image.startswith(self.repository + ":"):
                why = self._pullable(image)
                if why:
                    raise TaskFailed(why)
                commands[container.name] = None  # the pipeline image's own
            elif (stand_in := self._stand_in(image)) is not None:
                commands[container.name] = stand_in
            else:
                raise TaskFailed(f"CannotPullContainerError: {image}: no such image here")
        for container in containers.values():
            for mapping in container.definition.get("portMappings") or []:
                task.ports[mapping["containerPort"]] = free_port()
        volumes = {}
        for volume in task.volumes:
            volumes[volume["name"]] = task.folder / "volumes" / volume["name"]
            volumes[volume["name"]].mkdir(parents=True, exist_ok=True)
        try:
            secrets = {
                container.name: {
                    secret["name"]: self._resolve_secret(secret["valueFrom"])
                    for secret in container.definition.get("secrets") or []
                }
                for container in containers.values()
            }
        except Exception as error:
            raise TaskFailed(f"ResourceInitializationError: unable to pull secrets: {error}") from error
        for container in containers.values():
            scratch = task.folder / container.name
            for folder in ("home", "workdir"):
                (scratch / folder).mkdir(parents=True, exist_ok=True)
            mounts = {}
            for mount in container.definition.get("mountPoints") or []:
                if mount["sourceVolume"] not in volumes:
                    raise TaskFailed(
                        f"ClientException: unknown volume {mount['sourceVolume']} in {container.name}"
                    )
                mounts[mount["containerPath"]] = str(volumes[mount["sourceVolume"]])
            stand_in = commands[container.name]
            if stand_in is None:
                self._fill_volumes(mounts)
                paths = self.image.paths(scratch)
                paths = {
                    image: local
                    for image, local in paths.items()
                    if not any(image == m or image.startswith(m.rstrip("/") + "/") for m in mounts)
                } | mounts
            else:
                paths = mounts
            override = next(
                (o for o in overrides.get("containerOverrides", []) if o.get("name") == container.name), {}
            )
            container.environment = self._environment(
                container, paths, secrets[container.name], override, stand_in is None, scratch
            )
            if stand_in is not None:
                container.environment |= {
                    "REHEARSAL_MOUNTS": json.dumps(mounts),
                    "REHEARSAL_PORTS": json.dumps({str(k): v for k, v in task.ports.items()}),
                }
            command = override.get("command") or container.definition.get("command") or []
            if stand_in is None:
                argv = [*self.image.entrypoint, *(command or self.image.cmd)]
                argv = [Image.local(arg, paths) for arg in argv]
                if argv and argv[0] == "python":
                    argv[0] = sys.executable
            else:
                argv = [*stand_in, *command]
            container.argv = [self._ports(arg, task.ports) for arg in argv]
            container.environment = {
                name: self._ports(value, task.ports, alone=False)
                for name, value in container.environment.items()
            }
            container.cwd = scratch / "workdir"
        task.ready = True

    def _fill_volumes(self, mounts: dict[str, str]) -> None:
        """An empty volume mounted where the pipeline image declares a VOLUME gets the image's files there."""
        for path, folder in mounts.items():
            if path in self.image.volumes and not any(Path(folder).iterdir()):
                for relative, local in self.image.files_under(path).items():
                    (Path(folder) / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(local, Path(folder) / relative)

    def _environment(
        self,
        container: Container,
        paths: dict[str, str],
        secrets: dict,
        override: dict,
        pipeline: bool,
        scratch: Path,
    ) -> dict[str, str]:
        environment = {}
        if pipeline:
            environment = {name: Image.local(value, paths) for name, value in self.image.env.items()}
        environment["PATH"] = ":".join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]
        )
        for variable in container.definition.get("environment") or []:
            environment[variable["name"]] = Image.local(variable["value"], paths)
        environment |= secrets
        for variable in override.get("environment", []):
            environment[variable["name"]] = variable["value"]
        environment |= {
            "HOME": str(scratch / "workdir"),
            "PYTHONPATH": str(ROOT),  # the package, installed in the pipeline image
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
        for name, value in self.extra_environment.items():
            environment.setdefault(name, value)
        return environment

    # --- tasks ----------------------------------------------------------------------------------

    def _new_task(self, arn: str, definition, deployment: str = "") -> Task:
        folder = self.folder / arn.rsplit("/", 1)[-1]
        folder.mkdir(parents=True, exist_ok=True)
        containers = {
            spec["name"]: Container(spec["name"], spec, folder / f"{spec['name']}.log")
            for spec in definition.container_definitions
        }
        return Task(arn, definition.arn, folder, containers, definition.volumes, deployment=deployment)

    def _launch(self, task: Task, overrides: dict) -> None:
        try:
            self._prepare(task, overrides)
        except TaskFailed as error:
            (task.folder / "stopped.log").write_text(f"{error}\n")
            self._stopped(task, str(error), "TaskFailedToStart")
            return
        with self._lock:
            self._advance(task)

    def run(self, arn: str, definition, overrides: dict | None = None, moto_task=None) -> Task:
        """Runs task `arn` of `definition` (moto's TaskDefinition: arn, container_definitions, volumes)
        with RunTask's `overrides`; returns it started (the containers whose dependencies hold run) or stopped."""
        task = self._new_task(arn, definition)
        task.moto_task = moto_task
        with self._lock:
            self.tasks[task.arn] = task
        self._launch(task, overrides or {})
        return task

    def _start_task(self, backend, moto_task) -> None:
        definition = backend.describe_task_definition(moto_task.task_definition_arn)
        self.run(moto_task.task_arn, definition, moto_task.overrides, moto_task)

    def _advance(self, task: Task) -> None:
        """Notes exits, stops the task when an essential container exited or a dependency cannot hold,
        starts each container whose dependencies hold. Called with the lock held."""
        if task.stopping or not task.ready:
            return
        for container in task.containers.values():
            if container.process and container.exit_code is None:
                container.exit_code = container.process.poll()
        for container in task.containers.values():
            if container.essential and container.exit_code is not None:
                self._stop(
                    task,
                    f"Essential container in task exited ({container.name}, exit code {container.exit_code})",
                    "EssentialContainerExited",
                )
                return
        for container in task.containers.values():
            if container.process:
                continue
            waiting = False
            for name, condition in container.depends_on:
                other = task.containers[name]
                if condition == "START":
                    waiting |= other.process is None
                elif other.exit_code is None:
                    waiting = True
                elif condition == "SUCCESS" and other.exit_code != 0:
                    self._stop(
                        task,
                        f"dependency of {container.name} on {name} (SUCCESS) cannot be met: "
                        f"{name} exited {other.exit_code}",
                        "TaskFailedToStart",
                    )
                    return
            if not waiting:
                with open(container.log, "ab") as log:
                    container.process = subprocess.Popen(
                        container.argv,
                        env=container.environment,
                        cwd=container.cwd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                task.started.append(container.name)

    def _stop(self, task: Task, reason: str, code: str) -> None:
        """ECS's stop: SIGTERM to each container still running, dependents first, SIGKILL after its
        stopTimeout; then the task is STOPPED. In a thread of its own (a stop may take stopTimeout)."""
        task.stopped_reason, task.stop_code = reason, code

        def stop() -> None:
            for name in reversed(task.started):
                container = task.containers[name]
                if container.process.poll() is None:
                    container.process.terminate()
                    try:
                        container.process.wait(
                            timeout=container.definition.get("stopTimeout") or STOP_TIMEOUT
                        )
                    except subprocess.TimeoutExpired:
                        container.process.kill()
                        container.process.wait()
                container.exit_code = container.process.returncode
            self._stopped(task, reason, code)

        threading.Thread(target=stop, name=f"stop-{task.arn.rsplit('/', 1)[-1]}", daemon=True).start()

    @staticmethod
    def _stopped(task: Task, reason: str, code: str) -> None:
        """The task as ECS shows a stopped one (the moto task, for run tasks)."""
        task.stopped_reason, task.stop_code = reason, code
        if task.moto_task is not None:
            for container in task.moto_task.containers:
                ours = task.containers.get(container.name)
                container.last_status = "STOPPED"
                container.exitCode = ours.exit_code if ours else None
            task.moto_task.stopped_reason = reason
            task.moto_task.stop_code = code
            task.moto_task.desired_status = "STOPPED"
            task.moto_task.last_status = "STOPPED"
        task.ended.set()

    def wait(self, arn: str, seconds: float) -> Task:
        """The run task `arn` once it has stopped."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                task = self.tasks.get(arn)
            if task and task.ended.wait(0.2):
                return task
            time.sleep(0.2)
        raise TimeoutError(f"task {arn} still running after {seconds:.0f} s")

    # --- services -------------------------------------------------------------------------------

    def reconcile(self, backend) -> None:
        """Each service's one task: started, replaced on a new definition or deployment, stopped."""
        with self._lock:
            wanted = {}
            for service in list(backend.services.values()):
                if service.status != "ACTIVE" or not service.desired_count:
                    continue
                definition = backend.describe_task_definition(service.task_definition)
                deployment = service.deployments[0]["id"] if service.deployments else ""
                wanted[service.name] = (definition, deployment)
            replaced = []
            for name, running in list(self.services.items()):
                definition, deployment = wanted.get(name, (None, None))
                if (
                    definition is None
                    or definition.arn != running.definition_arn
                    or deployment != running.deployment
                ):
                    if not running.stopping:
                        self._stop(
                            running, "Scaling activity initiated by (deployment)", "ServiceSchedulerInitiated"
                        )
                    replaced.append(running)
                    del self.services[name]
        for running in replaced:  # outside the lock: the watcher keeps advancing the other tasks
            running.ended.wait(2 * STOP_TIMEOUT)
        for name, (definition, deployment) in wanted.items():
            with self._lock:
                if name in self.services:
                    continue
                task = self._new_task(f"service/{name}/{int(time.time() * 1000)}", definition, deployment)
                self.services[name] = task
            self._launch(task, {})

    # --- processes ------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                for task in [*self.tasks.values(), *self.services.values()]:
                    try:
                        self._advance(task)
                    except Exception:
                        self.errors.append(traceback.format_exc())
                        self._stop(task, "the Fargate stand-in failed", "TaskFailedToStart")
            time.sleep(0.2)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            every = [*self.tasks.values(), *self.services.values()]
            for task in every:
                if not task.stopping:
                    self._stop(task, "the rehearsal ended", "UserInitiated")
        for task in every:
            task.ended.wait(2 * STOP_TIMEOUT)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
