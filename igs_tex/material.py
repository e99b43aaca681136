"""Material texture I/O: a folder of PBR maps <-> a normalised float stack.

This module is the only place that reads or writes texture files for a
material. Everything downstream sees a :class:`MaterialStack`: float32
``[H, W, C]`` in [0, 1], a fixed channel order (``CHANNEL_ORDER``, absent maps
skipped) and, per channel, the ``(lo, hi)`` range that maps the normalised
value back to the file's real value. Integer images are stored as-is (v / max
code); EXR data is min/max normalised per channel so HDR values survive the
trip through a [0, 1] fitter.

Which file feeds which channels is decided by :func:`discover_maps` from the file names
(the naming of Poly Haven, ambientCG, Substance, Quixel and Unreal exports among them); it
also lists every file it skips and why, for the bake to print. Opacity, which the .igs
format has no semantic code for, is one extra channel stored as code 0 (``other``) after
``CHANNEL_ORDER``; so is a height map when the caller asks for it.

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

# Single-channel maps with no semantic code of their own (docs/FORMAT.md has codes 0-9 only):
# they become one channel stored as code 0, `other`, appended after CHANNEL_ORDER. "opacity"
# is found by name; "other" is a map the caller asked for by load_material(maps={"height": f}).
EXTRA_KINDS = ("opacity", "other")

MAP_KINDS = ("basecolor", "normal", "ao", "roughness", "metalness", "orm", *EXTRA_KINDS)

# How a stored map differs from the stack's convention; each is its own inverse, so save_maps
# applies the same operation to write the file back as it was.
TRANSFORMS = ("", "flip_green", "negate_green", "one_minus")

_EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tga": "tga", ".exr": "exr"}
# Image files that are recognised as such but not read; listed as skipped with this reason.
_UNREAD_EXTENSIONS = {
    ".ktx2": "KTX2 maps are not read yet",
    **{
        ext: f"{ext[1:].upper()} files are not read; use PNG, JPEG, TGA or EXR"
        for ext in (".ktx", ".dds", ".tif", ".tiff", ".psd", ".webp", ".bmp", ".hdr", ".gif", ".avif")
    },
}
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
    # "" (stored as the stack holds it), "flip_green" (a DirectX normal: G -> 1 - G),
    # "negate_green" (a signed float DirectX normal: G -> -G) or "one_minus" (a glossiness map
    # feeding roughness: v -> 1 - v). Applied on load; save_maps applies it again (each is its
    # own inverse) so the written file has the source's convention.
    transform: str = ""

    def to_dict(self) -> dict:
        d = {
            "kind": self.kind,
            "file": self.file,
            "channels": [int(c) for c in self.channels],
            "bit_depth": int(self.bit_depth),
            "file_format": self.file_format,
            "colour_space": self.colour_space,
        }
        if self.transform:  # left out when empty, so untransformed records are as before
            d["transform"] = self.transform
        return d

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
        if not isinstance(chans, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in chans
        ):
            raise IgsError(f"map metadata: 'channels' must be a list of non-negative integers, got {chans!r}")
        if d["file_format"] not in ("png", "jpeg", "tga", "exr"):
            raise IgsError(f"map metadata: unknown file_format {d['file_format']!r}")
        if d["bit_depth"] not in (8, 16, 32):
            raise IgsError(f"map metadata: unsupported bit_depth {d['bit_depth']!r}")
        if d["colour_space"] not in ("srgb", "linear"):
            raise IgsError(f"map metadata: unknown colour_space {d['colour_space']!r}")
        transform = d.get("transform", "")
        if transform not in TRANSFORMS:
            raise IgsError(f"map metadata: unknown transform {transform!r}")
        return MapSource(
            d["kind"], d["file"], list(chans), int(d["bit_depth"]), d["file_format"], d["colour_space"], transform
        )


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
        """Channel indices per semantic group; groups with no channel present are left out.

        Extra maps (opacity, other) are stored as `other` channels, so their groups come from
        the map records rather than from the channel names.
        """
        out: dict[str, list[int]] = {}
        for group, names in GROUPS.items():
            idx = [self.channels.index(n) for n in names if n in self.channels]
            if idx:
                out[group] = idx
        for m in self.maps:
            if m.kind in EXTRA_KINDS and m.channels and m.kind not in out:
                out[m.kind] = [int(c) for c in m.channels]
        return out


# --------------------------------------------------------------------------- reading


@dataclass
class _Image:
    pixels: np.ndarray  # [H, W, P] float64, real values (integer codes already divided)
    bit_depth: int
    file_format: str
    is_float: bool


# --------------------------------------------------------------------------- map discovery
# A map's kind is read from the end of its file name: the stem is lower-cased and split on
# `_ - .` and spaces, trailing size and format tokens (1k, 2K, 4096, JPG) are dropped, and the
# shortest run of trailing tokens that spells a known name wins ("rock_Normal_GL" -> normalgl,
# "wall_ambient_occlusion" -> occlusion, "T_Brick_N" -> n). The names cover the usual exporters:
# Poly Haven (diff, nor_gl, nor_dx, rough, arm, ao, disp, metal), ambientCG (Color, NormalGL,
# NormalDX, Roughness, Metalness, AmbientOcclusion, Displacement, Opacity), Substance (BaseColor,
# Normal, Normal_OpenGL, Normal_DirectX, Roughness, Metallic, Height, Mixed_AO,
# OcclusionRoughnessMetallic), Quixel (Albedo, Normal, Roughness, AO, Displacement, Metalness,
# Opacity, Gloss) and Unreal (T_Name_D, _N, _ORM, _R, _M, _AO, _H).

HEIGHT_REASON = "height is not baked unless asked"


@dataclass(frozen=True)
class _Name:
    """What a file name says: a map kind, how its pixels relate to the stack, or why it is skipped."""

    kind: str  # a MAP_KINDS entry, or (with skip) a kind that is not baked
    rank: int = 0  # among files of one kind the lowest rank is used; a tie is an error
    transform: str = ""
    note: str = ""
    skip: str = ""  # non-empty: the reason a file of this kind is not baked


def _named(kind: str, keys: list[str], **kw) -> dict[str, _Name]:
    return dict.fromkeys(keys, _Name(kind, **kw))


def _not_baked(label: str, keys: list[str]) -> dict[str, _Name]:
    return _named(label, keys, skip=f"{label} maps are not baked (igs-tex has no {label} channel)")


_PLAIN_NORMAL = "convention not in the name: taken as OpenGL (+Y)"
_DX_NORMAL = "DirectX normal: green flipped to OpenGL (+Y)"
_GLOSS = "glossiness: roughness = 1 - gloss"

# Keys are tokens joined without separators.
_NAMES: dict[str, _Name] = {
    **_named("basecolor", ["basecolor", "basecolour", "albedo", "diffuse", "diff", "color", "colour", "d"]),
    **_named(
        "normal",
        ["normalgl", "norgl", "nrmgl", "ngl", "normalopengl", "noropengl", "nrmopengl", "nopengl"],
        note="OpenGL (+Y) normal",
    ),
    **_named("normal", ["normal", "nor", "nrm", "n"], rank=1, note=_PLAIN_NORMAL),
    **_named(
        "normal",
        ["normaldx", "nordx", "nrmdx", "ndx", "normaldirectx", "nordirectx", "nrmdirectx", "ndirectx"],
        rank=2,
        transform="flip_green",
        note=_DX_NORMAL,
    ),
    **_named("ao", ["ao", "occlusion", "ambientocclusion"]),
    **_named("roughness", ["roughness", "rough", "r"]),
    **_named("roughness", ["gloss", "glossiness", "smoothness"], rank=1, transform="one_minus", note=_GLOSS),
    **_named("metalness", ["metalness", "metallic", "metal", "m"]),
    **_named("orm", ["orm", "arm", "occlusionroughnessmetallic"]),
    **_named("opacity", ["opacity", "alpha"]),
    **_named("height", ["height", "displacement", "disp", "h", "bump"], skip=HEIGHT_REASON),
    **_not_baked("specular", ["specular", "spec", "specularlevel"]),
    **_not_baked("emissive", ["emissive", "emission", "emit"]),
    **_not_baked("cavity", ["cavity"]),
    **_not_baked("translucency", ["translucency", "transmission", "subsurface", "sss"]),
    **_not_baked("sheen", ["sheen", "fuzz"]),
    **_not_baked("curvature", ["curvature"]),
    **_not_baked("thickness", ["thickness"]),
    **_not_baked("mask", ["mask", "idmap", "id"]),
    **_named("preview", ["preview", "thumbnail", "thumb"], skip="a preview image, not a map"),
}
_POWER_OF_TWO_SIZES = {str(1 << e) for e in range(8, 15)}  # 256 .. 16384
_FORMAT_TOKENS = {"jpg", "jpeg", "png", "exr", "tga", "tif", "tiff", "ktx2"}
_SIZE_TOKEN = re.compile(r"\d+k")
_READ_ORDER = ("basecolor", "normal", "orm", "ao", "roughness", "metalness", "opacity", "other")
_ERROR_LISTING = 12  # names shown by the "no recognised map" error


def _classify(filename: str) -> _Name | None:
    tokens = [t for t in _SEPARATORS.split(Path(filename).stem.lower()) if t]
    while tokens and (
        _SIZE_TOKEN.fullmatch(tokens[-1]) or tokens[-1] in _POWER_OF_TWO_SIZES or tokens[-1] in _FORMAT_TOKENS
    ):
        tokens.pop()
    for n in range(1, len(tokens) + 1):
        name = _NAMES.get("".join(tokens[-n:]))
        if name is not None:
            return name
    return None


def map_kind(filename: str) -> str | None:
    """Map kind (a MAP_KINDS entry) a file name gives a map that is baked, else None.

    None for files that are not read (unknown names, height, specular..., .ktx2 and other
    unread formats, dot files such as macOS "._basecolor.png" resource forks). A DirectX normal
    is "normal" and a glossiness map "roughness": discover_maps says how they are converted.
    """
    p = Path(filename)
    if p.name.startswith(".") or p.suffix.lower() not in _EXTENSIONS:
        return None
    name = _classify(p.name)
    return None if name is None or name.skip else name.kind


@dataclass(frozen=True)
class MapAssignment:
    """A file the material uses and what it becomes."""

    path: Path
    kind: str  # a MAP_KINDS entry (the MapSource kind)
    channels: tuple[str, ...]  # what its planes become, e.g. ("ao (R)", "roughness (G)", "metalness (B)")
    transform: str = ""  # see MapSource.transform
    note: str = ""
    explicit: bool = False  # given by load_material(maps=...)

    def describe(self) -> str:
        notes = [n for n in (self.note, "given by maps=" if self.explicit else "") if n]
        return f"{self.path.name} -> {', '.join(self.channels)}" + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class SkippedMap:
    """A file in the material folder that is not used, and why."""

    path: Path
    reason: str
    # Set when the file's channel is also in this packed ORM map: load_material checks that
    # the two agree and reports the pair as ambiguous when they do not.
    packed_in: Path | None = None

    def describe(self) -> str:
        return f"{self.path.name}: skipped ({self.reason})"


def describe_maps(assignments: list[MapAssignment], skipped: list[SkippedMap]) -> list[str]:
    """One line per file: the used ones (in channel order) and then the skipped ones."""
    return [a.describe() for a in assignments] + [s.describe() for s in skipped]


def _channel_labels(kind: str, asked_as: str = "") -> tuple[str, ...]:
    if kind == "orm":
        return tuple(f"{c} ({plane})" for c, plane in zip(_ORM_CHANNELS, "RGB"))
    if kind in EXTRA_KINDS:
        return (f"{asked_as or kind} (stored as channel 'other')",)
    return tuple(GROUPS[kind])


def _claims(kind: str) -> tuple[str, ...]:
    return tuple(_ORM_CHANNELS) if kind == "orm" else (kind,)


def _look(path: Path) -> tuple[_Name | None, str]:
    """(name, "") for a map to use, (None, reason) for a file to list as skipped, (None, "") to ignore."""
    ext = path.suffix.lower()
    if ext not in _EXTENSIONS and ext not in _UNREAD_EXTENSIONS:
        return None, ""  # not an image: LICENSE, material.toml, .mtlx ...
    if path.name.startswith("."):
        return None, "hidden file"
    name = _classify(path.name)
    if ext in _UNREAD_EXTENSIONS:
        reason = _UNREAD_EXTENSIONS[ext]
        return None, reason + (f"; a {name.kind} map by its name" if name is not None and not name.skip else "")
    if name is None:
        return None, "name not recognised as a map"
    if name.skip:
        return None, name.skip
    return name, ""


def _override(folder: Path, key, value) -> MapAssignment:
    """One maps= entry: the key says how to read the file (its name is not consulted)."""
    if not isinstance(key, str):
        raise IgsError(f"{folder}: maps: kind must be a string, got {key!r}")
    canon = "".join(t for t in _SEPARATORS.split(key.lower()) if t)
    name = _NAMES.get(canon)
    asked_as = ""
    if canon == "other" or (name is not None and name.kind == "height"):
        name, asked_as = _Name("other"), ("other" if canon == "other" else "height")
    elif name is not None and name.kind == "normal" and not name.transform:
        name = _Name("normal", note="used as stored: OpenGL (+Y)")  # normal, normal_gl, nor, n ...
    if name is None or name.skip:
        why = name.skip if name is not None else "unknown map kind"
        raise IgsError(
            f"{folder}: maps: {key!r}: {why} (expected basecolor, normal, normal_gl, "
            "normal_dx, ao, roughness, gloss, metalness, orm, opacity or height)"
        )
    file = Path(value)
    if not file.is_absolute():
        file = folder / file
    if not file.is_file():
        raise IgsError(f"{file}: no such file (maps[{key!r}])")
    ext = file.suffix.lower()
    if ext not in _EXTENSIONS:
        reason = _UNREAD_EXTENSIONS.get(ext, f"unsupported file type (expected {', '.join(sorted(_EXTENSIONS))})")
        raise IgsError(f"{file}: {reason} (maps[{key!r}])")
    return MapAssignment(
        file, name.kind, _channel_labels(name.kind, asked_as), name.transform, name.note, explicit=True
    )


def _no_map_error(folder: Path, entries: list[Path], skipped: list[SkippedMap]) -> IgsError:
    reasons = {s.path.name: s.reason for s in skipped}
    shown = []
    for p in entries[:_ERROR_LISTING]:
        label = p.name + ("/" if p.is_dir() else "")
        reason = reasons.get(p.name, "")
        if reason and reason != "name not recognised as a map":
            label += f" ({reason})"
        shown.append(label)
    if len(entries) > _ERROR_LISTING:
        shown.append(f"and {len(entries) - _ERROR_LISTING} more")
    saw = ", ".join(shown) if shown else "nothing"
    exts = "/".join(e[1:] for e in _EXTENSIONS)
    return IgsError(
        f"{folder}: no recognised map (saw {saw}; expected {exts} maps named like "
        "*_basecolor, *_diff_1k, *_Color, *_normal, *_nor_gl, *_NormalDX, *_roughness, "
        "*_metalness, *_ao, *_arm or *_ORM)"
    )


def discover_maps(path, maps: dict | None = None) -> tuple[list[MapAssignment], list[SkippedMap]]:
    """Which files of a material folder become which channels, and which are skipped and why.

    maps: optional explicit {kind: file} (file relative to the folder, or absolute), kind one of
    basecolor, normal (or normal_gl: used as stored), normal_dx (green flipped), ao, roughness,
    gloss (1 - value), metalness, orm, opacity, height (baked as an `other` channel). An explicit
    file replaces every discovered file that would feed the same channel.

    Among discovered files of one kind the preferred one is used and the others are skipped with
    the reason: an OpenGL normal over an unnamed one over a DirectX one, roughness over gloss,
    a packed ORM over separate ao/roughness/metalness (load_material checks that those agree
    with it). Two files of one kind with no preference between them are an error, as is a
    folder with nothing to use (the message lists what it saw). A single map file is a material
    of that one map.
    """
    path = Path(path)
    if not path.exists():
        raise IgsError(f"{path}: no such file or folder")
    if not path.is_dir():
        if maps:
            raise IgsError(f"{path}: maps= needs a material folder, not a file")
        name, reason = _look(path)
        if name is None:
            raise IgsError(
                f"{path}: not a material folder or a recognised map file" + (f" ({reason})" if reason else "")
            )
        return [MapAssignment(path, name.kind, _channel_labels(name.kind), name.transform, name.note)], []
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
        files = [p for p in entries if p.is_file()]
    except OSError as e:
        raise IgsError(f"{path}: cannot list folder ({_reason(e)})") from None

    explicit: list[MapAssignment] = []
    for key, value in (maps or {}).items():
        a = _override(path, key, value)
        for other in explicit:
            if set(_claims(a.kind)) & set(_claims(other.kind)) or a.path.resolve() == other.path.resolve():
                raise IgsError(
                    f"{path}: maps: {a.path.name} ({a.kind}) and {other.path.name} ({other.kind}) feed the same channel"
                )
        explicit.append(a)
    explicit_paths = {a.path.resolve() for a in explicit}
    explicit_claims = {c: a for a in explicit for c in _claims(a.kind)}

    skipped: list[SkippedMap] = []
    candidates: list[tuple[Path, _Name]] = []
    for f in files:
        if f.resolve() in explicit_paths:
            continue
        name, reason = _look(f)
        if name is None:
            if reason:
                skipped.append(SkippedMap(f, reason))
            continue
        taken = [c for c in _claims(name.kind) if c in explicit_claims]
        if taken:
            by = explicit_claims[taken[0]].path.name
            skipped.append(SkippedMap(f, f"{', '.join(taken)} given by maps= ({by})"))
            continue
        candidates.append((f, name))

    # A packed ORM comes first: separate maps of its channels are redundant copies.
    orms = [(f, n) for f, n in candidates if n.kind == "orm"]
    if orms:
        orm = orms[0][0]
        rest = []
        for f, n in candidates:
            if n.kind in _ORM_CHANNELS:
                skipped.append(SkippedMap(f, f"{n.kind} is also packed in {orm.name}, which is used", packed_in=orm))
            else:
                rest.append((f, n))
        candidates = rest

    chosen: list[MapAssignment] = []
    for kind in _READ_ORDER:
        group = sorted(((f, n) for f, n in candidates if n.kind == kind), key=lambda c: (c[1].rank, c[0].name))
        if not group:
            continue
        (best, best_name), others = group[0], group[1:]
        for f, n in others:
            if n.rank == best_name.rank:
                raise IgsError(f"{f}: duplicate {kind} map (also {best.name})")
            skipped.append(SkippedMap(f, f"{kind} comes from {best.name}; {_preference(kind)}"))
        chosen.append(MapAssignment(best, kind, _channel_labels(kind), best_name.transform, best_name.note))

    chosen += explicit
    chosen.sort(key=lambda a: _READ_ORDER.index(a.kind))
    skipped.sort(key=lambda s: s.path.name)
    if not chosen:
        raise _no_map_error(path, entries, skipped)
    return chosen, skipped


def _preference(kind: str) -> str:
    # Only normal and roughness have names of different rank.
    if kind == "normal":
        return "OpenGL is preferred, then a name with no convention, then DirectX"
    return "roughness is preferred over glossiness"


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
                return _Image(
                    np.asarray(im, dtype=np.uint16)[..., None].astype(np.float64) / 65535.0, 16, file_format, False
                )
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
    if kind == "orm":
        return _ORM_CHANNELS
    if kind in EXTRA_KINDS:
        return ["other"]
    return GROUPS[kind]


# A separate ao/roughness/metalness map next to a packed ORM map is accepted as a redundant
# copy when its mean absolute difference from the packed channel is at most this (real units;
# two 8-bit PNGs of one export agree exactly, JPEG re-encodes differ by a code or two).
_SAME_MAP_TOLERANCE = 2.0 / 255.0


def _apply_transform(planes: np.ndarray, transform: str, is_float: bool) -> tuple[np.ndarray, str]:
    """planes [H, W, n] real values -> (converted copy, the transform recorded)."""
    if not transform:
        return planes, ""
    planes = np.array(planes, dtype=np.float64, copy=True)
    if transform in ("flip_green", "negate_green"):
        if planes.shape[2] < 2:
            return planes, ""
        # Unsigned encodings (every integer file, and float files within [0, 1]) flip as
        # 1 - G; a float file with negative values stores signed vectors and flips as -G.
        signed = transform == "negate_green" or (is_float and planes[..., 1].min() < 0.0)
        planes[..., 1] = -planes[..., 1] if signed else 1.0 - planes[..., 1]
        return planes, "negate_green" if signed else "flip_green"
    if transform == "one_minus":
        return 1.0 - planes, transform
    raise ValueError(transform)


def load_material(path, maps: dict | None = None) -> MaterialStack:
    """Load a material folder (or a single recognised map file) into a MaterialStack.

    Files are chosen by discover_maps (same `maps` override); DirectX normals have their green
    channel flipped and glossiness becomes roughness, recorded in MapSource.transform.
    """
    path = Path(path)
    assignments, skipped = discover_maps(path, maps)
    name = path.resolve().name if path.is_dir() else path.stem

    fed = {c for a in assignments if a.kind not in EXTRA_KINDS for c in _slot_names(a.kind)}
    present = [c for c in CHANNEL_ORDER if c in fed]
    chan_of: list[list[int]] = []
    for a in assignments:  # extras are appended in discovery order (opacity, then other)
        if a.kind in EXTRA_KINDS:
            present.append("other")
            chan_of.append([len(present) - 1])
        else:
            chan_of.append([present.index(c) for c in _slot_names(a.kind)])

    data: np.ndarray | None = None
    value_range = np.zeros((len(present), 2), dtype=np.float32)
    value_range[:, 1] = 1.0
    sources: list[MapSource] = []
    packed: dict[Path, np.ndarray] = {}  # ORM planes (real values), for the redundancy check
    ref: tuple[str, int, int] | None = None
    for a, chan_idx in zip(assignments, chan_of):
        file = a.path
        img = _read_image(file)
        h, w = img.pixels.shape[:2]
        if h == 0 or w == 0:
            raise IgsError(f"{file}: image is empty ({w}x{h})")
        if ref is None:
            ref = (file.name, w, h)
            data = np.empty((h, w, len(present)), dtype=np.float32)
        elif (w, h) != ref[1:]:
            raise IgsError(f"{file}: size {w}x{h} differs from {ref[0]} {ref[1]}x{ref[2]}")
        planes, transform = _apply_transform(_slot_planes(img, len(chan_idx)), a.transform, img.is_float)
        if a.kind == "orm":
            packed[file] = planes
        for j, ci in enumerate(chan_idx):
            plane = planes[..., j]
            if img.is_float:
                lo, hi = _float_range(plane)
                value_range[ci] = (lo, hi)
                # Normalise with the float32 bounds that are stored, so that
                # lo + v * (hi - lo) reproduces the file's values.
                plane = np.clip((plane - float(lo)) / (float(hi) - float(lo)), 0.0, 1.0)
            data[..., ci] = plane
        srgb = a.kind == "basecolor" and not img.is_float
        sources.append(
            MapSource(
                a.kind, file.name, chan_idx, img.bit_depth, img.file_format, "srgb" if srgb else "linear", transform
            )
        )

    for s in skipped:
        if s.packed_in is not None and s.packed_in in packed:
            _check_same_as_packed(s, packed[s.packed_in])

    sources.sort(key=lambda m: min(m.channels))
    return MaterialStack(name=name, data=data, channels=present, value_range=value_range, maps=sources)


def _check_same_as_packed(s: SkippedMap, orm: np.ndarray) -> None:
    """A separate map skipped for a packed ORM must be a copy of its channel, else it is ambiguous."""
    name = _classify(s.path.name)
    slot = _ORM_CHANNELS.index(name.kind)
    img = _read_image(s.path)
    plane, _ = _apply_transform(_slot_planes(img, 1), name.transform, img.is_float)
    ref = orm[..., slot]
    where = f"{name.kind} is also packed in {s.packed_in.name}"
    if plane.shape[:2] != ref.shape:
        h, w = plane.shape[:2]
        raise IgsError(f"{s.path}: {where}, at another size ({w}x{h}; ambiguous; remove one)")
    diff = float(np.abs(plane[..., 0] - ref).mean())
    if diff > _SAME_MAP_TOLERANCE:
        raise IgsError(
            f"{s.path}: {where} ({'RGB'[slot]}) and differs from it by {diff:.3f} on average (ambiguous; remove one)"
        )


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
        if m.transform not in TRANSFORMS:
            raise IgsError(f"{out_dir}: map {m.file}: unknown transform {m.transform!r}")
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
        # Back to the source's convention (DirectX green, glossiness): each transform is its
        # own inverse, and the recorded one is applied as is (False: no sign guess).
        values, _ = _apply_transform(values, m.transform, False)
        try:
            if out_fmt == "exr":
                _write_exr(target, values)
            else:
                _write_png(target, values, 16 if out_fmt == "png16" else 8)
        except Exception as e:  # OSError, or RuntimeError from OpenEXR
            raise IgsError(f"{target}: cannot write ({_reason(e, target)})") from None
        written.append(target)
    return written
