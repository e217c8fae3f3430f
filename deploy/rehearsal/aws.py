"""The AWS CLI for deploy.sh in the rehearsal, without its second of start-up per call.

deploy.sh calls `aws` a hundred times; each call of the real CLI spends most of its time importing
botocore and reading service models. A zygote imports them once (`serve`); each `aws ...` (`call`,
what the rehearsal's `aws` script runs) hands it its arguments, environment, working folder and
standard streams, and a forked child runs the CLI's own entry point with them (or, for
`cloudformation deploy`, its adaptation for moto: cloudformation.py) and answers its exit code.

    python -m deploy.rehearsal.aws serve SOCKET     # the zygote
    REHEARSAL_AWS_SOCKET=SOCKET python -m deploy.rehearsal.aws ARGS...
"""

import json
import os
import socket
import struct
import sys


def call(argv: list[str]) -> int:
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(os.environ["REHEARSAL_AWS_SOCKET"])
        request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
        socket.send_fds(connection, [struct.pack("!I", len(request))], [0, 1, 2])
        connection.sendall(request)
        answer = connection.recv(4)
    return struct.unpack("!i", answer)[0] if len(answer) == 4 else 255


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(connection, 4, 3)
    (length,) = struct.unpack("!I", header)
    data = b""
    while len(data) < length:
        data += connection.recv(length - len(data))
    return json.loads(data), fds


def _run(driver, request: dict) -> int:
    from deploy.rehearsal import cloudformation

    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    argv = request["argv"]
    try:
        if argv[:2] == ["cloudformation", "deploy"]:
            cloudformation.main(argv[2:])
            return 0
        return driver.main(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 255)


def serve(path: str) -> None:
    import signal

    import awscli.clidriver

    from deploy.rehearsal import cloudformation  # noqa: F401  (imported once, for every child)

    driver = awscli.clidriver.create_clidriver()
    for service in ("cloudformation", "ecs", "ecr", "iam", "secretsmanager", "ssm", "rds", "sts"):
        driver.session.get_service_model(service)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(64)
        print("ready", flush=True)
        while True:
            connection, _ = server.accept()
            request, fds = _receive(connection)
            if os.fork() == 0:
                server.close()
                for target, fd in zip((0, 1, 2), fds, strict=True):
                    os.dup2(fd, target)
                code = 255
                try:
                    code = _run(driver, request)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    connection.sendall(struct.pack("!i", code))
                    os._exit(code)
            connection.close()
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    else:
        sys.exit(call(sys.argv[1:]))
