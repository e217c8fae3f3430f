"""Where the pipeline's inputs are published: SISA's registry and the georef reference files.

Downloads stream to disk while they are hashed, so a multi-GB file never sits in memory. A
connection that drops mid-way is resumed with an HTTP Range request when the server allows it
(If-Range keeps the pieces from two different publications apart), with retries and backoff.
"""

import hashlib
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field

from covid_pipeline.ingest.reader import sniff
from covid_pipeline.progress import INTERVAL_SECONDS, Progress, download_line

OFFICIAL_CASES_URL = "https://sisa.msal.gov.ar/datos/descargas/covid-19/files/Covid19Casos.zip"
OFFICIAL_PROVINCES_URL = (
    "https://infra.datos.gob.ar/catalog/modernizacion/dataset/7/distribution/7.7/download/provincias.csv"
)
OFFICIAL_DEPARTMENTS_URL = (
    "https://infra.datos.gob.ar/catalog/modernizacion/dataset/7/distribution/7.8/download/departamentos.csv"
)
SOURCE_NAMES = ("cases", "provinces", "departments")
# The environment variable that sets each source (definitions.py), for messages.
SETTINGS = {
    "cases": "COVID_CASES_URL",
    "provinces": "COVID_PROVINCES_URL",
    "departments": "COVID_DEPARTMENTS_URL",
}
HTML_TYPES = ("text/html", "application/xhtml+xml")
BLOCK = 1024 * 1024


class DownloadError(RuntimeError):
    pass


class _Interrupted(Exception):
    """A failure worth another attempt: dropped connection, short body, server error."""


@dataclass
class Fetched:
    name: str
    url: str
    path: Path
    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None

    @property
    def extension(self) -> str:
        suffix = Path(urllib.parse.urlparse(self.url).path).suffix.lower()
        return suffix if suffix in (".zip", ".csv") else ".csv"


@dataclass
class Probe:
    """What can be learnt about a publication without downloading it (for the sensor)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    size: int | None = None
    sha256: str | None = None  # local files only

    @property
    def version(self) -> str:
        return "|".join(str(v) for v in (self.etag, self.last_modified, self.size, self.sha256))


class SourcesResource(ConfigurableResource):
    """The three published inputs. Each URL may be https://, http://, file:// or a plain path."""

    cases_url: str = Field(default=OFFICIAL_CASES_URL, description="Covid19Casos.zip (or a bare .csv)")
    provinces_url: str = Field(default=OFFICIAL_PROVINCES_URL, description="georef provincias.csv")
    departments_url: str = Field(default=OFFICIAL_DEPARTMENTS_URL, description="georef departamentos.csv")
    retries: int = Field(default=5, description="attempts per download before giving up")
    backoff_seconds: float = Field(default=2.0, description="first wait between attempts; doubles each time")
    timeout_seconds: float = Field(default=120.0, description="socket timeout of one HTTP read")
    progress_seconds: float = Field(
        default=INTERVAL_SECONDS, description="how often a download logs its bytes, rate and ETA"
    )

    def url_of(self, name: str) -> str:
        return {
            "cases": self.cases_url,
            "provinces": self.provinces_url,
            "departments": self.departments_url,
        }[name]

    def fetch(self, name: str, folder: Path) -> Fetched:
        """Copy source `name` into `folder`, hashing it on the way."""
        url = self.url_of(name)
        target = Path(folder) / f"{name}.download"
        path = local_path(url)
        if path is not None:
            if not path.is_file():
                raise DownloadError(f"{name}: {path} does not exist (check {SETTINGS[name]})")
            digest = _copy_hashing(path, target, name, self.progress_seconds)
            fetched = Fetched(name, url, target, digest, target.stat().st_size)
        else:
            fetched = _download(
                name,
                url,
                target,
                self.retries,
                self.backoff_seconds,
                self.timeout_seconds,
                self.progress_seconds,
            )
        validate(fetched)
        return fetched

    def probe(self, name: str) -> Probe:
        url = self.url_of(name)
        path = local_path(url)
        if path is not None:
            return Probe(url, size=path.stat().st_size, sha256=_hash_file(path))
        response = requests.head(url, allow_redirects=True, timeout=self.timeout_seconds)
        response.raise_for_status()
        length = response.headers.get("Content-Length")
        return Probe(
            url,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            size=int(length) if length and length.isdigit() else None,
        )


def local_path(url: str) -> Path | None:
    """The file a file:// URL or plain path names; None for http(s)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(url).expanduser()


def _copy_hashing(source: Path, target: Path, name: str, progress_seconds: float) -> str:
    digest, done, total = hashlib.sha256(), 0, source.stat().st_size
    progress = Progress(get_dagster_logger().info, progress_seconds)
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while block := reader.read(BLOCK):
            digest.update(block)
            writer.write(block)
            done += len(block)
            progress.tick(download_line, name, done, total)
    return digest.hexdigest()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while block := reader.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _download(
    name: str, url: str, target: Path, retries: int, backoff: float, timeout: float, progress_seconds: float
) -> Fetched:
    log = get_dagster_logger()
    progress = Progress(log.info, progress_seconds)
    digest, received, validator, expected = hashlib.sha256(), 0, None, None
    etag = last_modified = content_type = None
    attempt = 0
    with open(target, "wb") as out:
        while True:
            attempt += 1
            headers = {}
            if received and validator:
                headers = {"Range": f"bytes={received}-", "If-Range": validator}
            try:
                with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
                    if response.status_code == 206 and received:
                        log.info(f"{name}: resuming at byte {received:,}")
                    elif response.status_code == 200:
                        if received:
                            log.info(f"{name}: server restarted the download from the beginning")
                        out.seek(0)
                        out.truncate()
                        digest, received = hashlib.sha256(), 0
                        etag = response.headers.get("ETag")
                        last_modified = response.headers.get("Last-Modified")
                        content_type = response.headers.get("Content-Type")
                        length = response.headers.get("Content-Length")
                        expected = int(length) if length and length.isdigit() else None
                        # Resuming is safe only against the same publication: a strong validator.
                        strong_etag = etag and not etag.startswith("W/")
                        validator = etag if strong_etag else last_modified
                        if response.headers.get("Accept-Ranges", "").lower() != "bytes":
                            validator = None
                    elif response.status_code >= 500:
                        raise _Interrupted(f"HTTP {response.status_code}")
                    else:
                        raise DownloadError(
                            f"{name}: {url} answered HTTP {response.status_code}. Check {SETTINGS[name]}."
                        )
                    if response.headers.get("Content-Encoding"):
                        validator = None  # byte ranges of an encoded body do not match the file's
                    # read1 hands over whatever has arrived, so a dropped connection keeps its bytes.
                    while block := response.raw.read1(BLOCK, decode_content=True):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        progress.tick(download_line, name, received, expected)
                if expected is None or received == expected:
                    break
                raise _Interrupted(f"connection closed after {received:,} of {expected:,} bytes")
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError,
                _Interrupted,
            ) as exc:
                if attempt >= retries:
                    raise DownloadError(
                        f"{name}: download of {url} failed after {attempt} attempts ({exc}). "
                        f"Check the network or {SETTINGS[name]}, then re-run: nothing was replaced."
                    ) from exc
                wait = backoff * 2 ** (attempt - 1)
                log.warning(f"{name}: {exc}; retrying in {wait:.1f}s (attempt {attempt + 1} of {retries})")
                time.sleep(wait)
    return Fetched(name, url, target, digest.hexdigest(), received, etag, last_modified, content_type)


def validate(fetched: Fetched) -> None:
    """Refuse a download that is not the publication, before it is stored as one: an HTML page served
    with status 200 (an error or login page), or a file whose first bytes say it is something else."""
    where = f"{fetched.name}: {fetched.url}"
    if fetched.content_type and fetched.content_type.split(";")[0].strip().lower() in HTML_TYPES:
        raise DownloadError(
            f"{where} answered with a web page ({fetched.content_type}), not the file: the publication moved "
            "or the server shows an error page. Check the URL in a browser; nothing was stored."
        )
    with open(fetched.path, "rb") as file:
        head = file.read(4096)
    what = "an empty file" if not head else sniff(head)
    if what:
        raise DownloadError(f"{where} is {what}, not the publication. Check the URL; nothing was stored.")
