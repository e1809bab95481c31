"""Writes the DICOM fixtures under tests/data/dicom/ with pydicom, an independent writer.

sula's tests read these files and compare the grey frames it decodes with the pattern
below, so the reader is checked against files it did not write. Run from the repository
root after `make torch`:

    .venv/bin/pip install pydicom pylibjpeg pylibjpeg-openjpeg imagecodecs pillow
    .venv/bin/python tests/data/dicom/make_fixtures.py [--phantom DIR]

`--phantom DIR` also writes `pullback/phantom.dcm` from the PNG frames of a sula phantom
(`sula phantom --count 24 --size 64 --seed 7 --out DIR`), for the round-trip test.

Every fixture carries a made-up patient name and ID, so the tests can check that sula
never prints them.
"""

import argparse
import io
import os
import shutil
import sys

import imagecodecs
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS, COLS, FRAMES = 40, 48, 3
PATIENT_NAME = "SECRET^PATIENT"
PATIENT_ID = "ID-SECRET-123"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_SINGLE = "1.2.840.10008.5.1.4.1.1.6.1"
MPEG2 = "1.2.840.10008.1.2.4.100"


def pattern(frame):
    """The grey pattern every fixture encodes: smooth, so lossy JPEG stays close."""
    y, x = np.mgrid[0:ROWS, 0:COLS]
    return (30 + 2 * x + 2 * y + 20 * frame).astype(np.uint8)


def rgb(frame):
    """A colour frame whose luma is the pattern (to within rounding) but whose channels differ."""
    g = pattern(frame).astype(np.int32)
    return np.stack([g + 10, g, g - 20], axis=-1).clip(0, 255).astype(np.uint8)


def ybr_full(rgb_frame):
    """RGB to YBR_FULL (PS3.3 C.7.6.3.1.2)."""
    r, g, b = [rgb_frame[..., i].astype(np.float64) for i in range(3)]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.stack([y, cb, cr], axis=-1).round().clip(0, 255).astype(np.uint8)


def base(sop_class=US_MULTIFRAME, frames=FRAMES, rows=ROWS, cols=COLS):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19000101"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "IVUS"
    ds.Rows = rows
    ds.Columns = cols
    if frames > 1 or sop_class == US_MULTIFRAME:
        ds.NumberOfFrames = frames
        ds.FrameTime = 33.3
    return ds


def grey_attrs(ds, bits=8, stored=None, photometric="MONOCHROME2"):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = stored or bits
    ds.HighBit = (stored or bits) - 1
    ds.PixelRepresentation = 0


def colour_attrs(ds, photometric, planar=0):
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0


def save(ds, name, syntax):
    ds.file_meta.TransferSyntaxUID = syntax
    path = os.path.join(HERE, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def grey_frames():
    return np.stack([pattern(f) for f in range(FRAMES)])


def native_grey(name, syntax):
    ds = base()
    grey_attrs(ds)
    ds.PixelData = grey_frames().tobytes()
    save(ds, name, syntax)


def native_16bit(name, syntax):
    ds = base()
    grey_attrs(ds, bits=16, stored=12)
    # OW words are stored in the syntax's byte order; pydicom writes the bytes as given.
    order = ">u2" if syntax == ExplicitVRBigEndian else "<u2"
    ds.PixelData = (grey_frames().astype(np.uint16) * 16).astype(order).tobytes()
    ds["PixelData"].VR = "OW"
    save(ds, name, syntax)


def monochrome1():
    ds = base()
    grey_attrs(ds, photometric="MONOCHROME1")
    ds.PixelData = (255 - grey_frames()).tobytes()
    save(ds, "mono1_explicit_le.dcm", ExplicitVRLittleEndian)


def colour_native():
    frames = np.stack([rgb(f) for f in range(FRAMES)])
    ds = base()
    colour_attrs(ds, "RGB")
    ds.PixelData = frames.tobytes()
    save(ds, "rgb_explicit_le.dcm", ExplicitVRLittleEndian)

    ds = base()
    colour_attrs(ds, "RGB", planar=1)
    ds.PixelData = np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).tobytes()
    save(ds, "rgb_planar_explicit_le.dcm", ExplicitVRLittleEndian)

    ybr = np.stack([ybr_full(f) for f in frames])
    ds = base()
    colour_attrs(ds, "YBR_FULL")
    ds.PixelData = ybr.tobytes()
    save(ds, "ybr_full_explicit_le.dcm", ExplicitVRLittleEndian)

    # YBR_FULL_422 native: per pair of pixels Y1 Y2 Cb Cr, chroma averaged (PS3.3 C.7.6.3.1.2).
    packed = []
    for f in ybr:
        y = f[..., 0].reshape(ROWS, COLS // 2, 2)
        cb = f[..., 1].reshape(ROWS, COLS // 2, 2).mean(axis=-1).round()
        cr = f[..., 2].reshape(ROWS, COLS // 2, 2).mean(axis=-1).round()
        quad = np.stack([y[..., 0], y[..., 1], cb, cr], axis=-1).astype(np.uint8)
        packed.append(quad.tobytes())
    ds = base()
    colour_attrs(ds, "YBR_FULL_422")
    ds.PixelData = b"".join(packed)
    save(ds, "ybr_full_422_explicit_le.dcm", ExplicitVRLittleEndian)


def palette():
    """Indices i map to the colour (i, i, i) shifted per channel: luma ≈ the index."""
    ds = base()
    grey_attrs(ds, photometric="PALETTE COLOR")
    ds.PixelData = grey_frames().tobytes()
    index = np.arange(256, dtype=np.int32)
    channels = [(index + 10).clip(0, 255), index, (index - 20).clip(0, 255)]
    for tag, values in zip(("Red", "Green", "Blue"), channels):
        setattr(ds, f"{tag}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{tag}PaletteColorLookupTableData", (values * 257).astype("<u2").tobytes())
    save(ds, "palette_explicit_le.dcm", ExplicitVRLittleEndian)


def palette_segmented():
    """The palette of `palette()` as segmented 16-bit tables (PS3.3 C.7.9.2): discrete,
    linear and indirect segments, checked against pydicom's own expansion."""
    ds = base()
    grey_attrs(ds, photometric="PALETTE COLOR")
    ds.PixelData = grey_frames().tobytes()
    index = np.arange(256, dtype=np.int64)
    expected = {
        "Red": (index + 10).clip(0, 255) * 257,
        "Green": index * 257,
        "Blue": (index - 20).clip(0, 255) * 257,
    }
    segments = {
        # 2570, then +257 a step up to 65535 at index 245, flat for five, and five more by
        # an indirect copy of the segment at word 6.
        "Red": [0, 1, 2570, 1, 245, 65535, 1, 5, 65535, 2, 1, 6, 0],
        "Green": [0, 1, 0, 1, 255, 65535],
        "Blue": [0, 1, 0, 1, 20, 0, 1, 235, 60395],
    }
    for tag, words in segments.items():
        setattr(ds, f"{tag}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(
            ds,
            f"Segmented{tag}PaletteColorLookupTableData",
            np.array(words, dtype="<u2").tobytes(),
        )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    lut = apply_color_lut(np.arange(256, dtype=np.uint8), ds)
    for k, tag in enumerate(("Red", "Green", "Blue")):
        assert (lut[:, k] == expected[tag]).all(), tag
    save(ds, "palette_segmented_explicit_le.dcm", ExplicitVRLittleEndian)


def palette_16bit():
    """16-bit indices into 65,536-entry tables of 16-bit entries (descriptor [0, 0, 16]):
    index 256·v + 128 maps to the colour of `palette()` for v, so the luma is the pattern."""
    ds = base()
    grey_attrs(ds, bits=16, photometric="PALETTE COLOR")
    ds.PixelData = (grey_frames().astype(np.uint16) * 256 + 128).astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    value = np.arange(65536, dtype=np.int64) >> 8
    channels = [(value + 10).clip(0, 255), value, (value - 20).clip(0, 255)]
    for tag, values in zip(("Red", "Green", "Blue"), channels):
        setattr(ds, f"{tag}PaletteColorLookupTableDescriptor", [0, 0, 16])
        setattr(ds, f"{tag}PaletteColorLookupTableData", (values * 257).astype("<u2").tobytes())
    save(ds, "palette_16bit_explicit_le.dcm", ExplicitVRLittleEndian)


def rle():
    ds = base()
    grey_attrs(ds)
    ds.PixelData = grey_frames().tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    save(ds, "mono2_rle.dcm", RLELossless)

    ds = base()
    colour_attrs(ds, "RGB")
    ds.PixelData = np.stack([rgb(f) for f in range(FRAMES)]).tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    save(ds, "rgb_rle.dcm", RLELossless)


def jpeg_baseline():
    ds = base()
    grey_attrs(ds)
    frames = []
    for f in range(FRAMES):
        out = io.BytesIO()
        Image.fromarray(pattern(f), mode="L").save(out, format="JPEG", quality=95)
        frames.append(out.getvalue())
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    save(ds, "mono2_jpeg_baseline.dcm", JPEGBaseline8Bit)

    ds = base()
    colour_attrs(ds, "YBR_FULL_422")
    frames = []
    for f in range(FRAMES):
        out = io.BytesIO()
        Image.fromarray(rgb(f), mode="RGB").save(out, format="JPEG", quality=95, subsampling=1)
        frames.append(out.getvalue())
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    save(ds, "ybr_full_422_jpeg_baseline.dcm", JPEGBaseline8Bit)


def jpeg_lossless():
    ds = base()
    grey_attrs(ds)
    frames = [imagecodecs.ljpeg_encode(pattern(f)) for f in range(FRAMES)]
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    save(ds, "mono2_jpeg_lossless.dcm", JPEGLosslessSV1)

    ds = base()
    grey_attrs(ds, bits=16, stored=12)
    frames = [
        imagecodecs.ljpeg_encode(pattern(f).astype(np.uint16) * 16, bitspersample=12)
        for f in range(FRAMES)
    ]
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    save(ds, "mono2_16bit_jpeg_lossless.dcm", JPEGLosslessSV1)


def jpeg2000():
    ds = base()
    grey_attrs(ds)
    ds.PixelData = grey_frames().tobytes()
    ds.compress(JPEG2000Lossless)
    save(ds, "mono2_j2k.dcm", JPEG2000Lossless)

    ds = base()
    colour_attrs(ds, "RGB")
    ds.PixelData = np.stack([rgb(f) for f in range(FRAMES)]).tobytes()
    ds.compress(JPEG2000Lossless)
    save(ds, "rgb_j2k.dcm", JPEG2000Lossless)


def spacing():
    """Spacing from the ultrasound regions (0.002 cm = 0.02 mm), and from Pixel Spacing."""
    ds = base()
    grey_attrs(ds)
    ds.PixelData = grey_frames().tobytes()
    text = Dataset()
    text.RegionSpatialFormat = 0
    text.RegionDataType = 0
    text.RegionFlags = 0
    text.RegionLocationMinX0 = 0
    text.RegionLocationMinY0 = 0
    text.RegionLocationMaxX1 = COLS - 1
    text.RegionLocationMaxY1 = 3
    text.PhysicalUnitsXDirection = 0
    text.PhysicalUnitsYDirection = 0
    text.PhysicalDeltaX = 1.0
    text.PhysicalDeltaY = 1.0
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 8
    region.RegionLocationMinY0 = 4
    region.RegionLocationMaxX1 = 39
    region.RegionLocationMaxY1 = 35
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.002
    region.PhysicalDeltaY = 0.002
    ds.SequenceOfUltrasoundRegions = Sequence([text, region])
    save(ds, "regions_explicit_le.dcm", ExplicitVRLittleEndian)

    ds = base()
    grey_attrs(ds)
    ds.PixelData = grey_frames().tobytes()
    ds.PixelSpacing = [0.05, 0.05]
    save(ds, "pixel_spacing_explicit_le.dcm", ExplicitVRLittleEndian)


def single_frame_folder(folder, instance_numbers):
    """Single-frame files whose names sort against their Instance Numbers."""
    series = generate_uid()
    for n, instance in enumerate(instance_numbers):
        ds = base(sop_class=US_SINGLE, frames=1)
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = instance
        grey_attrs(ds)
        ds.PixelData = pattern(instance - 1).tobytes()
        save(ds, os.path.join(folder, f"IMG{n:03d}.dcm"), ExplicitVRLittleEndian)


def bad_files():
    ds = base()
    grey_attrs(ds)
    ds.PixelData = b"\x00" * 64
    ds["PixelData"].VR = "OB"
    ds.PixelData = encapsulate([b"\x00" * 64] * FRAMES)
    save(ds, "bad/mpeg2.dcm", MPEG2)

    with open(os.path.join(HERE, "mono2_explicit_le.dcm"), "rb") as f:
        whole = f.read()
    with open(os.path.join(HERE, "bad/truncated.dcm"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    with open(os.path.join(HERE, "bad/corrupted.dcm"), "wb") as f:
        f.write(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)


def damaged_rle():
    """The RLE pullback with the last 200 bytes of frame 1's segment zeroed, as a damaged disk
    leaves them, which makes the segment decode short of a frame; and the pullback cut
    half-way through frame 1."""
    with open(os.path.join(HERE, "mono2_rle.dcm"), "rb") as f:
        whole = f.read()
    fragments = rle_fragment_offsets(whole)
    start, length = fragments[1]
    damaged = bytearray(whole)
    damaged[start + length - 200 : start + length] = bytes(200)
    assert packbits_length(damaged[start + 64 : start + length]) < ROWS * COLS
    with open(os.path.join(HERE, "bad/rle_damaged.dcm"), "wb") as f:
        f.write(damaged)
    with open(os.path.join(HERE, "bad/rle_cut.dcm"), "wb") as f:
        f.write(whole[: start + length // 2])


def packbits_length(segment):
    """Bytes an RLE segment decodes to (PS3.5 G.3.1)."""
    out, at = 0, 0
    while at < len(segment):
        header = segment[at]
        at += 1
        if header < 128:
            out += header + 1
            at += header + 1
        elif header > 128:
            out += 257 - header
            at += 1
    return out


def rle_fragment_offsets(data):
    """(start, length) in the file of each fragment of a file's encapsulated pixel data."""
    ds = pydicom.dcmread(io.BytesIO(data))
    # The items follow the 12-byte header of Pixel Data (explicit VR little endian, OB).
    pixel_start = data.index(b"\xe0\x7f\x10\x00OB") + 12
    out = []
    at = pixel_start
    while True:
        tag = data[at : at + 4]
        length = int.from_bytes(data[at + 4 : at + 8], "little")
        if tag != b"\xfe\xff\x00\xe0":
            break
        if at != pixel_start:
            out.append((at + 8, length))
        at += 8 + length
    assert len(out) == int(ds.NumberOfFrames)
    return out


def phantom_pullback(folder):
    names = sorted(n for n in os.listdir(os.path.join(folder, "images")) if n.endswith(".png"))
    frames = np.stack([np.asarray(Image.open(os.path.join(folder, "images", n)).convert("L")) for n in names])
    ds = base(frames=len(frames), rows=frames.shape[1], cols=frames.shape[2])
    grey_attrs(ds)
    ds.PixelData = frames.tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    save(ds, "pullback/phantom.dcm", RLELossless)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--phantom", help="sula phantom folder to write as pullback/phantom.dcm")
    args = parser.parse_args()
    for sub in ("single", "pullbacks", "bad"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
    native_grey("mono2_implicit_le.dcm", ImplicitVRLittleEndian)
    native_grey("mono2_explicit_le.dcm", ExplicitVRLittleEndian)
    native_16bit("mono2_16bit_explicit_le.dcm", ExplicitVRLittleEndian)
    native_16bit("mono2_16bit_explicit_be.dcm", ExplicitVRBigEndian)
    monochrome1()
    colour_native()
    palette()
    palette_segmented()
    palette_16bit()
    rle()
    jpeg_baseline()
    jpeg_lossless()
    jpeg2000()
    spacing()
    single_frame_folder("single", [3, 1, 2])
    single_frame_folder("pullbacks/a", [1, 2])
    single_frame_folder("pullbacks/b", [2, 1, 3])
    bad_files()
    damaged_rle()
    if args.phantom:
        phantom_pullback(args.phantom)
    print(f"pydicom {pydicom.__version__}: fixtures written to {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
