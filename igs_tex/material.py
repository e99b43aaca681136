"""Material texture I/O: a folder of PBR maps <-> a normalised float stack.

This module is the only place that reads or writes texture files for a
material. Everything downstream sees a :class:`MaterialStack`: float32
``[H, W, C]`` in [0, 1], a fixed channel order (``CHANNEL_ORDER``, absent maps
skipped) and, per channel, the ``(lo, hi)`` range that maps the normalised
value back to the file's real value. Integer images are stored as-is (v / max
code); EXR data is min/max normalised per channel so HDR values survive the
trip through a [0, 1] fitter.

Every problem with user input is reported as one ``IgsError`` line that starts
with the offending path; library exceptions from the decoders are wrapped so
no raw traceback reaches the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from igs_tex import IgsError
from igs_tex.atomic import atomic_write

GROUPS: dict[str, list[str]] = {
    "basecolor": ["basecolor.r", "basecolor.g", "basecolor.b"],
    "normal": ["normal.x", "normal.y", "normal.z"],
    "ao": ["ao"],
    "roughness": ["roughness"],
    "metalness": ["metalness"],
}
CHANNEL_ORDER: list[str] = [name for names in GROUPS.values() for name in names]

# A packed occlusion/roughness/metalness texture feeds these slots from R, G, B.
_ORM_CHANNELS = ["ao", "roughness", "metalness"]

MAP_KINDS = ("basecolor", "normal", "ao", "roughness", "metalness", "orm")

# File-name suffix -> map kind. Keys are lower case with separators removed,
# so "Base_Color" and "ambient-occlusion" match as well as "basecolor".
_SUFFIXES: dict[str, str] = {
    **dict.fromkeys(["basecolor", "albedo", "diffuse", "color", "colour", "basecolour"], "basecolor"),
    **dict.fromkeys(["normal", "nrm", "nor", "normalgl"], "normal"),
    **dict.fromkeys(["ao", "occlusion", "ambientocclusion"], "ao"),
    **dict.fromkeys(["roughness", "rough"], "roughness"),
    **dict.fromkeys(["metalness", "metallic", "metal"], "metalness"),
    **dict.fromkeys(["orm", "arm"], "orm"),
}
_EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tga": "tga", ".exr": "exr"}
_SEPARATORS = re.compile(r"[_\-. ]+")
_SAVE_FORMATS = ("auto", "png8", "png16", "exr")


@dataclass
class MapSource:
    """Where a group of stack channels came from, so decode can write it back alike."""

    kind: str
    file: str
    channels: list[int]
    bit_depth: int
    file_format: str
    colour_space: str

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "file": self.file,
            "channels": [int(c) for c in self.channels],
            "bit_depth": int(self.bit_depth),
            "file_format": self.file_format,
            "colour_space": self.colour_space,
        }

    @staticmethod
    def from_dict(d: dict) -> "MapSource":
        # The dict comes from a .igs file that may be damaged or hand-edited;
        # the caller knows the file name and is expected to prefix it.
        if not isinstance(d, dict):
            raise IgsError(f"map metadata: expected an object, got {type(d).__name__}")
        missing = [k for k in ("kind", "file", "channels", "bit_depth", "file_format", "colour_space") if k not in d]
        if missing:
            raise IgsError(f"map metadata: missing {', '.join(missing)}")
        if d["kind"] not in MAP_KINDS:
            raise IgsError(f"map metadata: unknown kind {d['kind']!r}")
        if not isinstance(d["file"], str) or not d["file"]:
            raise IgsError("map metadata: 'file' must be a non-empty string")
        chans = d["channels"]
        if not isinstance(chans, list) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in chans):
            raise IgsError(f"map metadata: 'channels' must be a list of non-negative integers, got {chans!r}")
        if d["file_format"] not in ("png", "jpeg", "tga", "exr"):
            raise IgsError(f"map metadata: unknown file_format {d['file_format']!r}")
        if d["bit_depth"] not in (8, 16, 32):
            raise IgsError(f"map metadata: unsupported bit_depth {d['bit_depth']!r}")
        if d["colour_space"] not in ("srgb", "linear"):
            raise IgsError(f"map metadata: unknown colour_space {d['colour_space']!r}")
        return MapSource(d["kind"], d["file"], list(chans), int(d["bit_depth"]), d["file_format"], d["colour_space"])


@dataclass
class MaterialStack:
    name: str
    data: np.ndarray  # [H, W, C] float32 in [0, 1]
    channels: list[str]
    value_range: np.ndarray  # [C, 2] float32 (lo, hi), real = lo + v * (hi - lo)
    maps: list[MapSource] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def channel_count(self) -> int:
        return int(self.data.shape[2])

    def group_slices(self) -> dict[str, list[int]]:
        """Channel indices per semantic group; groups with no channel present are left out."""
        out: dict[str, list[int]] = {}
        for group, names in GROUPS.items():
            idx = [self.channels.index(n) for n in names if n in self.channels]
            if idx:
                out[group] = idx
        return out


# --------------------------------------------------------------------------- reading


@dataclass
class _Image:
    pixels: np.ndarray  # [H, W, P] float64, real values (integer codes already divided)
    bit_depth: int
    file_format: str
    is_float: bool


def map_kind(filename: str) -> str | None:
    """Map kind implied by a file name, or None when it is not a recognised texture map.

    The stem is split on ``_ - .`` and spaces; the shortest run of trailing
    tokens that spells a known suffix wins, so ``rock_Normal_GL`` -> normal
    and ``wall_ambient_occlusion`` -> ao, while ``heightmap`` matches nothing.
    """
    p = Path(filename)
    if p.name.startswith(".") or p.suffix.lower() not in _EXTENSIONS:
        # Dot files include macOS "._basecolor.png" resource forks, which would
        # otherwise show up as duplicate maps.
        return None
    tokens = [t for t in _SEPARATORS.split(p.stem.lower()) if t]
    for n in range(1, len(tokens) + 1):
        kind = _SUFFIXES.get("".join(tokens[-n:]))
        if kind is not None:
            return kind
    return None


def _read_png(path: Path) -> _Image:
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        # asDirect expands palettes and low bit depths; rows are produced lazily,
        # so decoding errors surface while iterating, inside this try.
        arr = np.vstack([np.asarray(r) for r in rows]) if height else np.zeros((0, 0))
    except Exception as e:  # png.Error, OSError, zlib.error...: all mean a bad file here
        raise IgsError(f"{path}: cannot read image ({_reason(e, path)})") from None
    if arr.shape[0] != height:
        raise IgsError(f"{path}: cannot read image (expected {height} rows, got {arr.shape[0]})")
    planes = int(info["planes"])
    bitdepth = int(info["bitdepth"])
    pixels = arr.reshape(height, width, planes).astype(np.float64) / float((1 << bitdepth) - 1)
    return _Image(pixels, 16 if bitdepth > 8 else 8, "png", False)


def _read_pil(path: Path, file_format: str) -> _Image:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # Pillow opens lazily; force decoding so truncation is caught here
            mode = im.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                return _Image(np.asarray(im, dtype=np.uint16)[..., None].astype(np.float64) / 65535.0, 16, file_format, False)
            if mode in ("I", "F"):
                raise IgsError(f"{path}: unsupported pixel mode {mode} (expected 8-bit grey or RGB)")
            if mode not in ("L", "LA", "RGB", "RGBA"):
                # Palette, 1-bit and CMYK images become plain RGB(A) or grey.
                im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except IgsError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, DecompressionBombError...
        raise IgsError(f"{path}: cannot read image ({_reason(e, path)})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return _Image(arr.astype(np.float64) / 255.0, 8, file_format, False)


def _read_exr(path: Path) -> _Image:
    import OpenEXR

    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            header = f.header()
            chans = {name: ch for name, ch in f.channels().items()}
            subsampled = [c.name for c in header.get("channels", []) if (c.xSampling, c.ySampling) != (1, 1)]
            if subsampled:
                raise IgsError(f"{path}: subsampled channels {', '.join(subsampled)} are not supported")
            if all(n in chans for n in "RGB"):
                names = ["R", "G", "B"]
            elif "Y" in chans:
                names = ["Y"]
            elif "R" in chans:
                names = ["R"]
            elif len(chans) == 1:
                names = list(chans)
            else:
                found = ", ".join(sorted(chans)) or "none"
                raise IgsError(f"{path}: no R,G,B or Y channel (found {found})")
            planes = [np.asarray(chans[n].pixels) for n in names]
            is_half = all(p.dtype == np.float16 for p in planes)
    except IgsError:
        raise
    except Exception as e:  # OpenEXR raises RuntimeError for unreadable/truncated files
        raise IgsError(f"{path}: cannot read image ({_reason(e, path)})") from None
    if len({p.shape for p in planes}) != 1:
        raise IgsError(f"{path}: channels have different sizes")
    pixels = np.stack([p.astype(np.float64) for p in planes], axis=-1)
    for i, n in enumerate(names):
        if not np.isfinite(pixels[..., i]).all():
            raise IgsError(f"{path}: channel {n} contains NaN/Inf")
    return _Image(pixels, 16 if is_half else 32, "exr", True)


def _read_image(path: Path) -> _Image:
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt == "png":
        return _read_png(path)
    if fmt == "exr":
        return _read_exr(path)
    if fmt in ("jpeg", "tga"):
        return _read_pil(path, fmt)
    raise IgsError(f"{path}: unsupported file type (expected {', '.join(sorted(_EXTENSIONS))})")


def _reason(e: BaseException, path: Path | None = None) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if path is not None:  # the message already starts with the path; don't repeat it
        text = text.replace(f"'{path}'", "file").replace(str(path), "file")
    return text if len(text) <= 200 else text[:197] + "..."


def _slot_planes(img: _Image, n_slots: int) -> np.ndarray:
    """Fit an image's colour planes to a map's slot count: [H, W, n_slots]."""
    px = img.pixels
    colour = px.shape[2] if px.shape[2] in (1, 3) else px.shape[2] - 1  # LA / RGBA: drop alpha
    px = px[..., :colour]
    if n_slots == 1:
        # Single-channel maps saved as RGB are common (exporters write grey as
        # RGB); R is taken even if G and B differ, matching what engines sample.
        return px[..., :1]
    if colour == 1:
        return np.repeat(px, n_slots, axis=2)
    return px[..., :n_slots]


def _slot_names(kind: str) -> list[str]:
    return _ORM_CHANNELS if kind == "orm" else GROUPS[kind]


def _find_maps(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        kind = map_kind(p.name)
        if kind is None:
            continue
        if kind in found:
            raise IgsError(f"{p}: duplicate {kind} map (also {found[kind].name})")
        found[kind] = p
    if not found:
        names = "|".join(_SUFFIXES)
        raise IgsError(f"{folder}: no recognised map (expected names ending in {names} with {'/'.join(_EXTENSIONS)})")
    if "orm" in found:
        for kind in _ORM_CHANNELS:
            if kind in found:
                raise IgsError(f"{found[kind]}: {kind} is also packed in {found['orm'].name} (ambiguous; remove one)")
    return found


def load_material(path) -> MaterialStack:
    """Load a material folder (or a single recognised map file) into a MaterialStack."""
    path = Path(path)
    if not path.exists():
        raise IgsError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            found = _find_maps(path)
            name = path.resolve().name
        else:
            kind = map_kind(path.name)
            if kind is None:
                raise IgsError(f"{path}: not a material folder or a recognised map file")
            found = {kind: path}
            name = path.stem
    except OSError as e:
        raise IgsError(f"{path}: cannot list folder ({_reason(e)})") from None

    kinds = [k for k in ("basecolor", "normal", "orm", "ao", "roughness", "metalness") if k in found]
    present = [c for c in CHANNEL_ORDER if any(c in _slot_names(k) for k in kinds)]
    index = {c: i for i, c in enumerate(present)}

    data: np.ndarray | None = None
    value_range = np.zeros((len(present), 2), dtype=np.float32)
    value_range[:, 1] = 1.0
    maps: list[MapSource] = []
    ref: tuple[str, int, int] | None = None
    for kind in kinds:
        file = found[kind]
        img = _read_image(file)
        h, w = img.pixels.shape[:2]
        if h == 0 or w == 0:
            raise IgsError(f"{file}: image is empty ({w}x{h})")
        if ref is None:
            ref = (file.name, w, h)
            data = np.empty((h, w, len(present)), dtype=np.float32)
        elif (w, h) != ref[1:]:
            raise IgsError(f"{file}: size {w}x{h} differs from {ref[0]} {ref[1]}x{ref[2]}")
        slots = _slot_names(kind)
        planes = _slot_planes(img, len(slots))
        chan_idx = [index[s] for s in slots]
        for j, ci in enumerate(chan_idx):
            plane = planes[..., j]
            if img.is_float:
                lo, hi = _float_range(plane)
                value_range[ci] = (lo, hi)
                # Normalise with the float32 bounds that are stored, so that
                # lo + v * (hi - lo) reproduces the file's values.
                plane = np.clip((plane - float(lo)) / (float(hi) - float(lo)), 0.0, 1.0)
            data[..., ci] = plane
        srgb = kind == "basecolor" and not img.is_float
        maps.append(MapSource(kind, file.name, chan_idx, img.bit_depth, img.file_format, "srgb" if srgb else "linear"))

    maps.sort(key=lambda m: min(m.channels))
    return MaterialStack(name=name, data=data, channels=present, value_range=value_range, maps=maps)


def _float_range(plane: np.ndarray) -> tuple[np.float32, np.float32]:
    lo = np.float32(plane.min())
    hi = np.float32(plane.max())
    if not hi > lo:
        hi = np.float32(lo + np.float32(1.0))
        if not hi > lo:  # |lo| so large that +1 is lost in float32
            hi = np.float32(lo + abs(lo))
    return lo, hi


# --------------------------------------------------------------------------- writing


def _write_png(path: Path, values: np.ndarray, bit_depth: int) -> None:
    """values: [H, W, 1 or 3] real values; clipped to [0, 1] and rounded to the nearest code."""
    import png

    top = (1 << bit_depth) - 1
    codes = np.rint(np.clip(values, 0.0, 1.0) * top).astype(np.uint16 if bit_depth == 16 else np.uint8)
    h, w, c = codes.shape
    writer = png.Writer(width=w, height=h, greyscale=(c == 1), bitdepth=bit_depth)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            writer.write(f, codes.reshape(h, w * c))

    atomic_write(path, write)


def _write_exr(path: Path, values: np.ndarray) -> None:
    """values: [H, W, 1 or 3] real values, written as float32 R,G,B or Y."""
    import OpenEXR

    names = ["Y"] if values.shape[2] == 1 else ["R", "G", "B"]
    planes = {n: np.ascontiguousarray(values[..., i], dtype=np.float32) for i, n in enumerate(names)}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}

    def write(tmp: Path) -> None:
        with OpenEXR.File(header, planes) as f:
            f.write(str(tmp))

    atomic_write(path, write)


def save_maps(data, channels: list[str], value_range, maps: list[MapSource], out_dir, fmt: str = "auto") -> list[Path]:
    """Write one texture per MapSource into out_dir (the inverse of load_material).

    fmt='auto' keeps each source's name and bit depth: 8/16-bit PNG stay PNG,
    JPEG/TGA become 8-bit PNG (a lossy re-encode would add error to the
    measurement), EXR is written as float32. 'png8', 'png16' or 'exr' force one
    format for every map. PNG output stores the real value (through
    value_range) clipped to [0, 1].
    """
    out_dir = Path(out_dir)
    if fmt not in _SAVE_FORMATS:
        raise IgsError(f"{out_dir}: unknown output format {fmt!r} (expected {'|'.join(_SAVE_FORMATS)})")
    data = np.asarray(data, dtype=np.float32)
    value_range = np.asarray(value_range, dtype=np.float64)
    if data.ndim != 3 or data.shape[2] != len(channels) or value_range.shape != (len(channels), 2):
        raise IgsError(
            f"{out_dir}: decoded data {tuple(data.shape)} / value_range {tuple(value_range.shape)} "
            f"do not match {len(channels)} channels"
        )

    plan: list[tuple[Path, MapSource, str]] = []
    for m in maps:
        base = m.file
        if base in ("", ".", "..") or "/" in base or "\\" in base:  # stored metadata must not escape out_dir
            raise IgsError(f"{out_dir}: invalid map file name {m.file!r}")
        expected = _slot_names(m.kind) if m.kind in MAP_KINDS else None
        got = [channels[i] if 0 <= i < len(channels) else None for i in m.channels]
        if expected is None or got != expected:
            raise IgsError(f"{out_dir}: map {m.file} ({m.kind}) refers to channels {got}, expected {expected}")
        out_fmt = fmt
        if fmt == "auto":
            if m.file_format == "exr":
                out_fmt = "exr"
            else:
                out_fmt = "png16" if m.bit_depth > 8 else "png8"
        suffix = ".exr" if out_fmt == "exr" else ".png"
        target = out_dir / (base if Path(base).suffix.lower() == suffix else Path(base).stem + suffix)
        plan.append((target, m, out_fmt))

    targets = [t for t, _, _ in plan]
    dup = {t.name for t in targets if targets.count(t) > 1}
    if dup:
        raise IgsError(f"{out_dir}: two maps would be written to {', '.join(sorted(dup))}")

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IgsError(f"{out_dir}: cannot create folder ({_reason(e)})") from None

    written: list[Path] = []
    for target, m, out_fmt in plan:
        idx = list(m.channels)
        lo = value_range[idx, 0]
        hi = value_range[idx, 1]
        values = lo + data[..., idx].astype(np.float64) * (hi - lo)  # [H, W, c]
        try:
            if out_fmt == "exr":
                _write_exr(target, values)
            else:
                _write_png(target, values, 16 if out_fmt == "png16" else 8)
        except Exception as e:  # OSError, or RuntimeError from OpenEXR
            raise IgsError(f"{target}: cannot write ({_reason(e, target)})") from None
        written.append(target)
    return written
