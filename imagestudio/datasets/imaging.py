"""Image validation and thumbnails with Pillow. No Django here: inputs are bytes, outputs plain values."""

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats we accept as originals: the ones browsers and Pillow both handle well. (Pillow opens
# multi-picture JPEGs through the JPEG plugin and reports them as MPO.)
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# EXIF orientations that swap width and height.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112


warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class InvalidImage(Exception):
    """The file is not an image we accept; the message is the reason shown to the user."""


@dataclass(frozen=True)
class ValidatedImage:
    """What to store: the first `bytes` bytes of the file (all of it unless data followed the image's end)."""

    sha256: str
    format: str
    mime: str
    width: int
    height: int
    bytes: int
    thumbnail_jpeg: bytes
    trailing_bytes: int = 0  # bytes after the end of the image, removed (not stored, not in sha256)

    @property
    def extension(self):
        return {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif"}.get(self.format, f".{self.format.lower()}")

    @property
    def trailing_note(self):
        if not self.trailing_bytes:
            return ""
        return (f"{self.trailing_bytes} bytes after the end of the {self.format} image were removed: data appended "
                f"to an image (a ZIP archive or a script in a polyglot file, say) is not stored")


# ---------------------------------------------------------------- where an image's own bytes end
#
# A file can be two formats at once: a PNG followed by a ZIP archive, a JPEG followed by HTML. Decoders stop at
# the image's end and ignore the rest, so the rest would be stored and served back untouched. These walkers find
# the end from the format's own structure (no decoding); None means the format has no end marker (TIFF places
# data anywhere by offset) or the structure could not be followed, and then the file is kept whole (it is still
# served only with its decoded image type and nosniff).


_NOT_FF = re.compile(rb"[^\xff]")
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # in entropy-coded data: not a stuffed 0, a restart or fill


def _png_end(data):
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        position += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return position if position <= len(data) else None
    return None


def _jpeg_end(data, start=0):
    """The offset after the EOI marker of the JPEG stream that starts (SOI) at `start`. Runs of bytes are
    skipped with find/regex searches, never byte by byte in Python (a hostile file can be megabytes of 0xFF)."""
    size = len(data)
    if data[start:start + 2] != b"\xff\xd8":
        return None
    position = start + 2
    while True:
        position = data.find(b"\xff", position)  # stray bytes between segments: decoders skip them too
        if position < 0:
            return None
        after_fill = _NOT_FF.search(data, position)  # fill bytes before the marker code
        if after_fill is None:
            return None
        marker, position = data[after_fill.start()], after_fill.start() + 1
        if marker == 0xD9:  # EOI
            return position
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # stuffed byte, TEM, RSTn, SOI: no length
            continue
        if position + 2 > size:
            return None
        length = int.from_bytes(data[position:position + 2], "big")
        if length < 2:
            return None
        position += length
        if marker != 0xDA:
            continue
        marker_after_scan = _MARKER.search(data, position)  # SOS: entropy-coded data up to the next marker
        if marker_after_scan is None:
            return None
        position = marker_after_scan.start()


def _mpf_offset(data):
    """Where the MP index's offsets count from: just after the 'MPF' signature of the first frame's APP2 segment."""
    position = 2
    while position + 8 <= len(data) and data[position] == 0xFF and data[position + 1] != 0xDA:
        if data[position + 1] == 0xE2 and data[position + 4:position + 8] == b"MPF\x00":
            return position + 8
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return None


def _mpo_end(data, image):
    """A multi-picture JPEG holds its frames one after another: the end of the last declared frame."""
    base = _mpf_offset(data)
    if base is None:
        return None
    try:
        starts = [0] + [base + int(entry["DataOffset"]) for entry in image.mpinfo[0xB002][1:]]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    ends = [_jpeg_end(data, start) for start in starts]
    return None if None in ends else max(ends)


def _gif_end(data):
    size = len(data)
    if size < 13:
        return None
    flags, position = data[10], 13
    if flags & 0x80:  # global colour table
        position += 3 << ((flags & 7) + 1)
    while position < size:
        block = data[position]
        if block == 0x3B:  # trailer
            return position + 1
        if block == 0x21:  # extension: introducer, label, sub-blocks
            position += 2
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if position + 10 > size:
                return None
            flags = data[position + 9]
            position += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
        else:
            return None
        while True:  # data sub-blocks up to the empty one
            if position >= size:
                return None
            length = data[position]
            position += 1 + length
            if length == 0:
                break
    return None


def _riff_end(data):
    if data[:4] != b"RIFF":
        return None
    declared = int.from_bytes(data[4:8], "little")
    end = 8 + declared + (declared & 1)
    return end if 12 <= end <= len(data) else None


def _bmp_end(data):
    declared, pixels_at = int.from_bytes(data[2:6], "little"), int.from_bytes(data[10:14], "little")
    return declared if 26 <= declared <= len(data) and pixels_at < declared else None  # 0 when a writer omits it


def image_end(data, image_format, image=None):
    """The offset where the image's own bytes end, or None when it cannot be told (see above)."""
    if image_format == "MPO" and image is not None:
        return _mpo_end(data, image)
    walker = {"PNG": _png_end, "JPEG": _jpeg_end, "MPO": _jpeg_end, "GIF": _gif_end, "WEBP": _riff_end,
              "BMP": _bmp_end}.get(image_format)
    return walker(data) if walker else None


def _to_rgb(image):
    """An 8-bit RGB view of any mode: alpha over white, CMYK and palettes converted, 16-bit scaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        image = Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = max(float(array.max() - array.min()), 1e-12)
        image = Image.fromarray(((array - array.min()) * (255.0 / span)).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


def _open(data):
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage(f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})") from None
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"decompression bomb refused: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"corrupt or truncated image header: {exc}") from None


def _without_trailing_bytes(data, image):
    """(data, image, trailing byte count): bytes after the end of the image (a polyglot's second format) cut off,
    and the image reopened on what is left."""
    end = image_end(data, image.format, image)
    if end is None or end >= len(data):
        return data, image, 0
    first_format, trailing, data = image.format, len(data) - end, data[:end]
    image.close()
    image = _open(data)
    if image.format != first_format:
        image.close()
        raise InvalidImage(f"the file changes format ({first_format} to {image.format}) once the "
                           f"{trailing} bytes after the end of its image are removed")
    return data, image, trailing


def _orientation(image):
    try:
        return image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block is not a reason to refuse the pixels
        return 1


def _thumbnail(image, orientation, thumbnail_size, trailing):
    """Decode the whole image (truncation shows here) and return its oriented RGB thumbnail."""
    try:
        # draft() lets JPEG decode at a reduced scale; the whole bitstream is still read,
        # so truncation is still detected by load().
        image.draft("RGB", (thumbnail_size * 2, thumbnail_size * 2))
        image.load()
        oriented = ImageOps.exif_transpose(image) if orientation != 1 else image
        thumb = _to_rgb(oriented)
        thumb.thumbnail((thumbnail_size, thumbnail_size))
        return thumb
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"decompression bomb refused: {exc}") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:
        after = f" (once the {trailing} bytes after the end of the image were removed)" if trailing else ""
        raise InvalidImage(f"corrupt or truncated image{after}: {exc}") from None


def validate_image(data, *, max_bytes, max_pixels, thumbnail_size):
    """Decode `data` fully, apply EXIF orientation and make a JPEG thumbnail; raise InvalidImage with a reason.

    Bytes after the end of the image (a polyglot's second format) are cut off first, and only the image is
    decoded, hashed and to be stored: `ValidatedImage.bytes` is how many leading bytes of `data` to keep."""
    if not data:
        raise InvalidImage("the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise InvalidImage(f"the file has {len(data)} bytes, more than the limit of {max_bytes}")
    # Our own pixel check below refuses bombs deterministically; Pillow's warning for images between
    # its limit and twice it is noise (and warnings filters are not thread-safe).
    data, image, trailing = _without_trailing_bytes(data, _open(data))
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage("the image has no pixels")
        if width * height > max_pixels:
            raise InvalidImage(
                f"the image has {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
            )
        image_format = image.format
        orientation = _orientation(image)
        thumb = _thumbnail(image, orientation, thumbnail_size, trailing)
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85, optimize=False)
    stored_format = "JPEG" if image_format == "MPO" else image_format
    return ValidatedImage(sha256=hashlib.sha256(data).hexdigest(), format=stored_format,
                          mime=mime_for_format(stored_format), width=width, height=height, bytes=len(data),
                          thumbnail_jpeg=out.getvalue(), trailing_bytes=trailing)


def mime_for_format(image_format):
    """The MIME type of a Pillow format. Pillow fills its table as plugins load, lazily: a process that has
    decoded no image yet (a web worker serving files) would find it empty without `Image.init()`."""
    Image.init()
    return Image.MIME.get(image_format, "application/octet-stream")
