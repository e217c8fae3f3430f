"""Real small or read-only file systems for the tests of faults of the machine: a tmpfs of a few megabytes that
fills up for real (ENOSPC), and remounted read-only (EROFS). Mounting needs root, or passwordless sudo (as on
GitHub's runners); elsewhere the tests that need one are skipped, saying why."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount_command() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    if subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


class SmallDisk:
    """A tmpfs mounted at `path`, `megabytes` large; resized or made read-only in place."""

    def __init__(self, path: Path, megabytes: int, prefix: list[str]):
        self.path, self._prefix = path, prefix
        owner = "" if os.geteuid() == 0 else f",uid={os.getuid()},gid={os.getgid()}"
        self._run("mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0777{owner}", "tmpfs", str(path))

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._prefix, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")

    def resize(self, megabytes: int) -> None:
        """Space is back (or taken away): the same files, a larger (or smaller) file system."""
        self._run("mount", "-o", f"remount,size={megabytes}m", str(self.path))

    def read_only(self, read_only: bool = True) -> None:
        self._run("mount", "-o", "remount,ro" if read_only else "remount,rw", str(self.path))

    def fill(self) -> Path:
        """Take every free byte with one file (removed to give the space back)."""
        filler = self.path / "filler"
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            size = 1 << 20
            while size:
                try:
                    os.write(descriptor, b"\0" * size)
                except OSError:
                    size //= 2
        finally:
            os.close(descriptor)
        return filler

    def unmount(self) -> None:
        done = subprocess.run([*self._prefix, "umount", str(self.path)], capture_output=True)
        if done.returncode != 0:  # a process still holds it: detach now, freed when it lets go
            subprocess.run([*self._prefix, "umount", "-l", str(self.path)], capture_output=True)


@contextmanager
def small_disk(path: Path, megabytes: int) -> Iterator[SmallDisk]:
    """A tmpfs of `megabytes` at `path` for the test's duration (skips the test where mounting is not allowed)."""
    prefix = _mount_command()
    if prefix is None:
        pytest.skip("mounting a small tmpfs needs root or passwordless sudo")
    path.mkdir(parents=True, exist_ok=True)
    try:
        disk = SmallDisk(path, megabytes, prefix)
    except RuntimeError as refused:
        pytest.skip(f"this machine does not allow mounting a tmpfs ({refused})")
    try:
        yield disk
    finally:
        disk.unmount()
