"""How a game ships a material stack as block-compressed textures, and back.

- base colour: one sRGB texture (BC1, BC7 or ASTC RGB);
- normal: BC5 with X, Y only, or ASTC normal mode (X in RGB, Y in A); Z is rebuilt at
  decode as sqrt(1 - x^2 - y^2) in [-1, 1] units, as shaders do. BC1/BC7 storing XYZ as
  RGB is available for comparison only;
- occlusion / roughness / metalness: packed into one RGB texture (R = AO, G = roughness,
  B = metalness, the glTF ORM order) in BC1, BC7 or ASTC, or one BC4 texture per map.

Only groups present in the stack get a texture; a packed ORM slot with no map is filled
with a constant, which the encoders represent at almost no cost to the other slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igs_tex import IgsError
from igs_tex.codecs import decode, encode
from igs_tex.codecs.formats import ASTC_BLOCKS, Encoded, get_format, to_u8
from igs_tex.material import GROUPS, MaterialStack

ORM_ORDER = ("ao", "roughness", "metalness")
_BASE_FORMATS = ("bc1", "bc7")
_NORMAL_FORMATS = ("bc5", "bc1", "bc7")
_ORM_FORMATS = ("bc1", "bc7", "bc4")


@dataclass(frozen=True)
class Scheme:
    """Which block format each group is shipped in."""

    name: str
    basecolor: str
    normal: str
    orm: str

    @property
    def block(self) -> str:
        """Block size of the base colour texture, e.g. '4x4' (the one the scheme is known by)."""
        info = get_format(self.basecolor)
        return f"{info.block_w}x{info.block_h}"


def _astc_scheme(bw: int, bh: int) -> Scheme:
    name = f"astc{bw}x{bh}"
    return Scheme(name, name, name, name)


# The rate-distortion sweep's codecs. BC5 is the only sensible BCn normal format, so the BC
# schemes differ in colour and ORM only; ASTC uses one block size for every texture.
SCHEMES: dict[str, Scheme] = {
    "bc1": Scheme("bc1", "bc1", "bc5", "bc1"),
    "bc1-bc4": Scheme("bc1-bc4", "bc1", "bc5", "bc4"),
    "bc7": Scheme("bc7", "bc7", "bc5", "bc7"),
    "bc7-bc4": Scheme("bc7-bc4", "bc7", "bc5", "bc4"),
    **{f"astc{w}x{h}": _astc_scheme(w, h) for w, h in [(4, 4), (5, 5), (6, 6), (8, 8), (10, 10), (12, 12)]},
}


def get_scheme(name: str) -> Scheme:
    """A named scheme; any 'astcWxH' LDR block size is accepted besides the ones listed."""
    if name in SCHEMES:
        return SCHEMES[name]
    if name.startswith("astc"):
        try:
            bw, bh = (int(v) for v in name[4:].split("x"))
        except ValueError:
            bw = bh = 0
        if (bw, bh) in ASTC_BLOCKS:
            return _astc_scheme(bw, bh)
    raise IgsError(f"unknown codec scheme {name!r} (known: {', '.join(SCHEMES)}, or astcWxH)")


@dataclass(frozen=True)
class PackedTexture:
    role: str  # 'basecolor', 'normal', 'orm', 'ao', 'roughness' or 'metalness'
    encoded: Encoded
    # (texture channel, stack channel) pairs the decoded texels are written to.
    slots: tuple[tuple[int, int], ...]
    # Normal only: stack channel that receives the rebuilt Z, or -1.
    rebuild_z: int = -1


@dataclass(frozen=True)
class PackedMaterial:
    scheme: Scheme
    width: int
    height: int
    channels: tuple[str, ...]
    textures: tuple[PackedTexture, ...]

    @property
    def stored_bits(self) -> int:
        """Bits of every texture as stored, partial blocks at the edges included."""
        return sum(t.encoded.bits for t in self.textures)

    @property
    def bits_per_texel(self) -> float:
        """Sum over the textures of the formats' nominal bits per texel."""
        return sum(t.encoded.info.bits_per_texel for t in self.textures)


def _is_srgb(stack: MaterialStack) -> bool:
    for m in stack.maps:
        if m.kind == "basecolor":
            return m.colour_space == "srgb"
    return True  # a stack built in memory: base colour data is sRGB-encoded by convention


def _check_choice(fmt: str, allowed: tuple[str, ...], group: str) -> None:
    if not (fmt in allowed or get_format(fmt).is_astc):
        raise IgsError(f"{group} cannot be packed as {fmt} (expected {', '.join(allowed)} or astcWxH)")


def pack_material(stack: MaterialStack, scheme: Scheme | str) -> PackedMaterial:
    """Encode a stack's groups as a game would ship them (one mip level, the stack's size)."""
    if isinstance(scheme, str):
        scheme = get_scheme(scheme)
    _check_choice(scheme.basecolor, _BASE_FORMATS, "base colour")
    _check_choice(scheme.normal, _NORMAL_FORMATS, "normal map")
    _check_choice(scheme.orm, _ORM_FORMATS, "occlusion/roughness/metalness")
    data, names = stack.data, list(stack.channels)
    h, w = data.shape[:2]
    index = {n: i for i, n in enumerate(names)}
    textures: list[PackedTexture] = []

    base = [index[n] for n in GROUPS["basecolor"] if n in index]
    if base:
        if len(base) != 3:
            raise IgsError(f"{stack.name}: base colour has {len(base)} channels, packing needs 3")
        enc = encode(scheme.basecolor, data[..., base], srgb=_is_srgb(stack))
        textures.append(PackedTexture("basecolor", enc, tuple(enumerate(base))))

    normal = {n: index[n] for n in GROUPS["normal"] if n in index}
    if normal:
        nx, ny, nz = (normal.get(f"normal.{a}", -1) for a in "xyz")
        if nx < 0 or ny < 0:
            raise IgsError(f"{stack.name}: normal map needs X and Y channels, has {sorted(normal)}")
        fmt = scheme.normal
        if fmt == "bc5" or get_format(fmt).is_astc:
            enc = encode(fmt, data[..., [nx, ny]], normal=get_format(fmt).is_astc)
            textures.append(PackedTexture("normal", enc, ((0, nx), (1, ny)), rebuild_z=nz))
        else:
            if nz < 0:
                raise IgsError(f"{stack.name}: storing normals as {fmt} RGB needs a Z channel")
            enc = encode(fmt, data[..., [nx, ny, nz]])
            textures.append(PackedTexture("normal", enc, ((0, nx), (1, ny), (2, nz))))

    orm = [(k, index[k]) for k in ORM_ORDER if k in index]
    if orm:
        if scheme.orm == "bc4":
            for kind, ci in orm:
                textures.append(PackedTexture(kind, encode("bc4", data[..., [ci]]), ((0, ci),)))
        else:
            rgb = np.zeros((h, w, 3), dtype=np.uint8)
            slots = []
            for kind, ci in orm:
                slot = ORM_ORDER.index(kind)
                rgb[..., slot] = to_u8(data[..., ci])
                slots.append((slot, ci))
            textures.append(PackedTexture("orm", encode(scheme.orm, rgb), tuple(slots)))

    return PackedMaterial(scheme, w, h, tuple(names), tuple(textures))


def _rebuild_z(xy_u8: np.ndarray) -> np.ndarray:
    """[H, W, 2] 8-bit X, Y codes -> Z in [0, 1] storage units."""
    xy = xy_u8.astype(np.float32) / 255.0 * 2.0 - 1.0
    z = np.sqrt(np.maximum(0.0, 1.0 - xy[..., 0] ** 2 - xy[..., 1] ** 2))
    return (z + 1.0) * 0.5


def unpack_material(packed: PackedMaterial) -> np.ndarray:
    """Decode every texture back into a float32 [H, W, C] stack in the packed channel order.

    Channels no texture covers stay 0 (there are none for stacks from ``pack_material``).
    """
    out = np.zeros((packed.height, packed.width, len(packed.channels)), dtype=np.float32)
    for t in packed.textures:
        texels = decode(t.encoded)
        for tc, sc in t.slots:
            out[..., sc] = texels[..., tc].astype(np.float32) / 255.0
        if t.rebuild_z >= 0:
            out[..., t.rebuild_z] = _rebuild_z(texels[..., :2])
    return out


def write_ktx2_files(packed: PackedMaterial, out_dir) -> list[Path]:
    """One ``<role>.ktx2`` per texture (single level), as a game's asset folder would hold them."""
    from igs_tex.codecs.ktx2 import Ktx2Texture, write_ktx2

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IgsError(f"{out_dir}: cannot create folder ({e.strerror or e})") from None
    written = []
    for t in packed.textures:
        kv = {"igs.channels": ",".join(packed.channels[sc] for _, sc in t.slots)}
        if t.rebuild_z >= 0:
            kv["igs.normal"] = "xy, z = sqrt(1 - x^2 - y^2)"
        written.append(write_ktx2(out_dir / f"{t.role}.ktx2", Ktx2Texture.from_encoded([t.encoded], kv)))
    return written
