"""Writes a long synthetic DICOM pullback for sula's memory benchmark (docs/BENCHMARKS.md).

    .venv/bin/python bench/make_pullback.py --frames 3000 --size 512 --out /tmp/pullback.dcm [--jpeg]

Each frame is speckle inside an imaging circle, with static text-like bars around it as a
scanner draws them; `--jpeg` stores the frames JPEG baseline compressed (as many scanners
export), otherwise uncompressed.
"""

import argparse
import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid


def frame(rng, size, k):
    y, x = np.mgrid[0:size, 0:size]
    r = np.hypot(x - size / 2, y - size / 2)
    speckle = rng.rayleigh(40.0, (size, size))
    ring = 120 * np.exp(-((r - size * (0.25 + 0.02 * np.sin(k / 50))) ** 2) / (2 * (size / 40) ** 2))
    img = np.where(r < size * 0.45, speckle + ring, 0)
    img[: size // 32, :] = 200  # static header bar
    img[-size // 32 :, : size // 4] = 180  # scale bar
    return img.clip(0, 255).astype(np.uint8)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--out", required=True)
    p.add_argument("--jpeg", action="store_true")
    a = p.parse_args()
    rng = np.random.default_rng(1)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "IVUS"
    ds.Rows = ds.Columns = a.size
    ds.NumberOfFrames = a.frames
    ds.FrameTime = 33.3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if a.jpeg:
        parts = []
        for k in range(a.frames):
            out = io.BytesIO()
            Image.fromarray(frame(rng, a.size, k)).save(out, format="JPEG", quality=90)
            parts.append(out.getvalue())
        ds.PixelData = encapsulate(parts)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    else:
        ds.PixelData = b"".join(frame(rng, a.size, k).tobytes() for k in range(a.frames))
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(a.out, enforce_file_format=True)


if __name__ == "__main__":
    main()
