"""Synthetic INbreast-like release: 16-bit DICOM mammograms, OsiriX XML ROIs, INbreast.csv.

Images are grouped by patient (4 views: L/R x CC/MLO, the last patient possibly partial);
each patient has one of the image sizes (rows x cols; real data: 4084x3328 and 3328x2560).
An image is a breast silhouette (half ellipse against the chest wall, pectoral muscle on
MLO views, smooth fibroglandular texture) on a black background, MONOCHROME2, uint16,
BitsStored 14 (or 16 on every third image). Categories, cycling through the images:
  * mass: 1-2 brighter masses, XML with a polygon ROI "Mass" (every other mass
    "Spiculated Region", drawn with spikes), plus calcification ROIs;
  * calcification only: XML with "Calcification" ROIs (1-point ROIs and tiny 4-6-point
    polygons) that the builder must ignore, bright specks in the image;
  * no XML at all.
Every fourth image is RLE Lossless compressed. INbreast.csv has a row per image
(semicolon separated, padded blanks, Bi-Rads like "4a" for mass images).
"""

from __future__ import annotations

import os
import plistlib
import sys
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

FULL_SIZES = ((4084, 3328), (3328, 2560))  # (rows, cols)
CSV_HEADER = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"
VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))
CATEGORIES = ("mass", "calcification", "mass", "none")


def _smooth(rng, rows, cols, cell):
    low = rng.standard_normal((max(2, rows // cell + 2), max(2, cols // cell + 2))).astype(
        np.float32
    )
    img = Image.fromarray(low, mode="F").resize((cols, rows), Image.BILINEAR)
    return np.asarray(img, np.float32)


def _polygon(rng, cx, cy, r, spiculated: bool) -> np.ndarray:
    n = int(rng.integers(24, 41))
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = r * (
        1 + 0.15 * np.sin(3 * t + rng.uniform(0, 6.3)) + 0.08 * np.sin(5 * t + rng.uniform(0, 6.3))
    )
    if spiculated:
        rad = rad * np.where(np.arange(n) % 4 == 0, 1.45, 1.0)
    return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1)


def _breast(rows, cols, lat, view):
    """Bool breast mask and the column of the chest wall."""
    r = np.arange(rows, dtype=np.float32)[:, None]
    c = np.arange(cols, dtype=np.float32)[None, :]
    wall_dist = c if lat == "R" else (cols - 1 - c)
    m = (wall_dist / (0.78 * cols)) ** 2 + ((r - rows * 0.5) / (0.46 * rows)) ** 2 <= 1.0
    pect = None
    if view == "MLO":
        pect = (wall_dist / (0.30 * cols) + r / (0.40 * rows)) <= 1.0
    return m, pect, wall_dist


def _roi_dict(name, pts, index):
    cx, cy = pts.mean(axis=0)
    return {
        "Area": float(len(pts)),
        "Center": f"({cx:.6f}, {cy:.6f}, 0.000000)",
        "Dev": 0.0,
        "IndexInImage": index,
        "Max": 0.0,
        "Mean": 0.0,
        "Min": 0.0,
        "Name": name,
        "NumberOfPoints": len(pts),
        "Point_mm": [f"({x * 0.07:.6f}, {y * 0.07:.6f}, 0.000000)" for x, y in pts],
        "Point_px": [f"({x:.6f}, {y:.6f})" for x, y in pts],
        "Total": 0.0,
        "Type": 15 if len(pts) > 1 else 19,
    }


def make_image(rng, rows, cols, lat, view, category):
    """Returns (uint16 image, list of ROI dicts, bits_stored)."""
    breast, pect, wall = _breast(rows, cols, lat, view)
    tex = _smooth(rng, rows, cols, max(4, rows // 40))
    fall = np.clip(1.0 - (wall / (0.78 * cols)) ** 4, 0.3, 1.0)
    x = np.where(breast, (0.38 + 0.07 * tex) * fall, 0.0).astype(np.float32)
    if pect is not None:
        x[pect & breast] = 0.62
    rois = []
    masses = []
    if category == "mass":
        for k in range(int(rng.integers(1, 3))):
            r = rng.uniform(0.012, 0.045) * rows
            for _ in range(100):  # centre well inside the breast
                cy = rng.uniform(0.30, 0.70) * rows
                cx = rng.uniform(0.20, 0.50) * cols
                cx = cx if lat == "R" else cols - 1 - cx
                if breast[int(cy), int(cx)]:
                    break
            spic = k % 2 == 1
            pts = _polygon(rng, cx, cy, r, spic)
            masses.append(pts)
            rois.append(_roi_dict("Spiculated Region" if spic else "Mass", pts, len(rois)))
    if category in ("mass", "calcification"):
        for _ in range(int(rng.integers(2, 5))):
            cy, cx = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.15, 0.5) * cols
            cx = cx if lat == "R" else cols - 1 - cx
            if rng.random() < 0.5:
                pts = np.array([[cx, cy]])
            else:
                pts = _polygon(rng, cx, cy, 3.0, False)[:: int(rng.integers(6, 9))][:6]
            rois.append(_roi_dict("Calcification", pts, len(rois)))
            x[int(cy) - 1 : int(cy) + 2, int(cx) - 1 : int(cx) + 2] = 0.9
    for pts in masses:  # lesions: brighter, soft edge, drawn locally
        c0 = max(int(pts[:, 0].min()) - 8, 0)
        r0 = max(int(pts[:, 1].min()) - 8, 0)
        c1 = min(int(pts[:, 0].max()) + 9, cols)
        r1 = min(int(pts[:, 1].max()) + 9, rows)
        m = Image.new("F", (c1 - c0, r1 - r0), 0.0)
        ImageDraw.Draw(m).polygon([(px - c0, py - r0) for px, py in pts], fill=1.0)
        m = ndimage.gaussian_filter(np.asarray(m, np.float32), 1.5)
        x[r0:r1, c0:c1] += 0.30 * m
    bits = 16 if rng.random() < 1 / 3 else 14
    peak = (2**bits - 1) * rng.uniform(0.75, 0.95)
    img = np.clip(np.round(x / max(x.max(), 1e-6) * peak), 0, 2**bits - 1).astype(np.uint16)
    return img, rois, bits


def write_dicom(path, img, patient, lat, view, bits, rle: bool, seed: int):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalMammographyXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        RLELossless,
        generate_uid,
        PYDICOM_IMPLEMENTATION_UID,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(seed), "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(seed), "series"])
    ds.PatientID = patient
    ds.PatientName = "ANON"
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = lat
    ds.Laterality = lat
    ds.ViewPosition = view
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.07, 0.07]
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    ds.PixelData = img.tobytes()
    if rle:
        ds.compress(RLELossless, img, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def write_inbreast(
    out_dir: str | os.PathLike,
    images: int = 30,
    sizes: Sequence[Sequence[int]] = FULL_SIZES,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """Writes AllDICOMs/, AllXML/ and INbreast.csv for ``images`` synthetic mammograms.

    ``sizes``: (rows, cols) pairs, cycled per patient. Returns one dict per image:
    file_id, patient, laterality, view, category, rows, cols, dcm, xml (or None),
    masses (list of (n, 2) polygons, x = column), birads, rle, bits_stored.
    """
    out_dir = os.fspath(out_dir)
    dcm_dir, xml_dir = os.path.join(out_dir, "AllDICOMs"), os.path.join(out_dir, "AllXML")
    os.makedirs(dcm_dir, exist_ok=True)
    os.makedirs(xml_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [tuple(int(v) for v in s) for s in sizes]
    csv_rows = [CSV_HEADER]
    written = []
    patient = None
    for i in range(images):
        if i % 4 == 0:
            patient = "".join(rng.choice(list("0123456789abcdef"), 16))
            rows, cols = sizes[(i // 4) % len(sizes)]
        lat, view = VIEWS[i % 4]
        category = CATEGORIES[(i + i // 4) % len(CATEGORIES)]
        file_id = str(20586908 + 1000 * i + int(rng.integers(0, 1000)))
        img, rois, bits = make_image(
            np.random.default_rng(rng.integers(2**32)), rows, cols, lat, view, category
        )
        name = f"{file_id}_{patient}_MG_{lat}_{'ML' if view == 'MLO' else 'CC'}_ANON.dcm"
        dcm = os.path.join(dcm_dir, name)
        rle = i % 4 == 1
        write_dicom(dcm, img, patient, lat, view, bits, rle, seed * 100003 + i)
        xml = None
        if category != "none":
            xml = os.path.join(xml_dir, f"{file_id}.xml")
            with open(xml, "wb") as f:
                plistlib.dump(
                    {
                        "Images": [
                            {
                                "ImageHeight": rows,
                                "ImageWidth": cols,
                                "ImageIndex": 0,
                                "NumberOfROIs": len(rois),
                                "ROIs": rois,
                            }
                        ]
                    },
                    f,
                )
        masses = [
            np.array([[float(v) for v in p.strip("()").split(",")] for p in r["Point_px"]])
            for r in rois
            if r["Name"] != "Calcification"
        ]
        birads = ["4a", "4b", "4c", "5", "3"][i % 5] if masses else ["1", "2"][i % 2]
        csv_rows.append(
            f"removed;removed;{lat};{view};2008{(i % 12) + 1:02d};{file_id};"
            f"{1 + i % 4};{birads}{' ' if i % 3 == 0 else ''}"
        )
        written.append(
            dict(
                file_id=file_id,
                patient=patient,
                laterality=lat,
                view=view,
                category=category,
                rows=rows,
                cols=cols,
                dcm=dcm,
                xml=xml,
                masses=masses,
                birads=birads,
                rle=rle,
                bits_stored=bits,
            )
        )
        if progress:
            print(
                f"[phantom inbreast] {i + 1}/{images} {name} ({category}{', RLE' if rle else ''})",
                file=sys.stderr,
                flush=True,
            )
    with open(os.path.join(out_dir, "INbreast.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(csv_rows) + "\n")
    return written
