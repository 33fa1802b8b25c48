"""Every way Kronos weights arrive: a Hugging Face Hub repo (online or cached), a local folder, or
(optional extra) an MLflow registry version `models:/NAME/VERSION`.

A hub artifact is resolved to an immutable commit sha first, so a forecast can be traced to exact
weights. The hub is asked once, without retries and with a timeout; when it cannot be reached the
files come from huggingface_hub's own cache (`HF_HOME`, `HF_HUB_CACHE`), which is also what
`HF_HUB_OFFLINE=1` selects. The access token is handed to huggingface_hub and never appears in a
log line, an error message or a repr.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

import httpx2
import torch
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.redact import mask_secrets, strip_userinfo

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FILES: tuple[str, ...] = (CONFIG_FILE, WEIGHTS_FILE)
DEFAULT_REVISION = "main"

MLFLOW_PREFIX = "models:/"

ArtifactSource = Literal["hub", "cache", "local", "mlflow"]
_Module = TypeVar("_Module", Kronos, KronosTokenizer)
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class ArtifactSpec:
    """What to load: a hub repo id (`ORG/NAME`) or a local folder, and an optional hub revision."""

    repo_id: str
    revision: str | None = None


@dataclass(frozen=True)
class ResolvedArtifact:
    """Where an artifact's files are and which commit they are: the hub commit sha, the MLflow run
    id of a registered version, or None for a local folder."""

    spec: ArtifactSpec
    folder: Path
    sha: str | None
    source: ArtifactSource


@dataclass(frozen=True)
class LoadedArtifacts:
    """A loaded model and tokenizer in eval mode on `device`, with the commits they came from."""

    model: Kronos
    tokenizer: KronosTokenizer
    model_spec: ArtifactSpec
    tokenizer_spec: ArtifactSpec
    model_sha: str | None
    tokenizer_sha: str | None
    device: torch.device
    load_seconds: float


class ModelLoadError(RuntimeError):
    """An artifact could not be resolved or loaded; the message names the repo id, not the token."""

    def __init__(self, repo_id: str, reason: str) -> None:
        super().__init__(f"cannot load {repo_id!r}: {reason}")
        self.repo_id = repo_id
        self.reason = reason


@dataclass(frozen=True)
class HubEnvironment:
    """The hub settings in the environment now (huggingface_hub reads them once, at import).

    `endpoint` is the hub's URL as it may be logged or shown, without credentials;
    `request_endpoint` is `HF_ENDPOINT` as given (a `user:password@` in it is sent as basic
    auth) and goes to huggingface_hub only. `unreachable`: the hub did not answer earlier in
    this load, so it is not asked again.
    """

    cache_dir: Path
    offline: bool
    request_endpoint: str = field(repr=False)
    unreachable: bool = False

    @property
    def endpoint(self) -> str:
        return strip_userinfo(self.request_endpoint)

    @classmethod
    def from_env(cls) -> HubEnvironment:
        if os.environ.get("HF_HUB_CACHE"):
            cache_dir = Path(os.environ["HF_HUB_CACHE"]).expanduser()
        elif os.environ.get("HF_HOME"):
            cache_dir = Path(os.environ["HF_HOME"]).expanduser() / "hub"
        else:
            cache_dir = Path(constants.HF_HUB_CACHE)
        endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE_WORDS
        return cls(cache_dir=cache_dir, offline=offline, request_endpoint=endpoint)


def is_mlflow_spec(spec: ArtifactSpec) -> bool:
    """True when `spec.repo_id` is an MLflow registry URI `models:/…`."""
    return spec.repo_id.startswith(MLFLOW_PREFIX)


def is_local_spec(spec: ArtifactSpec) -> bool:
    """True when `spec.repo_id` names a folder on disk rather than a hub repo `ORG/NAME`."""
    text = spec.repo_id
    if is_mlflow_spec(spec):
        return False
    return (
        Path(text).expanduser().is_dir() or text.startswith(("/", ".", "~")) or text.count("/") > 1
    )


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto` (the first GPU if there is one) as a torch device.

    Raises ValueError for a CUDA device this machine does not have: a GPU configuration must not
    silently run on the CPU.
    """
    text = name.strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f"device {name!r} does not exist here ({count} CUDA device(s))")
    elif device.type != "cpu":
        raise ValueError(f"device {name!r} is not cpu, cuda, cuda:N or auto")
    return device


def find_cached(
    spec: ArtifactSpec, *, hub: HubEnvironment | None = None
) -> ResolvedArtifact | None:
    """Where `spec` is on disk right now (local folder or hub cache), without asking the hub;
    None when it is not, or when it lives in an MLflow registry."""
    if is_mlflow_spec(spec):
        return None
    if is_local_spec(spec):
        folder = Path(spec.repo_id).expanduser()
        return _resolve_local_folder(spec) if folder.is_dir() else None
    hub = hub or HubEnvironment.from_env()
    revision = spec.revision or DEFAULT_REVISION
    try:
        check_hub_repo_id(spec.repo_id)
        folder = _fetch_files(spec.repo_id, revision, None, 0.0, hub, cache_only=True)
    except ModelLoadError:
        return None
    return ResolvedArtifact(spec=spec, folder=folder, sha=folder.name, source="cache")


def resolve_artifact(
    spec: ArtifactSpec,
    *,
    token: str | None = None,
    hub_timeout_s: float = 10.0,
    hub: HubEnvironment | None = None,
) -> ResolvedArtifact:
    """Find (downloading if needed) the checkpoint folder of `spec` and the commit it belongs to.

    Online, one metadata request without retries (at most `hub_timeout_s`) turns the revision into a
    commit sha, then the files of that commit are fetched into the cache unless already there. When
    the hub is unreachable or `HF_HUB_OFFLINE=1`, the revision is looked up in the cache.
    Raises `ModelLoadError` naming the repo id.
    """
    if is_mlflow_spec(spec):
        return _resolve_mlflow_version(spec)
    if is_local_spec(spec):
        return _resolve_local_folder(spec)
    check_hub_repo_id(spec.repo_id)
    hub = hub or HubEnvironment.from_env()
    revision = spec.revision or DEFAULT_REVISION
    try:
        sha = (
            None
            if hub.offline or hub.unreachable
            else _ask_hub_for_sha(spec.repo_id, revision, token, hub_timeout_s, hub)
        )
        if sha is None:
            folder = _fetch_files(
                spec.repo_id, revision, token, hub_timeout_s, hub, cache_only=True
            )
            source: ArtifactSource = "cache"
        else:
            folder = _fetch_files(spec.repo_id, sha, token, hub_timeout_s, hub, cache_only=False)
            _remember_revision(folder, revision, sha)
            source = "hub"
    except (HfHubHTTPError, EntryNotFoundError) as exc:  # before OSError: HfHubHTTPError is one
        raise ModelLoadError(spec.repo_id, _describe_hub_error(exc, revision, token)) from exc
    except (OSError, httpx2.HTTPError) as exc:
        reason = f"download of revision {revision!r} failed: {mask_secrets(str(exc), [token])}"
        raise ModelLoadError(spec.repo_id, reason) from exc
    resolved = ResolvedArtifact(spec=spec, folder=folder, sha=folder.name, source=source)
    logger.info(
        "resolved %s@%s to commit %s from the %s (%s)",
        spec.repo_id,
        revision,
        resolved.sha,
        source,
        folder,
    )
    return resolved


def load_artifacts(
    model: ArtifactSpec,
    tokenizer: ArtifactSpec,
    *,
    device: torch.device,
    token: str | None = None,
    hub_timeout_s: float = 10.0,
) -> LoadedArtifacts:
    """Resolve and load the Kronos model and tokenizer, on `device` and in eval mode.

    Never waits longer than about `hub_timeout_s` for an unreachable hub: when the model had to
    come from the cache, the tokenizer is looked up there without asking again. Raises
    `ModelLoadError` (naming the repo id) for a missing repo, a refused token, a revision not in
    the cache while offline, a corrupt weights file or a config that does not fit the weights.
    """
    started = time.perf_counter()
    hub = HubEnvironment.from_env()
    resolved_model = resolve_artifact(model, token=token, hub_timeout_s=hub_timeout_s, hub=hub)
    if resolved_model.source == "cache" and not hub.offline:  # the hub did not answer: not twice
        hub = replace(hub, unreachable=True)
    resolved_tokenizer = resolve_artifact(
        tokenizer, token=token, hub_timeout_s=hub_timeout_s, hub=hub
    )
    loaded_model = load_module(Kronos, resolved_model, device)
    loaded_tokenizer = load_module(KronosTokenizer, resolved_tokenizer, device)
    seconds = time.perf_counter() - started
    logger.info(
        "loaded model %s (commit %s) and tokenizer %s (commit %s) on %s in %.2f s",
        model.repo_id,
        resolved_model.sha,
        tokenizer.repo_id,
        resolved_tokenizer.sha,
        device,
        seconds,
    )
    return LoadedArtifacts(
        model=loaded_model,
        tokenizer=loaded_tokenizer,
        model_spec=model,
        tokenizer_spec=tokenizer,
        model_sha=resolved_model.sha,
        tokenizer_sha=resolved_tokenizer.sha,
        device=device,
        load_seconds=seconds,
    )


def _resolve_local_folder(spec: ArtifactSpec) -> ResolvedArtifact:
    folder = Path(spec.repo_id).expanduser().resolve()
    if not folder.is_dir():
        raise ModelLoadError(spec.repo_id, "no such local folder")
    if spec.revision:
        logger.warning("revision %r ignored for local folder %s", spec.revision, folder)
    return ResolvedArtifact(spec=spec, folder=folder, sha=None, source="local")


def _resolve_mlflow_version(spec: ArtifactSpec) -> ResolvedArtifact:
    try:  # imported here: MLflow is an optional extra
        from kronos_integration.mlflow_source import fetch_registered_checkpoint
    except ImportError as error:
        reason = "models:/ ids need MLflow: pip install '.[mlflow]'"
        raise ModelLoadError(spec.repo_id, reason) from error
    if spec.revision:
        logger.warning("revision %r ignored for %s: the version is in the URI", spec.revision, spec)
    try:
        folder, run_id = fetch_registered_checkpoint(spec.repo_id)
    except (LookupError, ValueError) as error:
        raise ModelLoadError(spec.repo_id, f"MLflow registry: {error}") from error
    logger.info("resolved %s to MLflow run %s (%s)", spec.repo_id, run_id, folder)
    return ResolvedArtifact(spec=spec, folder=folder, sha=run_id, source="mlflow")


def check_hub_repo_id(repo_id: str) -> None:
    """Raise ModelLoadError for an id that is neither a folder on disk nor a valid hub repo id."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = f"not an existing folder, nor a hub repo id ORG/NAME ({exc})"
        raise ModelLoadError(repo_id, reason) from None


def _ask_hub_for_sha(
    repo_id: str, revision: str, token: str | None, timeout_s: float, hub: HubEnvironment
) -> str | None:
    """The commit sha `revision` points to on the hub, or None when the hub cannot be reached.

    `model_info` makes a single request (huggingface_hub retries only its file downloads), so an
    unreachable hub costs at most `timeout_s`.
    """
    api = HfApi(endpoint=hub.request_endpoint)
    try:
        info = api.model_info(repo_id, revision=revision, token=token, timeout=timeout_s)
    except (httpx2.TransportError, OfflineModeIsEnabled) as exc:
        logger.warning(
            "hub %s unreachable for %s (%s); using the local cache",
            hub.endpoint,
            repo_id,
            type(exc).__name__,
        )
        return None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status is None or status < 500:
            raise
        logger.warning("hub answered %s for %s; using the local cache", status, repo_id)
        return None
    if not info.sha:
        raise ModelLoadError(repo_id, f"the hub reported no commit for revision {revision!r}")
    return info.sha


def _fetch_files(
    repo_id: str,
    revision: str,
    token: str | None,
    timeout_s: float,
    hub: HubEnvironment,
    *,
    cache_only: bool,
) -> Path:
    """Download (or, with `cache_only`, look up) the checkpoint files; returns `snapshots/<sha>`."""
    paths = []
    for filename in CHECKPOINT_FILES:
        try:
            path = hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=hub.cache_dir,
                endpoint=hub.request_endpoint,
                token=token,
                etag_timeout=timeout_s,
                local_files_only=cache_only,
            )
        except FileNotFoundError as exc:
            if not cache_only:
                raise
            reason = (
                f"revision {revision!r} ({filename}) is not in the cache {hub.cache_dir}, and "
                f"{_why_not_downloaded(hub)}, or point HF_HOME at a cache that has it"
            )
            raise ModelLoadError(repo_id, reason) from exc
        paths.append(Path(path))
    return paths[0].parent


def _why_not_downloaded(hub: HubEnvironment) -> str:
    """Why a file missing from the cache was not downloaded, and what would fetch it."""
    if hub.offline:
        return "HF_HUB_OFFLINE=1 kept the hub from being asked: unset it to download"
    return (
        f"the hub {hub.endpoint} did not answer: check HF_ENDPOINT and the network (a proxy "
        "goes in HTTPS_PROXY)"
    )


def _remember_revision(snapshot: Path, revision: str, sha: str) -> None:
    """Point the cache's `refs/<revision>` at `sha`, as huggingface_hub does when it downloads by
    branch or tag. Files fetched by commit (for consistency) leave no ref behind, and a later
    offline start asks the cache for the revision, not for the commit."""
    if revision == sha:
        return
    ref = snapshot.parent.parent / "refs" / revision
    try:
        if ref.is_file() and ref.read_text() == sha:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        partial = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
        partial.write_text(sha)
        partial.replace(ref)  # atomic: a concurrent reader never sees half a sha
    except OSError as exc:
        logger.warning("could not record %s -> %s in the cache: %s", revision, sha, exc)


def _describe_hub_error(
    exc: HfHubHTTPError | EntryNotFoundError, revision: str, token: str | None
) -> str:
    if isinstance(exc, RevisionNotFoundError):
        return f"revision {revision!r} does not exist on the hub"
    if isinstance(exc, RepositoryNotFoundError):
        return "repository not found on the hub, or private and HF_TOKEN does not grant access"
    if isinstance(exc, EntryNotFoundError):
        return f"revision {revision!r} has no {' or '.join(CHECKPOINT_FILES)}"
    response = getattr(exc, "response", None)
    status = response.status_code if response is not None else None
    if status in (401, 403):
        return f"the hub refused access (HTTP {status}): check HF_TOKEN"
    return f"hub error (HTTP {status}): {mask_secrets(str(exc), [token])}"


def load_module(cls: type[_Module], resolved: ResolvedArtifact, device: torch.device) -> _Module:
    """`cls.from_pretrained` on the resolved folder, strictly (every weight must fit the config)."""
    repo_id = resolved.spec.repo_id
    for filename in CHECKPOINT_FILES:
        if not (resolved.folder / filename).is_file():
            raise ModelLoadError(repo_id, f"{filename} missing in {resolved.folder}")
    try:
        module = cls.from_pretrained(str(resolved.folder), map_location="cpu", strict=True)
    except Exception as exc:  # corrupt safetensors, config keys the class rejects, shape mismatches
        problem = f"{type(exc).__name__}: {exc}"
        reason = f"{cls.__name__} checkpoint in {resolved.folder} is unusable: {problem}"
        raise ModelLoadError(repo_id, reason) from exc
    return module.to(device).eval()
