"""``NeuralPipeline``: a trained U-Net behind the ``ImageAnalyzer`` seam (read → align scan lines → rescale to the
training pixel size → normalize as in training → predict class labels → quantify with ``imaging.quantify`` → pool
over a sample's images).

The predicted classes become a ``Segmentation`` (pores, second phase, a 1-px boundary skeleton, watershed grains,
cracks), so the features, units and sampling σ (k×k subfields, pooled by ``quantify.pool``) are those of the
classical pipeline. Model uncertainty: with ``tta`` and/or ``mc_samples``, every feature is also measured on each
TTA/MC sample's labels, and their standard deviation is added to the sampling σ in quadrature.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import binary_dilation
from skimage import measure as skmeasure
from skimage.morphology import skeletonize
from skimage.transform import rescale

from imaging.base import Feature, ImageInput, ImagingError
from imaging.classical import PARTICLE_GRAIN_AREA, Segmentation, grain_seeds, grains_watershed
from imaging.infer import predict_tiled
from imaging.intercept import astm_grain_number, astm_sigma, intercept_counts
from imaging.io import LoadedImage, read_input
from imaging.objects import Frame, write_objects_csv
from imaging.overlay import CLASSES as OVERLAY_CLASSES
from imaging.overlay import label_map_from_segmentation, render_overlay
from imaging.phases import Phases
from imaging.planimetric import planimetric_astm
from imaging.properties import PropertyPredictor
from imaging.quality import noise_sigma
from imaging.quantify import FEATURE_UNITS, Estimate, measure, pool
from imaging.scanlines import ScanLineError, estimate_row_shifts, shift_rows
from imaging.spurs import prune_spurs
from imaging.train.checkpoint import CheckpointError, load_model
from imaging.train.image_checkpoint import load_image_checkpoint

DEFAULT_SYSTEM = "two_phase_alloy"
RESCALE_TOLERANCE = 0.10  # image and training pixel sizes further apart than this (relative) → rescale
RESCALE_WARN = 1.5  # resampled by more than this factor either way: the model's accuracy there is unknown
MIN_GRAIN_AREA_PX = 9.0
SCAN_SHIFT_MAX_PX = 3  # scan-line alignment looks for row shifts up to this many pixels either way

log = logging.getLogger(__name__)

METHODS: dict[str, str] = {
    "porosity": "unet: pore class (area fraction)",
    "second_phase_fraction": "unet: second_phase class, of the total area",
    "grain_size_um": "unet: mean lineal intercept (ASTM E112), rows and columns: the smaller of the boundary-skeleton "
    "and the watershed grain-map counts",
    "grain_size_ecd_um": "unet: mean equivalent-circle diameter of watershed grains between predicted boundaries",
    "astm_grain_number": "unet: ASTM E112 G from the mean lineal intercept",
    "grain_size_planimetric_um": "unet: ASTM E112 planimetric (Jeffries) count of watershed grains, N_A = "
    "(inside + ½ cut by the edge + ¼ at a corner) / grain area; mean diameter d = 1/√N_A",
    "astm_grain_number_planimetric": "unet: ASTM E112 G = 3.321928·log10(N_A per mm²) − 2.954 (planimetric)",
    "grain_size_d10_um": "unet: 10th percentile of the ECD of watershed grains off the border (by number)",
    "grain_size_d50_um": "unet: median ECD of watershed grains off the border (by number)",
    "grain_size_d90_um": "unet: 90th percentile of the ECD of watershed grains off the border (by number)",
    "pore_count": "unet: 8-connected pore-class objects per field",
    "pore_size_um": "unet: mean ECD of pore-class objects not cut by the edge",
    "pore_size_d90_um": "unet: 90th percentile of the ECD of pore-class objects not cut by the edge (by number)",
    "crack_count": "unet: connected crack-class objects",
    "crack_length_um": "unet: summed crack skeleton length",
    "crack_density_per_mm": "unet: crack length per area (mm/mm²)",
    "focus_quality": "unet: noise-corrected LoG energy (σ=1 px) of the input",
}


def default_checkpoint(system: str = DEFAULT_SYSTEM) -> Path:
    """Where ``matloop imaging pretrain`` caches the model of ``system``: ``$MATLOOP_CACHE/models/unet-<system>.pt``,
    else ``~/.cache/matloop/models/unet-<system>.pt``."""
    root = os.environ.get("MATLOOP_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "matloop"
    return base / "models" / f"unet-{system}.pt"


def bundled_checkpoint(system: str = DEFAULT_SYSTEM) -> Path:
    """The checkpoint shipped with matloop for ``system`` (made by ``matloop imaging pretrain --out`` this path)."""
    return Path(__file__).resolve().parent / "models" / "weights" / f"unet-{system}.pt"


def pretrained_checkpoint(system: str = DEFAULT_SYSTEM) -> Path:
    """The model a campaign gets without naming a checkpoint: the user's own ``pretrain`` result in the cache
    when there is one, else the bundled one; if neither exists, the cache path (whose absence is then reported)."""
    cached = default_checkpoint(system)
    if cached.is_file():
        return cached
    bundled = bundled_checkpoint(system)
    return bundled if bundled.is_file() else cached


class NeuralOptions(BaseModel):
    """Options of the U-Net pipeline; lengths carry their unit in the name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoint: Path | None = Field(default=None, description="None: the pretrained model of `pretrained`")
    pretrained: str = Field(
        default=DEFAULT_SYSTEM, description="system whose pretrained model is used when no checkpoint is given"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_bf16: bool = Field(
        default=False,
        description="bf16 inference on CPUs that compute it natively (AVX512-BF16/AMX), about 3x faster; labels "
        "agree with float32 on >99.9 % of pixels (benchmarks/imaging_accuracy.py --cpu-bf16); ignored elsewhere",
    )
    tile: int = Field(
        default=512,
        ge=16,
        le=4096,
        description="inference window (px); frames up to this size go through in one window (same accuracy as "
        "256-px windows on held-out fields, fewer overlapping pixels to compute)",
    )
    overlap: int = Field(default=32, ge=0, le=1024)
    tta: bool = Field(default=False, description="8 dihedral transforms; their spread adds to σ")
    align_scan_lines: bool = Field(
        default=True,
        description="undo the per-row shifts of scan jitter before segmenting (imaging/scanlines.py); features are "
        "measured on the aligned frame. Off for frames that are not raster-scanned (optical micrographs)",
    )
    mc_samples: int = Field(default=0, ge=0, le=64, description="MC dropout passes; their spread adds to σ")
    subfields: int = Field(default=3, ge=1, le=8, description="sampling σ from k×k subfields")
    pixel_size_um: float | None = Field(default=None, gt=0.0, description="overrides the instrument and file metadata")
    crop_bottom_px: int | None = Field(default=None, ge=0, description="rows of SEM data bar to cut off the bottom")
    property_models: tuple[Path, ...] = Field(
        default=(),
        description="regressor checkpoints (matloop imaging train, type regressor_train) whose predicted "
        "properties, with their σ, are reported beside the segmentation features",
    )

    def checkpoint_path(self) -> Path:
        if self.checkpoint is not None:
            return Path(self.checkpoint).expanduser()
        return pretrained_checkpoint(self.pretrained)


def property_outputs(paths: Sequence[Path]) -> dict[str, str]:
    """Names and units predicted by regressor checkpoints (metadata only); a name that a segmentation feature or
    another model already reports is an error naming the file."""
    out: dict[str, str] = {}
    for path in paths:
        ckpt = load_image_checkpoint(Path(path).expanduser(), "regression")
        for target in ckpt.metadata["targets"]:
            name = str(target["name"])
            if name in FEATURE_UNITS or name in out:
                raise CheckpointError(f"{path}: predicts {name!r}, which another feature or model already reports")
            out[name] = str(target["unit"])
    return out


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def boundary_precipitates(second: NDArray[np.bool_], boundary: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Second-phase particles that sit on a grain boundary and are much smaller than a grain (below
    ``PARTICLE_GRAIN_AREA`` × ℓ̄², ℓ̄ the boundaries' mean intercept): the boundary runs through them, so they
    count as boundary for grain size; large second-phase regions keep their own outlines."""
    if not second.any() or not boundary.any():
        return np.zeros_like(second)
    length, n = intercept_counts(skeletonize(boundary), np.ones_like(boundary))
    ell = length / max(n, 1)
    labels = skmeasure.label(second, connectivity=2)
    area = np.bincount(labels.ravel())
    touching = np.unique(labels[binary_dilation(boundary) & second])
    keep = np.zeros(area.size, dtype=bool)
    keep[touching] = area[touching] <= PARTICLE_GRAIN_AREA * ell * ell
    keep[0] = False
    return keep[labels]


def labels_to_segmentation(
    labels: NDArray[np.integer[Any]], normalized: NDArray[np.float32], classes: Sequence[str]
) -> Segmentation:
    """A ``Segmentation`` from predicted class labels (class names as in the exporter: matrix, second_phase, pore,
    boundary, crack; absent names give empty masks). Threshold alternatives equal the masks: no σ from them."""

    def mask(name: str) -> NDArray[np.bool_]:
        return labels == classes.index(name) if name in classes else np.zeros(labels.shape, dtype=bool)

    pores, second, crack = mask("pore"), mask("second_phase"), mask("crack")
    solid = ~pores & ~crack
    boundary = mask("boundary") & solid
    precipitates = boundary_precipitates(second, boundary)
    # the boundary runs through the precipitates on it; the side branches their outlines leave are not boundary
    skeleton = prune_spurs(skeletonize((boundary | precipitates) & solid), precipitates & ~boundary)
    grains = grains_watershed(solid, skeleton, MIN_GRAIN_AREA_PX)
    crack_labels = skmeasure.label(crack, connectivity=2).astype(np.int32)
    crack_skel = skeletonize(crack)
    lengths = np.bincount(crack_labels[crack_skel], minlength=int(crack_labels.max()) + 1)[1:]
    n_grains = int(grain_seeds(solid, skeleton, MIN_GRAIN_AREA_PX).max())
    return Segmentation(
        normalized=normalized,
        image=normalized,
        noise=noise_sigma(normalized),
        phases=Phases(thresholds=(), levels=(0.5,), pore_class=None, matrix_class=0, second_class=None),
        pores=pores,
        second=second,
        solid=solid,
        boundaries=skeleton,
        grains=grains,
        cracks=crack_labels,
        crack_skeleton=crack_skel,
        crack_lengths_px=tuple(float(max(v, 1)) for v in lengths),
        min_crack_length_px=0.0,
        pores_alt=(pores, pores),
        second_alt=(second, second),
        boundaries_alt=(skeleton, skeleton),
        grain_counts=(n_grains, n_grains, n_grains),
    )


def grain_map_intercept_px(grains: NDArray[np.integer[Any]]) -> float:
    """Mean lineal intercept in pixels from a grain label map: test-line length inside grains (label > 0) over
    the grain-to-grain label changes along every row and column, the truth's own definition. Unlike runs of a
    boundary skeleton, it keeps two crossings a pixel apart (near triple junctions) apart."""
    g = np.asarray(grains)
    a, b, c, d = g[:, 1:], g[:, :-1], g[1:, :], g[:-1, :]
    in_h, in_v = (a > 0) & (b > 0), (c > 0) & (d > 0)
    crossings = int(((a != b) & in_h).sum() + ((c != d) & in_v).sum())
    length = float(in_h.sum() + in_v.sum())
    return length / max(crossings, 1)


def measure_frame(seg: Segmentation, px: float, k: int) -> dict[str, Estimate]:
    """``quantify.measure`` of a U-Net segmentation, with the mean intercept taken as the smaller of the skeleton
    count and the grain-map count: each can only miss crossings (runs merge close ones; a failed watershed seed
    merges grains), so the one that finds more is closer. σ keeps its relative size."""
    out = measure(seg, px, k=k, min_grain_area_px=MIN_GRAIN_AREA_PX)
    skeleton = out["grain_size_um"]
    if int(seg.grains.max()) >= 2:
        ell = grain_map_intercept_px(seg.grains) * px
        if ell < skeleton.value:
            grain = Estimate(ell, skeleton.sigma * ell / skeleton.value)
            out["grain_size_um"] = grain
            out["astm_grain_number"] = Estimate(astm_grain_number(ell), astm_sigma(ell, grain.sigma))
    return out


def _dihedral(a: NDArray[Any], k: int, flip: bool, inverse: bool = False) -> NDArray[Any]:
    if inverse:
        a = np.rot90(a, -k)
        return np.ascontiguousarray(np.fliplr(a) if flip else a)
    a = np.fliplr(a) if flip else a
    return np.ascontiguousarray(np.rot90(a, k))


class NeuralPipeline:
    """U-Net segmentation and classical quantification of one sample's micrographs. ``version`` is the checkpoint's
    identity: ``"unet:"`` + the first 12 hex digits of the checkpoint file's SHA-256."""

    name: str = "unet"
    _frames: tuple[Frame, ...] = ()  # segmentations of the last analyze, for ``write_objects``

    def __init__(self, **options: Any) -> None:
        self.options = NeuralOptions(**options)
        path = self.options.checkpoint_path()
        if not path.is_file():
            hint = " (run `matloop imaging pretrain` to create it)" if self.options.checkpoint is None else ""
            raise CheckpointError(f"{path}: checkpoint file does not exist{hint}")
        self.model, self.checkpoint = load_model(path)
        self.version = "unet:" + file_digest(path)[:12]
        self.classes: list[str] = list(self.checkpoint.metadata["classes"])
        self.train_pixel_size_um = float(self.checkpoint.metadata["pixel_size_um"])
        self._warned_sizes: set[float] = set()  # pixel sizes already warned about (once each)
        self.normalization = self.checkpoint.normalization
        if self.options.mc_samples > 0 and self.checkpoint.model_config.dropout <= 0:
            raise CheckpointError(f"{path}: mc_samples > 0 needs a model trained with dropout, and this one has none")
        property_outputs(self.options.property_models)  # names clash-checked before any model is built
        self.predictors = [PropertyPredictor(p, device=self.options.device) for p in self.options.property_models]

    @classmethod
    def outputs_for(cls, options: dict[str, Any]) -> dict[str, str]:
        """Feature names and units, after validating ``options`` (pydantic ``ValidationError``); reads only the
        metadata of property models, builds no network."""
        opts = NeuralOptions(**options)
        return {**FEATURE_UNITS, **property_outputs(opts.property_models)}

    def outputs(self) -> dict[str, str]:
        return {**FEATURE_UNITS, **{name: unit for p in self.predictors for name, unit in p.targets}}

    def load(self, image: ImageInput) -> LoadedImage:
        size = self.options.pixel_size_um or image.pixel_size_um
        return read_input(ImageInput(image.path, size, image.metadata), crop_bottom_px=self.options.crop_bottom_px)

    def _predict(self, image: NDArray[np.float32], *, tta: bool, mc: int, seed: int = 0) -> NDArray[np.uint8]:
        o = self.options
        tile = min(o.tile, 32 * math.ceil(max(image.shape) / 32))
        pred = predict_tiled(
            self.model,
            image,
            tile=tile,
            overlap=min(o.overlap, tile // 2),
            device=o.device,
            tta=tta,
            mc_samples=mc,
            seed=seed,
            cpu_bf16=o.cpu_bf16,
        )
        return pred.labels

    def align(self, pixels: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """(aligned frame, row shifts) with ``align_scan_lines``; else the frame and zero shifts."""
        unaligned = pixels, np.zeros(pixels.shape[0], dtype=np.int64)
        if not self.options.align_scan_lines:
            return unaligned
        try:
            shifts = estimate_row_shifts(pixels, max_shift_px=SCAN_SHIFT_MAX_PX)
        except ScanLineError:  # a frame too small to align; `measure` names frames too small to segment
            return unaligned
        return shift_rows(pixels, -shifts), shifts

    def segment(self, pixels: NDArray[np.float32], *, tta: bool = False) -> NDArray[np.uint8]:
        """Class labels of a frame at the model's pixel size, where the frame shows them: aligned, normalized,
        segmented (``tta``: averaged over the 8 dihedral views), and the labels moved back by the row shifts."""
        aligned, shifts = self.align(np.asarray(pixels, dtype=np.float32))
        labels = self._predict(self.normalization.transform(aligned), tta=tta, mc=0)
        return shift_rows(labels, shifts)

    def sample_labels(self, image: NDArray[np.float32]) -> list[NDArray[np.uint8]]:
        """Labels of each TTA transform × MC pass (empty without ``tta`` and ``mc_samples``)."""
        o = self.options
        if not o.tta and o.mc_samples == 0:
            return []
        views = [(k, flip) for flip in (False, True) for k in range(4)] if o.tta else [(0, False)]
        passes = list(range(o.mc_samples)) if o.mc_samples else [0]
        out = []
        for k, flip in views:
            view = _dihedral(image, k, flip)
            for s in passes:
                labels = self._predict(view, tta=False, mc=1 if o.mc_samples else 0, seed=s)
                out.append(_dihedral(labels, k, flip, inverse=True))
        return out

    def measure(self, loaded: LoadedImage) -> dict[str, Estimate]:
        """All features of one page: sampling σ from subfields, model σ (TTA/MC spread) added in quadrature."""
        pixels, px = np.asarray(loaded.pixels, dtype=np.float32), loaded.pixel_size_um
        pixels = self.align(pixels)[0]  # jitter is in scan pixels: undone before any resampling
        scale = px / self.train_pixel_size_um
        if abs(scale - 1.0) > RESCALE_TOLERANCE:
            if max(scale, 1 / scale) > RESCALE_WARN and px not in self._warned_sizes:
                self._warned_sizes.add(px)
                log.warning(
                    "%s: %.4g µm/px resampled to the model's %.4g µm/px (×%.2f); the model's accuracy is unknown this "
                    "far from its training magnification: pretrain or fine-tune at it (matloop imaging pretrain "
                    "--pixel-size-um %.4g)",
                    loaded.metadata.get("file", "image"),
                    px,
                    self.train_pixel_size_um,
                    scale,
                    px,
                )
            h0, w0 = pixels.shape
            pixels = rescale(pixels, scale, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
            px = px * math.sqrt(h0 * w0 / pixels.size)  # the rescaled pixel covers the same physical field
        if min(pixels.shape) < 16:
            raise ImagingError(f"{loaded.metadata.get('file', 'image')}: too small to segment ({pixels.shape} px)")
        normalized = self.normalization.transform(pixels)
        labels = self._predict(normalized, tta=self.options.tta, mc=self.options.mc_samples)
        k = self.options.subfields

        def features(lab: NDArray[np.uint8]) -> dict[str, Estimate]:
            seg = labels_to_segmentation(lab, normalized, self.classes)
            return measure_frame(seg, px, k)

        seg = labels_to_segmentation(labels, normalized, self.classes)
        self._frames = (
            *self._frames,
            Frame(Path(str(loaded.metadata.get("file", "image"))).name, seg, px, MIN_GRAIN_AREA_PX),
        )
        base = measure_frame(seg, px, k)
        samples = [features(s) for s in self.sample_labels(normalized)]
        if len(samples) < 2:
            return base
        out = {}
        for name, est in base.items():
            spread = float(np.std([s[name].value for s in samples], ddof=1))
            out[name] = Estimate(est.value, math.hypot(est.sigma, spread if math.isfinite(spread) else 0.0))
        return out

    def analyze(self, images: Sequence[ImageInput]) -> list[Feature]:
        """Features of one sample pooled over its images. Raises ``ImageReadError`` for an unreadable file."""
        if not images:
            raise ImagingError("no images to analyze: the sample has no micrographs")
        self._frames = ()
        loaded = [self.load(image) for image in images]
        per_image = [self.measure(page) for page in loaded]
        pooled = {name: pool([m[name] for m in per_image]) for name in FEATURE_UNITS}
        predicted = self._predict_properties(loaded)
        grain = pooled["grain_size_um"]
        pooled["astm_grain_number"] = Estimate(astm_grain_number(grain.value), astm_sigma(grain.value, grain.sigma))
        pooled["astm_grain_number_planimetric"] = planimetric_astm(pooled["grain_size_planimetric_um"])
        return [
            Feature(name, pooled[name].value, pooled[name].sigma, unit, METHODS[name])
            for name, unit in FEATURE_UNITS.items()
        ] + predicted

    def _predict_properties(self, loaded: Sequence[LoadedImage]) -> list[Feature]:
        """Each property model's prediction for every frame, pooled like the segmentation features."""
        out = []
        for predictor in self.predictors:
            per_frame = [predictor.predict(page.pixels, page.pixel_size_um) for page in loaded]
            method = f"unet: property regressor {predictor.checkpoint.path.name} (ensemble + MC dropout σ)"
            for j, (name, unit) in enumerate(predictor.targets):
                est = pool([Estimate(f[j].value, f[j].sigma) for f in per_frame])
                out.append(Feature(name, est.value, est.sigma, unit, method))
        return out

    def write_objects(self, out_dir: Path) -> list[Path]:
        """Cracks, pores, inclusions and grains of the frames of the last ``analyze`` call, as one CSV."""
        return [write_objects_csv(self._frames, out_dir / f"{self.name}.objects.csv")]

    def render_overlays(self, features: Sequence[Feature], out_dir: Path) -> list[Path]:
        """One overlay PNG per frame of the last ``analyze`` call: the normalized frame (at the resolution it was
        segmented at), the predicted classes over it, and the sample's features ± σ."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, frame in enumerate(self._frames):
            stem = Path(frame.file).stem
            paths.append(
                render_overlay(
                    frame.seg.normalized,
                    label_map_from_segmentation(frame.seg),
                    OVERLAY_CLASSES,
                    features,
                    out_dir / f"{i:02d}_{stem}.overlay.png",
                    title=f"{stem[:12]} — {self.version}",
                    pixel_size_um=frame.pixel_size_um,
                )
            )
        return paths
