"""Artifacts: what a trained run learned, saved next to its results.

A run whose classifier has a ``state()`` (:class:`~benchmark.method.SavedClassifier`: the
CoOp family's context, CoCoOp's meta-net, the linear probe's weights) leaves
``<results>/artifacts/<run_id>.safetensors``: the state's tensors, as safetensors (nothing
pickled, nothing executes on load), with string metadata:

- ``format`` (:data:`FORMAT`) and ``format_version`` (:data:`FORMAT_VERSION`);
- the run: ``run_id``, ``method``, ``method_version``, ``protocol``, ``dataset`` (trained
  on), ``shots``, ``seed``, ``config`` (the resolved config, JSON);
- the backbone: ``backbone`` (open_clip name), ``pretrained`` (tag, or ``file:<name>``),
  ``checkpoint`` (the weights file's path when trained from one, else empty) and
  ``backbone_fingerprint`` (:attr:`benchmark.backbone.Backbone.fingerprint`: name and tag,
  or the weights file's sha256);
- the classes it was trained on, in label order (``classes``, JSON), and their dataset's
  ``template``;
- the state's ``texts`` and ``contexts`` (JSON), the ``classifier`` type that saved it
  (``module.Class``), and the ``suite_version``, ``plugin`` and ``plugin_version`` that
  made it.

Files are written as results files are: to a temporary name, flushed to disk, renamed into
place. Reading checks everything before use: a file that is not safetensors, not an
artifact of this suite, of a newer format, holding NaN or infinite values, or lacking what
its method needs is a one-line
error naming it (exit code 4), as is an artifact of another backbone than the one asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_tensors
from safetensors.torch import save

from benchmark import __version__
from benchmark.atomic import write_atomically
from benchmark.backbone import Backbone, BackboneSpec, check_weights_choice
from benchmark.config import config_json
from benchmark.errors import EXIT_ENVIRONMENT, EXIT_USAGE, UserError, first_line
from benchmark.method import LearnedState, StateError
from benchmark.protocol import Classes

FORMAT = "vlprompt-bench artifact"
FORMAT_VERSION = 1
FOLDER = "artifacts"
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class Provenance:
    """Where an artifact comes from: its run, backbone and training classes."""

    run_id: str
    method: str
    method_version: str
    protocol: str
    dataset: str
    shots: int
    seed: int
    config: str
    backbone: str
    pretrained: str
    checkpoint: str
    backbone_fingerprint: str
    classes: tuple[str, ...]
    template: str
    suite_version: str
    plugin: str
    plugin_version: str

    @property
    def trained_on(self) -> Classes:
        return Classes(self.dataset, self.classes, self.template)

    @property
    def recorded_backbone(self) -> BackboneSpec:
        """The backbone the run was trained with, as it was given."""
        if self.checkpoint:
            return BackboneSpec(self.backbone, None, Path(self.checkpoint))
        weights = None if self.pretrained == "random-init" else self.pretrained
        return BackboneSpec(self.backbone, weights, None)

    def metadata(self) -> dict[str, str]:
        values = dataclasses.asdict(self)
        values["classes"] = json.dumps(list(self.classes))
        return {key: str(value) for key, value in values.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> Provenance:
        """The provenance in an artifact's metadata; ValueError naming what is wrong."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in metadata]
        if missing:
            raise ValueError(f"its metadata lacks {', '.join(missing)}")
        values: dict[str, Any] = {name: metadata[name] for name in names}
        values["shots"], values["seed"] = int(values["shots"]), int(values["seed"])
        classes = json.loads(values["classes"])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError("its metadata 'classes' is not a list of class names")
        values["classes"] = tuple(classes)
        return cls(**values)


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: its file, its provenance, the learned state, the type of the
    classifier that saved it and the file's sha256."""

    path: Path
    provenance: Provenance
    state: LearnedState
    classifier: str
    digest: str


def type_name(classifier: Any) -> str:
    """``module.Class`` of a classifier: what an artifact records as its ``classifier``."""
    kind = type(classifier)
    return f"{kind.__module__}.{kind.__qualname__}"


def relative_path(run_id: str) -> str:
    """Where the artifact of ``run_id`` lies, relative to the results root (the results'
    ``artifact`` column)."""
    return f"{FOLDER}/{run_id}{SUFFIX}"


def serialise(classifier: Any, provenance: Provenance) -> bytes | None:
    """The artifact of a trained classifier, as bytes; None when it learned nothing to save
    (it has no ``state()``)."""
    state_of = getattr(classifier, "state", None)
    if not callable(state_of):
        return None
    state: LearnedState = state_of()
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        **provenance.metadata(),
        "texts": json.dumps(dict(state.texts), sort_keys=True),
        "contexts": json.dumps(list(state.contexts)),
        "classifier": type_name(classifier),
    }
    tensors = {name: t.detach().cpu().contiguous() for name, t in state.tensors.items()}
    return save(tensors, metadata)


def write(root: Path, run_id: str, data: bytes) -> Path:
    """Write an artifact under the results root ``root`` atomically (temporary file, fsync,
    rename); its path."""
    return write_atomically(Path(root) / relative_path(run_id), lambda handle: handle.write(data))


def find(root: Path, run_id: str) -> Path:
    """The artifact of ``run_id`` (or of the one run whose id starts with it) under the
    results root ``root``."""
    folder = Path(root) / FOLDER
    exact = Path(root) / relative_path(run_id)
    if exact.is_file():
        return exact
    matches = sorted(folder.glob(f"{run_id}*{SUFFIX}")) if run_id and folder.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(m.stem for m in matches[:5])
        raise UserError(f"run id {run_id!r} is ambiguous in {folder}: {shown}; give more of it")
    raise UserError(
        f"no artifact of run {run_id!r} in {folder} (runs of methods without learned tensors, "
        "failed runs and runs made with --no-artifacts have none)",
        EXIT_USAGE,
    )


def _refuse(path: Path, why: str) -> UserError:
    return UserError(f"{path} is not a usable artifact: {why}", EXIT_ENVIRONMENT)


def load(path: Path) -> Artifact:
    """Read and check the artifact at ``path`` (module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        tensors = load_tensors(data)
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _refuse(path, f"not a readable safetensors file ({first_line(exc)})") from exc
    if metadata.get("format") != FORMAT:
        raise _refuse(path, f"its metadata does not say format {FORMAT!r} (another program's?)")
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise _refuse(path, f"format_version {version!r} is not a number")
    if int(version) > FORMAT_VERSION:
        raise _refuse(
            path,
            f"written by a newer version of the suite (format {version}, this version reads up "
            f"to {FORMAT_VERSION}); upgrade to read it",
        )
    try:
        provenance = Provenance.from_metadata(metadata)
        texts = json.loads(metadata.get("texts", "{}"))
        contexts = tuple(json.loads(metadata.get("contexts", "[]")))
    except ValueError as exc:  # json.JSONDecodeError is one
        raise _refuse(path, first_line(exc)) from exc
    if provenance.run_id != path.stem:
        raise _refuse(path, f"it holds run {provenance.run_id}, not {path.stem}")
    absent = [name for name in contexts if name not in tensors]
    if absent:
        raise _refuse(path, f"its context tensors {', '.join(absent)} are missing")
    not_finite = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if not_finite:
        raise _refuse(path, f"tensor {not_finite[0]!r} holds NaN or infinite values")
    state = LearnedState(tensors, {str(k): str(v) for k, v in texts.items()}, contexts)
    classifier = metadata.get("classifier", "")
    return Artifact(path, provenance, state, classifier, hashlib.sha256(data).hexdigest())


def backbone_spec(
    artifact: Artifact,
    name: str | None = None,
    pretrained: str | None = None,
    checkpoint: Path | None = None,
) -> BackboneSpec:
    """The backbone to load for ``artifact``: the one it recorded, with the model ``name``,
    the ``pretrained`` tag or the ``checkpoint`` file asked for instead (a recorded weights
    file must still exist). :func:`check_backbone` then checks it is the same."""
    check_weights_choice(pretrained, checkpoint)
    recorded = artifact.provenance.recorded_backbone
    name = name or recorded.name
    if checkpoint is not None:
        return BackboneSpec(name, None, Path(checkpoint))
    if pretrained:
        return BackboneSpec(name, pretrained, None)
    if recorded.checkpoint is not None and not recorded.checkpoint.is_file():
        raise UserError(
            f"{artifact.path} was trained with the weights file {recorded.checkpoint}, which "
            "is not there any more; give the same weights with --checkpoint FILE",
            EXIT_ENVIRONMENT,
        )
    return BackboneSpec(name, recorded.pretrained, recorded.checkpoint)


def check_backbone(artifact: Artifact, spec: BackboneSpec) -> None:
    """Refuse a backbone other than the one ``artifact`` was trained with: learned tensors
    live in one model's embedding spaces. Checked on the spec, before any model is built."""
    recorded = artifact.provenance
    if spec.fingerprint == recorded.backbone_fingerprint:
        return
    raise UserError(
        f"{artifact.path} was trained on {recorded.backbone} ({recorded.pretrained}, "
        f"fingerprint {recorded.backbone_fingerprint}), not on the {spec.name} "
        f"({spec.weights}, fingerprint {spec.fingerprint}) asked for: a learned "
        "prompt belongs to the backbone it was trained with",
        EXIT_ENVIRONMENT,
    )


def rebuild(artifact: Artifact, method: Any, engine: Any) -> Any:
    """The classifier saved in ``artifact``, rebuilt by its method on ``engine`` (whose
    backbone :func:`check_backbone` accepted); it must be of the type that saved it."""
    classifier_from = getattr(method, "classifier_from", None)
    if not callable(classifier_from):
        raise UserError(
            f"method {artifact.provenance.method} cannot rebuild a classifier from its saved "
            "state (it has no classifier_from)",
            EXIT_ENVIRONMENT,
        )
    try:
        classifier = classifier_from(artifact.state, artifact.provenance.trained_on, engine)
    except StateError as exc:
        raise _refuse(artifact.path, f"{artifact.provenance.method}: {exc}") from exc
    if type_name(classifier) != artifact.classifier:
        raise _refuse(
            artifact.path,
            f"it was saved by a {artifact.classifier}, and method {artifact.provenance.method} "
            f"rebuilds a {type_name(classifier)} from it (a method whose classifier differs "
            "needs a classifier_from of its own)",
        )
    return classifier


def provenance_of(
    cell: Any, method: Any, backbone: Backbone, trained_on: Classes, provider: Any
) -> Provenance:
    """The provenance of a planned run (:class:`~benchmark.planner.Cell`) of ``method``,
    trained on ``trained_on`` with ``backbone``; ``provider`` is the method's registry
    provider (distribution and version)."""
    spec = backbone.spec
    return Provenance(
        run_id=cell.run_id,
        method=cell.method,
        method_version=str(method.version),
        protocol=cell.protocol,
        dataset=cell.dataset,
        shots=cell.shots,
        seed=cell.seed,
        config=config_json(cell.config),
        backbone=spec.name,
        pretrained=spec.weights,
        checkpoint=str(Path(spec.checkpoint).resolve()) if spec.checkpoint else "",
        backbone_fingerprint=backbone.fingerprint,
        classes=tuple(trained_on.names),
        template=trained_on.template,
        suite_version=__version__,
        plugin=provider.distribution,
        plugin_version=provider.version,
    )
