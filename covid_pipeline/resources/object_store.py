"""A place to keep files: a local folder, or an S3 prefix (`s3://bucket/prefix`).

Raw sources and reports both live in one of these. S3 goes through boto3, which honours
AWS_ENDPOINT_URL, so S3-compatible endpoints (and moto in tests) work unchanged.
"""

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


class ObjectStore:
    """Files under keys like `cases/<sha256>.zip`, in a folder or an S3 prefix."""

    def __init__(self, location: str):
        self.location = location.rstrip("/")
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
            return (self.root / key).is_file()
        from botocore.exceptions import ClientError

        try:
            self._s3().head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_file(self, local_path: Path, key: str, content_type: str | None = None) -> str:
        """Store a local file under `key` (atomically: a reader never sees half a file)."""
        if self.is_s3:
            extra = {"ContentType": content_type} if content_type else None
            self._s3().upload_file(str(local_path), self.bucket, self._key(key), ExtraArgs=extra)
        else:
            target = self.root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(local_path, partial)
            os.replace(partial, target)
        return self.uri(key)

    def put_bytes(self, data: bytes, key: str, content_type: str | None = None) -> str:
        if self.is_s3:
            extra = {"ContentType": content_type} if content_type else {}
            self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        else:
            target = self.root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(data)
            os.replace(partial, target)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        if self.is_s3:
            return self._s3().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return (self.root / key).read_bytes()

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
            path = self.root / key
            if not path.is_file():
                raise FileNotFoundError(f"{path} is not in the raw store; materialize raw_csv_s3 first")
            yield path
            return
        import tempfile

        with tempfile.TemporaryDirectory(dir=scratch_dir) as folder:
            path = Path(folder) / Path(key).name
            self._s3().download_file(self.bucket, self._key(key), str(path))
            yield path

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _s3(self):
        import boto3

        return boto3.client("s3")
