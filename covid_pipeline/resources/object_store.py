"""A place to keep files: a local folder, or an S3 prefix (`s3://bucket/prefix`).

Raw sources and reports both live in one of these. S3 goes through boto3, which honours
AWS_ENDPOINT_URL, so S3-compatible endpoints (and moto in tests) work unchanged.

A fault of the store itself (a read-only or full disk, a file where the folder should be, a file gone) is a
StoreError: one line naming the path and the setting to change, which no retry would cure. A write that fails
leaves nothing behind: files are written beside their name (`.partial`) and renamed into place.
"""

import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A scheme-like word then ":" or "//" (`s3//bucket`, `s3:/bucket`, `https:/x`): a URL typed wrong, which as a
# folder path would silently become ./s3/bucket. A one-letter "scheme" is a Windows drive (C:\\...).
MISTYPED_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+(:|//)")


def location_problem(location: str) -> str | None:
    """Why `location` cannot be a store, for a person; None when it is a folder or `s3://bucket[/prefix]`."""
    if location.startswith("s3://"):
        bucket = location[len("s3://") :].partition("/")[0]
        return None if bucket else "names no bucket: write s3://bucket/prefix"
    if "://" in location:
        return "is a URL the stores do not take: write s3://bucket/prefix, or a folder"
    if MISTYPED_URL.match(location):
        return (
            "looks like a mistyped URL: write s3://bucket/prefix for S3, "
            f"or ./{location} for a folder of that name"
        )
    return None


# What the person running the pipeline can do about each fault of a local store.
_FAULTS = {
    errno.ENOSPC: ("no space left on the device", "Free space there, or point {setting} at a disk with room"),
    errno.EDQUOT: ("disk quota exceeded", "Free space there, or point {setting} at a disk with room"),
    errno.EROFS: ("read-only file system", "Make it writable, or point {setting} at a writable folder"),
    errno.EACCES: ("permission denied", "Make it writable, or point {setting} at a writable folder"),
    errno.EPERM: ("permission denied", "Make it writable, or point {setting} at a writable folder"),
    errno.ENOTDIR: ("a file stands where a folder should be", "Point {setting} at a folder"),
    errno.EEXIST: ("a file stands where a folder should be", "Point {setting} at a folder"),
}


class StoreError(RuntimeError):
    """The store cannot be read or written; the message names the path and the setting."""


class ObjectStore:
    """Files under keys like `cases/<sha256>.zip`, in a folder or an S3 prefix."""

    def __init__(self, location: str, name: str = "store", setting: str = "its location setting"):
        self.location = location.rstrip("/")
        self.name, self.setting = name, setting  # for messages: "raw store", "COVID_RAW_STORE"
        self.is_s3 = self.location.startswith("s3://")
        if self.is_s3:
            bucket, _, prefix = self.location[len("s3://") :].partition("/")
            self.bucket, self.prefix = bucket, prefix.strip("/")
        else:
            self.root = Path(self.location).expanduser()

    def __repr__(self) -> str:
        return f"ObjectStore({self.location!r})"

    def uri(self, key: str) -> str:
        return f"{self.location}/{key}" if self.is_s3 else str(self.root / key)

    def exists(self, key: str) -> bool:
        if not self.is_s3:
            return self._path(key).is_file()
        from botocore.exceptions import ClientError

        try:
            self._s3().head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise

    def put_file(self, local_path: Path, key: str, content_type: str | None = None) -> str:
        """Store a local file under `key` (atomically: a reader never sees half a file)."""
        if self.is_s3:
            extra = {"ContentType": content_type} if content_type else None
            self._s3().upload_file(str(local_path), self.bucket, self._key(key), ExtraArgs=extra)
        else:
            with self._writing(key) as partial:
                shutil.copyfile(local_path, partial)
        return self.uri(key)

    def put_bytes(self, data: bytes, key: str, content_type: str | None = None) -> str:
        if self.is_s3:
            extra = {"ContentType": content_type} if content_type else {}
            self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        else:
            with self._writing(key) as partial:
                partial.write_bytes(data)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                return self._s3().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as exc:
                raise self._missing(key) if _is_missing(exc) else exc from None
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise self._missing(key) from None
        except OSError as exc:
            raise self._fault(exc, "read", path) from None

    def put_json(self, obj: Any, key: str) -> str:
        return self.put_bytes(
            json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), key, "application/json"
        )

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    @contextmanager
    def local_copy(self, key: str, scratch_dir: str | None = None) -> Iterator[Path]:
        """A local path holding the object: the file itself for a folder, a temporary download for S3.

        Zip archives need random access, so S3 objects are fetched (multipart, in parallel) first.
        """
        if not self.is_s3:
            path = self._path(key)
            if not path.is_file():
                raise self._missing(key)
            yield path
            return
        import tempfile

        from botocore.exceptions import ClientError

        with tempfile.TemporaryDirectory(dir=scratch_dir) as folder:
            path = Path(folder) / Path(key).name
            try:
                self._s3().download_file(self.bucket, self._key(key), str(path))
            except ClientError as exc:
                raise self._missing(key) if _is_missing(exc) else exc from None
            yield path

    def _path(self, key: str) -> Path:
        """The local file of `key`; refuses a store whose folder is a file (nothing could ever be kept there)."""
        if self.root.is_file():
            raise StoreError(
                f"The {self.name} {self.root} is a file, not a folder: point {self.setting} at a folder "
                "(or s3://bucket/prefix)."
            )
        return self.root / key

    @contextmanager
    def _writing(self, key: str) -> Iterator[Path]:
        """A `.partial` path to write `key`'s content to, renamed to `key` when done and removed if not."""
        target = self._path(key)
        partial = target.with_name(target.name + ".partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            yield partial
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise self._fault(exc, "write", Path(exc.filename2 or exc.filename or target)) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def _fault(self, exc: OSError, doing: str, path: Path) -> StoreError:
        reason, advice = _FAULTS.get(exc.errno, (exc.strerror or str(exc), "Check {setting}"))
        if Path(path).name.endswith(".partial"):
            path = Path(path).with_name(Path(path).name.removesuffix(".partial"))
        where = "" if str(path).startswith(self.location) else f" (the {self.name} is {self.location})"
        return StoreError(
            f"The {self.name} cannot {doing} {path}: {reason}. {advice.format(setting=self.setting)}{where}."
        )

    def _missing(self, key: str) -> StoreError:
        return StoreError(f"{self.uri(key)} is not in the {self.name} (deleted or moved?).")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _s3(self):
        import boto3

        return boto3.client("s3")


def _is_missing(exc) -> bool:
    """An S3 ClientError saying the object does not exist."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
