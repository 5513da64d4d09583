"""Image validation and thumbnails with Pillow. No Django here: inputs are bytes, outputs plain values."""

import hashlib
import io
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
    sha256: str
    format: str
    mime: str
    width: int
    height: int
    bytes: int
    thumbnail_jpeg: bytes

    @property
    def extension(self):
        return {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif"}.get(self.format, f".{self.format.lower()}")


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


def validate_image(data, *, max_bytes, max_pixels, thumbnail_size):
    """Decode `data` fully, apply EXIF orientation and make a JPEG thumbnail; raise InvalidImage with a reason."""
    if not data:
        raise InvalidImage("the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise InvalidImage(f"the file has {len(data)} bytes, more than the limit of {max_bytes}")
    # Our own pixel check below refuses bombs deterministically; Pillow's warning for images between
    # its limit and twice it is noise (and warnings filters are not thread-safe).
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage(f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})") from None
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"decompression bomb refused: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"corrupt or truncated image header: {exc}") from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage("the image has no pixels")
        if width * height > max_pixels:
            raise InvalidImage(
                f"the image has {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
            )
        image_format = image.format
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        except Exception:  # a broken EXIF block is not a reason to refuse the pixels
            orientation = 1
        try:
            # draft() lets JPEG decode at a reduced scale; the whole bitstream is still read,
            # so truncation is still detected by load().
            image.draft("RGB", (thumbnail_size * 2, thumbnail_size * 2))
            image.load()
            oriented = ImageOps.exif_transpose(image) if orientation != 1 else image
            thumb = _to_rgb(oriented)
            thumb.thumbnail((thumbnail_size, thumbnail_size))
        except Image.DecompressionBombError as exc:
            raise InvalidImage(f"decompression bomb refused: {exc}") from None
        except (OSError, ValueError, SyntaxError, MemoryError) as exc:
            raise InvalidImage(f"corrupt or truncated image: {exc}") from None
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85, optimize=False)
    return ValidatedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        format="JPEG" if image_format == "MPO" else image_format,
        mime=Image.MIME.get(image_format, "application/octet-stream") if image_format != "MPO" else "image/jpeg",
        width=width,
        height=height,
        bytes=len(data),
        thumbnail_jpeg=out.getvalue(),
    )


def mime_for_format(image_format):
    return Image.MIME.get(image_format, "application/octet-stream")
