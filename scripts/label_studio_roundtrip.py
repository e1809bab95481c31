#!/usr/bin/env python3
"""A real round trip of a sula batch through Label Studio, run locally.

1. sula writes a seeded phantom pool, a project on it and a random round-0 batch of 4.
2. Label Studio (pinned below, in its own virtualenv .venv-ls) starts on localhost with a
   fresh data folder, local-files serving rooted at the batch folder and a legacy API token.
3. Through the HTTP API: a project with the batch's label-studio/config.xml, a Local
   Storage connection on the batch's images/ (Label Studio serves /data/local-files/ only
   under a storage connection of a project the user may see; it is never synced), and the
   batch's label-studio/tasks.json imported.
4. Each task is annotated through the API as an annotator would from the frame's truth
   label map (the pool's masks/<stem>.png): vessel (mask != 0, filled) and lumen
   (mask == 1) as PolygonLabels, points in percent of the image; lipid (3) and calcium (4)
   as BrushLabels in Label Studio's RLE (label_studio_sdk.converter.brush.mask2rle).
5. Exports JSON, COCO and BRUSH_TO_COCO through the API and checks them against the truth
   (brush RLE must decode exactly; polygons, sampled at pixel centres, must give the
   regions back). Puts the JSON and the COCO export each into its own copy of the batch
   (masks/label-studio.json, masks/coco.json), runs `sula import` on each with its own
   copy of the project, and compares the label maps sula made with the truth (the COCO
   export has no brush regions: lipid and calcium come back as fibrous wall).
6. Optionally (--write-fixtures DIR) writes the exports unmodified, a pycocotools RLE COCO
   file of the same frames, the truth maps and a README into DIR.

Label Studio is stopped at the end, also on failure. Exits non-zero on any failure.
Usage: scripts/label_studio_roundtrip.py [--sula ./target/release/sula] [--work DIR]
       [--port 8093] [--write-fixtures tests/fixtures/annotations] [--no-import]
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv-ls")
VENV_PY = os.path.join(VENV, "bin", "python")
# What the venv gets: label-studio brings label-studio-sdk (the brush RLE converter).
# sentry-sdk 3 (allowed by label-studio 1.23.2's requirements) breaks its settings import
# (TypeError: Unknown option 'send_default_pii'), hence the 2.x pin.
PINS = [
    "label-studio==1.23.2",
    "label-studio-sdk==2.1.2",
    "sentry-sdk==2.76.0",
    "pycocotools==2.0.11",
    "opencv-python-headless==4.12.0.88",
    "numpy==2.2.6",
    "pillow==13.0.0",
    "requests==2.34.2",
]
STAMP = os.path.join(VENV, ".stamp-" + hashlib.sha1(" ".join(PINS).encode()).hexdigest()[:12])

POOL_ARGS = ["--count", "40", "--size", "64", "--seed", "1"]
PROJECT_ARGS = ["--size", "32", "--epochs", "1"]
SUGGEST_ARGS = ["--count", "4", "--round-zero", "random"]
TOKEN = "sula-roundtrip-legacy-token-0123456789"
USER = "sula@example.com"
PASSWORD = "sula-roundtrip"

# What `sula suggest` writes into a batch for annotation tools, and its COCO categories.
BATCH_TOOL_FILES = ("label-studio/config.xml", "label-studio/tasks.json", "coco.json")
CATEGORIES = [(1, "vessel"), (2, "lipid"), (3, "calcium"), (4, "lumen")]
POLYGON_LABELS = ("vessel", "lumen")
BRUSH_LABELS = ("lipid", "calcium")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_venv():
    """Re-executes this script in .venv-ls, creating and filling it first when missing."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV) and os.path.exists(STAMP):
        return
    if not os.path.exists(STAMP):
        log(f"installing {' '.join(PINS)} into {VENV} (a few minutes, once)")
        if not os.path.exists(VENV_PY):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([VENV_PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", *PINS])
        open(STAMP, "w").close()
    os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__), *sys.argv[1:]])


# ---------------------------------------------------------------- sula side


def run_sula(sula, *args, check=True):
    cmd = [sula, *args]
    log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = (p.stdout + p.stderr).rstrip()
    if out:
        print("    " + out.replace("\n", "\n    "), flush=True)
    if check and p.returncode != 0:
        raise SystemExit(f"sula {args[0]} failed with exit status {p.returncode}")
    return p.returncode, out


# ---------------------------------------------------------------- Label Studio process


class LabelStudio:
    def __init__(self, port, data_dir, document_root, log_path):
        self.url = f"http://localhost:{port}"
        self.port, self.data_dir, self.root, self.log_path = port, data_dir, document_root, log_path
        self.proc = None

    def start(self, timeout=600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", self.port)) == 0:
                raise SystemExit(f"port {self.port} is already in use (pick another with --port)")
        env = dict(os.environ)
        env.update(
            LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
            LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=self.root,
            LABEL_STUDIO_USERNAME=USER,
            LABEL_STUDIO_PASSWORD=PASSWORD,
            LABEL_STUDIO_USER_TOKEN=TOKEN,
            # 1.23 issues personal access tokens (JWT) by default; the legacy token set
            # above is accepted only when the organisation allows legacy tokens.
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            # Nothing leaves the machine: no error reporting, version check or analytics.
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
        )
        cmd = [os.path.join(VENV, "bin", "label-studio"), "start", "--no-browser", "--port", str(self.port),
               "--data-dir", self.data_dir]
        log(f"starting Label Studio on {self.url} (data {self.data_dir}, log {self.log_path})")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        import requests

        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                self.log_file.flush()
                tail = open(self.log_path).read()[-3000:]
                raise SystemExit(f"Label Studio exited with status {self.proc.returncode}:\n{tail}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    log(f"Label Studio is up after {time.time() - t0:.0f} s")
                    return time.time() - t0
            except requests.RequestException:
                pass
            time.sleep(1)
        raise SystemExit(f"Label Studio did not answer /health within {timeout} s (see {self.log_path})")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        log("stopping Label Studio")
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and its children
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        self.log_file.close()


class Api:
    def __init__(self, url):
        import requests

        self.url = url
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Token {TOKEN}"

    def call(self, method, path, expect=(200, 201), **kw):
        r = self.s.request(method, self.url + path, timeout=120, **kw)
        if r.status_code not in expect:
            raise SystemExit(f"{method} {path} -> {r.status_code}: {r.text[:1000]}")
        return r


# ---------------------------------------------------------------- annotations from a truth map


def region_masks(truth):
    import numpy as np

    return {
        "vessel": fill_holes(truth != 0),
        "lumen": truth == 1,
        "lipid": truth == 3,
        "calcium": truth == 4,
    }


def fill_holes(mask):
    import cv2
    import numpy as np

    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(m)
    cv2.drawContours(out, contours, -1, 1, thickness=-1)
    return out.astype(bool)


def polygons_percent(mask):
    """Outer contours of a region, as an annotator's polygons in percent of the image.

    Traced with OpenCV on the mask upscaled 2x (nearest), so each vertex lies a quarter pixel
    inside the region's pixel edges: no pixel centre lies on the outline, and sampling pixel
    centres inside the polygon (x, y in continuous image coordinates, (0, 0) the top-left
    corner of the top-left pixel, Label Studio's convention) gives the region back."""
    import cv2
    import numpy as np

    h, w = mask.shape
    up = np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in sorted(contours, key=cv2.contourArea, reverse=True):
        c = c.reshape(-1, 2).astype(float)
        if len(c) < 3:
            continue
        x = (c[:, 0] + 0.5) / 2 / w * 100
        y = (c[:, 1] + 0.5) / 2 / h * 100
        polys.append([[round(float(a), 6), round(float(b), 6)] for a, b in zip(x, y)])
    return polys


def rasterise_centres(points_px, w, h):
    """Pixels whose centre lies inside the polygon (even-odd rule); points in continuous
    pixel coordinates ((0, 0) the top-left corner of the image)."""
    import numpy as np

    pts = np.asarray(points_px, float).reshape(-1, 2)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    inside = np.zeros((h, w), bool)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, d in zip(x0, y0, x1, y1):
        crosses = (b > yy) != (d > yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = a + (yy - b) * (c - a) / (d - b)
        inside ^= crosses & (xx < xi)
    return inside


def rasterise_fillpoly(points_px, w, h, shift=0.0):
    """cv2.fillPoly (boundary pixels included) on the points moved by `shift` into
    pixel-index coordinates (-0.5 for continuous coordinates), 8 bits of subpixel precision:
    what a quick OpenCV importer would do."""
    import cv2
    import numpy as np

    pts = (np.asarray(points_px, float).reshape(-1, 2) + shift) * 256
    out = np.zeros((h, w), np.uint8)
    cv2.fillPoly(out, [np.round(pts).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=8)
    return out.astype(bool)


def percent_to_px(points, w, h):
    import numpy as np

    return np.asarray(points, float) * [w / 100, h / 100]


def annotation_result(truth):
    """The result list an annotator's submission holds for one frame."""
    import numpy as np
    from label_studio_sdk.converter.brush import mask2rle

    h, w = truth.shape
    masks = region_masks(truth)
    result = []
    n = 0

    def rid():
        nonlocal n
        n += 1
        return f"sula{n:06d}"

    common = {"to_name": "image", "original_width": w, "original_height": h, "image_rotation": 0}
    for label in POLYGON_LABELS:
        for pts in polygons_percent(masks[label]):
            result.append({"id": rid(), "from_name": "polygon", "type": "polygonlabels", **common,
                           "value": {"points": pts, "closed": True, "polygonlabels": [label]}})
    for label in BRUSH_LABELS:
        m = masks[label]
        if m.any():
            rle = mask2rle((m * 255).astype(np.uint8))
            result.append({"id": rid(), "from_name": "brush", "type": "brushlabels", **common,
                           "value": {"format": "rle", "rle": [int(v) for v in rle], "brushlabels": [label]}})
    return result


# ---------------------------------------------------------------- checks of the exports


def check_json_export(export, truths, pool_of):
    """Brush regions decode exactly; polygons rasterise close to the truth. Returns stats."""
    import numpy as np
    from label_studio_sdk.converter.brush import decode_rle

    stats = {"polygon_centre": {}, "polygon_fillpoly": {}, "brush_exact": 0, "brush_total": 0}
    assert len(export) == len(truths), f"export has {len(export)} tasks, expected {len(truths)}"
    for task in export:
        stem = task["data"].get("sula_id")
        assert stem in truths, f"task {task['id']}: data.sula_id {stem!r} missing or unknown"
        anns = [a for a in task["annotations"] if not a.get("was_cancelled")]
        assert len(anns) == 1, f"{stem}: {len(anns)} annotations"
        truth = truths[pool_of[stem]]
        h, w = truth.shape
        masks = region_masks(truth)
        got = {}
        for r in anns[0]["result"]:
            v = r["value"]
            if r["type"] == "polygonlabels":
                label = v["polygonlabels"][0]
                c = got.setdefault(("centre", label), np.zeros((h, w), bool))
                c |= rasterise_centres(percent_to_px(v["points"], w, h), w, h)
                f = got.setdefault(("fillpoly", label), np.zeros((h, w), bool))
                f |= rasterise_fillpoly(percent_to_px(v["points"], w, h), w, h, shift=-0.5)
            elif r["type"] == "brushlabels":
                label = v["brushlabels"][0]
                assert v.get("format") == "rle", f"{stem}: brush value format {v.get('format')!r}"
                flat = decode_rle(bytes(v["rle"]))
                assert flat.size == w * h * 4, f"{stem}: RLE holds {flat.size} values, expected {w * h * 4}"
                alpha = flat.reshape(h, w, 4)[:, :, 3] > 127
                stats["brush_total"] += 1
                stats["brush_exact"] += int(np.array_equal(alpha, masks[label]))
        for kind in ("centre", "fillpoly"):
            for label in POLYGON_LABELS:
                m = got.get((kind, label), np.zeros((h, w), bool))
                t = masks[label]
                d = stats["polygon_" + kind].setdefault(label, {"pixels_differ": 0, "truth_pixels": 0, "iou": []})
                d["pixels_differ"] += int((m != t).sum())
                d["truth_pixels"] += int(t.sum())
                d["iou"].append(float((m & t).sum() / max(1, (m | t).sum())))
    for kind in ("centre", "fillpoly"):
        for d in stats["polygon_" + kind].values():
            d["iou_min"] = round(min(d.pop("iou")), 4)
    return stats


def describe_coco(coco):
    def form(seg):
        if isinstance(seg, list):
            return "polygon list"
        if isinstance(seg, dict):
            return "RLE, counts " + type(seg.get("counts")).__name__
        return type(seg).__name__

    forms, per_cat = {}, {}
    names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    for a in coco.get("annotations", []):
        forms[form(a.get("segmentation"))] = forms.get(form(a.get("segmentation")), 0) + 1
        n = names.get(a["category_id"], a["category_id"])
        per_cat[n] = per_cat.get(n, 0) + 1
    return {
        "file_names": [i["file_name"] for i in coco.get("images", [])],
        "image_ids": [i["id"] for i in coco.get("images", [])],
        "categories": [{"id": c["id"], "name": c["name"]} for c in coco.get("categories", [])],
        "segmentation_forms": forms,
        "annotations_per_category": per_cat,
    }


KINDS = ("centre", "fillpoly", "pycocotools")


def coco_agreement(coco, truths, pool_of):
    """Every region of a COCO file rasterised per (image, category name) against the truth:
    {category: {"centre": pixels that differ, "fillpoly": ..., "pycocotools": ..., "truth": truth pixels}}
    (pycocotools: mask.frPyObjects + decode, the reference COCO rasteriser).
    Images are matched by the stem of file_name's last component (after any "hash__")."""
    import numpy as np
    from pycocotools import mask as mask_util

    names = {c["id"]: c["name"] for c in coco["categories"]}
    stem_of = {}
    for im in coco["images"]:
        base = os.path.splitext(os.path.basename(im["file_name"]))[0].split("__")[-1]
        stem_of[im["id"]] = base
    got = {}
    for a in coco["annotations"]:
        stem = stem_of[a["image_id"]]
        h, w = truths[pool_of[stem]].shape
        seg = a["segmentation"]
        key = (stem, names[a["category_id"]])
        for kind in KINDS:
            got.setdefault(key + (kind,), np.zeros((h, w), bool))
        if isinstance(seg, dict):
            m = mask_util.decode(seg).astype(bool)
            for kind in KINDS:
                got[key + (kind,)] |= m
        else:
            for poly in seg:
                got[key + ("centre",)] |= rasterise_centres(poly, w, h)
                got[key + ("fillpoly",)] |= rasterise_fillpoly(poly, w, h)
                rle = mask_util.merge(mask_util.frPyObjects([[float(v) for v in poly]], h, w))
                got[key + ("pycocotools",)] |= mask_util.decode(rle).astype(bool)
    out = {}
    for stem in sorted(set(stem_of.values())):
        masks = region_masks(truths[pool_of[stem]])
        for label in ("vessel", "lumen", "lipid", "calcium"):
            t = masks[label]
            d = out.setdefault(label, {kind: 0 for kind in KINDS} | {"truth": 0})
            d["truth"] += int(t.sum())
            for kind in KINDS:
                m = got.get((stem, label, kind), np.zeros_like(t))
                d[kind] += int((m != t).sum())
    return out


def pycocotools_coco(stems, truths, pool_of):
    """The same frames as COCO written with pycocotools: every region compressed RLE."""
    import numpy as np
    from pycocotools import mask as mask_util

    images, annotations = [], []
    cat_id = {n: i for i, n in CATEGORIES}
    for k, stem in enumerate(stems):
        truth = truths[pool_of[stem]]
        h, w = truth.shape
        images.append({"id": k + 1, "file_name": f"images/{stem}.png", "width": w, "height": h})
        masks = region_masks(truth)
        for label in ("vessel", "lipid", "calcium", "lumen"):
            m = masks[label]
            if not m.any():
                continue
            rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": k + 1,
                "category_id": cat_id[label],
                "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
                "area": int(mask_util.area(rle)),
                "bbox": [float(v) for v in mask_util.toBbox(rle)],
                "iscrowd": 0,
            })
            back = mask_util.decode(annotations[-1]["segmentation"] | {"counts": rle["counts"]})
            assert np.array_equal(back.astype(bool), m), f"pycocotools RLE of {stem} {label} does not decode back"
    return {
        "info": {"description": "sula annotation fixture: 4 phantom frames, every region as pycocotools compressed RLE",
                 "version": "1.0"},
        "images": images,
        "categories": [{"id": i, "name": n} for i, n in CATEGORIES],
        "annotations": annotations,
    }


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sula", default="./target/release/sula")
    ap.add_argument("--work", help="working folder (default: a new temporary folder, kept)")
    ap.add_argument("--port", type=int, default=8093)
    ap.add_argument("--write-fixtures", metavar="DIR")
    ap.add_argument("--no-import", action="store_true", help="stop before `sula import`")
    args = ap.parse_args()
    ensure_venv()
    # A SIGTERM (make interrupted, a CI timeout) unwinds like Ctrl-C, so Label Studio is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import numpy as np
    from PIL import Image

    t_start = time.time()
    timings = {}
    sula = os.path.abspath(args.sula)
    if not os.access(sula, os.X_OK):
        raise SystemExit(f"no sula binary at {sula} (build it, or pass --sula)")
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="sula-ls-"))
    os.makedirs(work, exist_ok=True)
    for name in ("pool", "P", "batch1", "ls-data", "P-json", "P-coco", "batch-json", "batch-coco", "P-png-json",
                 "P-png-coco", "batch-png-json", "batch-png-coco"):
        if os.path.exists(os.path.join(work, name)):
            raise SystemExit(f"{work}/{name} exists: pass an empty or new --work folder")
    log(f"work folder {work}")
    pool, proj, batch = (os.path.join(work, n) for n in ("pool", "P", "batch1"))

    # 1. sula: pool, project, batch
    t = time.time()
    run_sula(sula, "phantom", *POOL_ARGS, "--out", pool)
    run_sula(sula, "project", "new", "--pool", pool, "--out", proj, *PROJECT_ARGS)
    run_sula(sula, "suggest", proj, *SUGGEST_ARGS, "--out", batch)
    timings["sula phantom, project new, suggest"] = time.time() - t
    manifest = json.load(open(os.path.join(batch, "manifest.json")))
    pool_of = {s["id"]: s["pool_id"] for s in manifest["samples"]}
    stems = sorted(pool_of)
    truths = {pool_of[s]: np.array(Image.open(os.path.join(pool, "masks", pool_of[s] + ".png"))) for s in stems}
    log(f"batch frames: {', '.join(stems)}")
    missing = [f for f in BATCH_TOOL_FILES if not os.path.exists(os.path.join(batch, f))]
    if missing:
        raise SystemExit(f"sula suggest did not write {', '.join(missing)} into the batch (an older sula?)")
    config = open(os.path.join(batch, "label-studio", "config.xml")).read()
    tasks = json.load(open(os.path.join(batch, "label-studio", "tasks.json")))

    ls = LabelStudio(args.port, os.path.join(work, "ls-data"), batch, os.path.join(work, "label-studio.log"))
    try:
        # 2. Label Studio
        timings["Label Studio start (fresh database)"] = ls.start()
        api = Api(ls.url)
        t = time.time()
        user = api.call("GET", "/api/current-user/whoami").json()
        log(f"API token accepted for {user['email']}")

        # 3. project, storage, tasks
        project = api.call("POST", "/api/projects", json={"title": "sula " + os.path.basename(batch),
                                                          "label_config": config}).json()
        pid = project["id"]
        probe = tasks[0]["data"]["image"]
        before = api.call("GET", probe, expect=(200, 403, 404)).status_code
        api.call("POST", "/api/storages/localfiles", json={
            "project": pid, "title": "sula batch images", "path": os.path.join(batch, "images"),
            "use_blob_urls": True})
        r = api.call("GET", probe, expect=(200, 403, 404))
        if r.status_code != 200 or not r.content.startswith(b"\x89PNG"):
            raise SystemExit(f"Label Studio does not serve {probe}: {r.status_code}")
        log(f"local files: {probe} -> {before} before the storage connection, 200 (PNG) after")
        imp = api.call("POST", f"/api/projects/{pid}/import", json=tasks).json()
        assert imp["task_count"] == len(stems), imp
        listed = api.call("GET", "/api/tasks", params={"project": pid, "page_size": 1000}).json()
        listed = listed["tasks"] if isinstance(listed, dict) else listed
        task_of = {tk["data"]["sula_id"]: tk["id"] for tk in listed}
        log(f"imported {len(task_of)} tasks into project {pid}")

        # 4. annotations
        for stem in stems:
            result = annotation_result(truths[pool_of[stem]])
            api.call("POST", f"/api/tasks/{task_of[stem]}/annotations",
                     json={"result": result, "ground_truth": False, "lead_time": 60.0})
            kinds = ", ".join(f"{r['value'].get('polygonlabels', r['value'].get('brushlabels'))[0]} "
                              f"({'polygon' if r['type'] == 'polygonlabels' else 'brush'})" for r in result)
            log(f"annotated {stem}: {kinds}")
        timings["API: project, storage, tasks, annotations"] = time.time() - t

        # 5. exports (COCO and BRUSH_TO_COCO come as zip files)
        t = time.time()
        json_raw = api.call("GET", f"/api/projects/{pid}/export", params={"exportType": "JSON"}).content
        zips = {kind: api.call("GET", f"/api/projects/{pid}/export",
                               params={"exportType": kind, "download_resources": "false"}).content
                for kind in ("COCO", "BRUSH_TO_COCO")}
        timings["API: JSON, COCO and BRUSH_TO_COCO exports"] = time.time() - t
    finally:
        ls.stop()

    def from_zip(kind, member):
        data = zips[kind]
        if data[:2] != b"PK":
            return data
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            log(f"{kind} export is a zip: {', '.join(z.namelist())}")
            return z.read(member)

    coco_raw = from_zip("COCO", "result.json")
    brush_coco_raw = from_zip("BRUSH_TO_COCO", "result_coco.json")
    export = json.loads(json_raw)
    coco = json.loads(coco_raw)
    brush_coco = json.loads(brush_coco_raw)

    # checks
    stats = check_json_export(export, truths, pool_of)
    log(f"JSON export: {len(export)} tasks, data keys {sorted(export[0]['data'])}")
    log(f"JSON export: brush regions decoding exactly to the truth: {stats['brush_exact']}/{stats['brush_total']}")
    for kind in ("centre", "fillpoly"):
        for label, d in stats["polygon_" + kind].items():
            log(f"JSON export: polygon {label} rasterised ({kind}): {d['pixels_differ']} of {d['truth_pixels']} "
                f"truth pixels differ, min IoU {d['iou_min']}")
    facts, agreement = {}, {}
    for kind, c in (("COCO", coco), ("BRUSH_TO_COCO", brush_coco)):
        facts[kind] = describe_coco(c)
        agreement[kind] = coco_agreement(c, truths, pool_of)
        log(f"{kind} export: file_name {facts[kind]['file_names']}, image ids {facts[kind]['image_ids']}")
        log(f"{kind} export: categories {facts[kind]['categories']}")
        log(f"{kind} export: segmentation {facts[kind]['segmentation_forms']}, per category "
            f"{facts[kind]['annotations_per_category']}")
        for label, d in agreement[kind].items():
            log(f"{kind} export: {label} rasterised: {d['centre']} (centre) / {d['fillpoly']} (fillPoly) / "
                f"{d['pycocotools']} (pycocotools) of {d['truth']} truth pixels differ")
    if stats["brush_exact"] != stats["brush_total"]:
        raise SystemExit("a brush region does not decode to its truth mask")
    if any(d["pixels_differ"] for d in stats["polygon_centre"].values()):
        raise SystemExit("a polygon of the JSON export does not rasterise to its truth mask")
    if any(d["centre"] for label, d in agreement["COCO"].items() if label in POLYGON_LABELS):
        raise SystemExit("a polygon of the COCO export does not rasterise to its truth mask")

    # two copies of project and batch, one per export
    for kind, rel, raw in (("json", "label-studio.json", json_raw), ("coco", "coco.json", coco_raw)):
        shutil.copytree(batch, os.path.join(work, f"batch-{kind}"))
        shutil.copytree(proj, os.path.join(work, f"P-{kind}"))
        with open(os.path.join(work, f"batch-{kind}", "masks", rel), "wb") as f:
            f.write(raw)

    if args.write_fixtures:
        write_fixtures(os.path.abspath(args.write_fixtures), json_raw, coco_raw, brush_coco_raw, stems, truths,
                       pool_of, stats, facts, agreement)

    failures, imported = [], {}
    if not args.no_import:
        t = time.time()
        # The reference: the truth label maps as PNGs, imported into copies of the project.
        for kind in ("json", "coco"):
            ref_batch, ref_proj = os.path.join(work, f"batch-png-{kind}"), os.path.join(work, f"P-png-{kind}")
            shutil.copytree(batch, ref_batch)
            shutil.copytree(proj, ref_proj)
            for stem in stems:
                truth = truths[pool_of[stem]].copy()
                if kind == "coco":
                    truth[(truth == 3) | (truth == 4)] = 2
                Image.fromarray(truth).save(os.path.join(ref_batch, "masks", stem + ".png"))
            run_sula(sula, "import", ref_proj, "--annotations", ref_batch, "--epochs", "1")
        for kind in ("json", "coco"):
            rc, out = run_sula(sula, "import", os.path.join(work, f"P-{kind}"), "--annotations",
                               os.path.join(work, f"batch-{kind}"), "--epochs", "1", check=False)
            if rc != 0:
                failures.append(f"sula import of the {kind.upper()} export failed ({rc})"
                                + (": sula does not read this format yet" if "not an annotation file" in out else ""))
                continue
            # What sula made of it against what it makes of the truth PNGs themselves (the
            # project works at its own size). The COCO export has no brush regions, so there
            # lipid and calcium come back as fibrous wall (2): compare with that truth.
            differ = 0
            for stem in stems:
                got = np.array(Image.open(imported_mask(os.path.join(work, f"P-{kind}"), stem)))
                want = np.array(Image.open(imported_mask(os.path.join(work, f"P-png-{kind}"), stem)))
                differ += int((got != want).sum())
            imported[kind] = differ
            log(f"sula's label maps from the {kind.upper()} export: {differ} pixels differ from those of the truth PNGs"
                + (" (lipid and calcium painted as wall)" if kind == "coco" else ""))
            if differ:
                failures.append(f"sula's label maps from the {kind.upper()} export differ in {differ} pixels")
        timings["sula import x4 (2 exports, 2 PNG references)"] = time.time() - t

    timings["total"] = time.time() - t_start
    print("\nsummary")
    print(f"  frames          {', '.join(stems)}")
    print(f"  label studio    {LS_VERSION} on {ls.url}: {len(task_of)} tasks, {len(stems)} annotations posted")
    print(f"  JSON brush      {stats['brush_exact']}/{stats['brush_total']} regions decode exactly")
    for label, d in stats["polygon_centre"].items():
        print(f"  JSON {label:10} {d['pixels_differ']}/{d['truth_pixels']} pixels differ (polygon, centre sampling)")
    for kind in ("COCO", "BRUSH_TO_COCO"):
        print(f"  {kind:15} file_name {facts[kind]['file_names'][0]!r}, {facts[kind]['segmentation_forms']}, "
              f"{facts[kind]['annotations_per_category']}")
    for kind, differ in imported.items():
        print(f"  sula import     {kind.upper()}: {differ} pixels differ from sula's import of the truth PNGs")
    for k, v in timings.items():
        print(f"  time            {k}: {v:.1f} s")
    print(f"  work folder     {work}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("OK")


def imported_mask(project, stem):
    """The label map sula keeps for `stem` in the project's newest state."""
    states = sorted(d for d in os.listdir(project) if d.startswith("state-"))
    for state in reversed(states):
        path = os.path.join(project, state, "annotated", "masks", stem + ".png")
        if os.path.exists(path):
            return path
    raise SystemExit(f"{project}: no state holds an annotated masks/{stem}.png")


def write_fixtures(out, json_raw, coco_raw, brush_coco_raw, stems, truths, pool_of, stats, facts, agreement):
    from PIL import Image
    import numpy as np

    os.makedirs(os.path.join(out, "truth"), exist_ok=True)
    for name, raw in (("label-studio-export.json", json_raw), ("label-studio-coco.json", coco_raw),
                      ("label-studio-brush-to-coco.json", brush_coco_raw)):
        with open(os.path.join(out, name), "wb") as f:
            f.write(raw)
    with open(os.path.join(out, "pycocotools-rle.json"), "w") as f:
        json.dump(pycocotools_coco(stems, truths, pool_of), f, indent=1)
        f.write("\n")
    for s in stems:
        Image.fromarray(truths[pool_of[s]]).save(os.path.join(out, "truth", s + ".png"))
    counts = {s: {int(v): int(n) for v, n in zip(*np.unique(truths[pool_of[s]], return_counts=True))} for s in stems}
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(README.format(
            stems=", ".join(f"`{s}`" for s in stems),
            pins="\n".join(f"- {p}" for p in PINS),
            py=".".join(map(str, sys.version_info[:3])),
            counts="\n".join(f"| `{s}` | " + " | ".join(str(counts[s].get(v, 0)) for v in range(5)) + " |" for s in stems),
            brush=f"{stats['brush_exact']}/{stats['brush_total']}",
            coco_cats=", ".join(f"{c['id']} {c['name']}" for c in facts["COCO"]["categories"]),
            b2c_cats=", ".join(f"{c['id']} {c['name']}" for c in facts["BRUSH_TO_COCO"]["categories"]),
            b2c=", ".join(f"{k} {d['centre']}/{d['fillpoly']}/{d['pycocotools']} of {d['truth']}" for k, d in agreement["BRUSH_TO_COCO"].items()),
        ))
    log(f"fixtures written to {out}")


LS_VERSION = PINS[0].split("==")[1]

README = """# Annotation fixtures: Label Studio and pycocotools

Real files written by Label Studio and by pycocotools for the same 4 frames, for the tests
of `sula import` reading annotation tools' files. All of them were made by one run of
`scripts/label_studio_roundtrip.py --write-fixtures tests/fixtures/annotations` (what
`make label-studio` runs, without the fixtures), which also says how they were checked.
The journal entry `docs/journal/2026-12-07-label-studio.md` has the details.

## The frames

A 4-frame batch of a phantom pool, remade exactly by

```
sula phantom --count 40 --size 64 --seed 1 --out POOL
sula project new --pool POOL --out P --size 32 --epochs 1
sula suggest P --count 4 --round-zero random --out BATCH
```

Stems (batch `images/<stem>.png` = pool `images/<stem>.png`, 64x64): {stems}.

`truth/<stem>.png` is the pool's label map of each (`masks/<stem>.png`, 8-bit grey:
0 outside, 1 lumen, 2 fibrous wall, 3 lipid, 4 calcium), the map every region below was
drawn from. Pixels per value:

| stem | 0 | 1 | 2 | 3 | 4 |
| --- | --- | --- | --- | --- | --- |
{counts}

Regions (sula's import semantics): vessel = value != 0 (lumen included, filled);
lumen = 1; lipid = 3; calcium = 4. A frame without lipid or calcium has no such region.

## The files

- `label-studio-export.json`: Label Studio's JSON export (`GET /api/projects/ID/export?exportType=JSON`),
  byte for byte. One task per frame, `data` = `{{"image": "/data/local-files/?d=images/<stem>.png",
  "sula_id": "<stem>"}}` as imported, one annotation each, posted through
  `POST /api/tasks/ID/annotations`. vessel and lumen are `polygonlabels` (from_name `polygon`,
  `value.points` in percent of `original_width`/`original_height`, traced so that sampling
  pixel centres inside gives the truth exactly); lipid and calcium are `brushlabels`
  (from_name `brush`, `value.format` "rle", `value.rle` Label Studio's RLE of an RGBA image
  W*H*4 bytes, all four channels 255 inside, 0 outside; decoded with
  label_studio_sdk.converter.brush.decode_rle, the alpha channel equals the truth in
  {brush} regions).
- `label-studio-coco.json`: `result.json` of the COCO export's zip (`exportType=COCO`,
  `download_resources=false`), byte for byte. Only the polygons (brush regions are left
  out by this exporter); `segmentation` is `[[x0, y0, x1, y1, ...]]` in continuous pixel
  coordinates (percent * size / 100); image ids and category ids from 0
  (categories {coco_cats}, match by name); `file_name` is the local file's path relative to
  Label Studio's temporary export folder (so it depends on where the batch was): match
  on its last component.
- `label-studio-brush-to-coco.json`: `result_coco.json` of the `exportType=BRUSH_TO_COCO`
  zip, byte for byte: polygons rounded to whole pixels, brush regions turned into
  OpenCV contours (pixel indices of the boundary pixels), category ids from 1 in config
  order ({b2c_cats}), `file_name` the bare `<stem>.png` and `path` the task's image URL.
  Lossy: pixels that differ from the truth per region, centre sampling / cv2.fillPoly /
  pycocotools: {b2c}.
- `pycocotools-rle.json`: the same frames written with pycocotools: one annotation per
  region, `segmentation` = `{{"size": [h, w], "counts": "<compressed RLE>"}}` from
  `pycocotools.mask.encode` of the Fortran-ordered uint8 mask (counts decoded from bytes to
  str), `iscrowd` 0, image ids from 1, `file_name` `images/<stem>.png`, categories
  1 vessel, 2 lipid, 3 calcium, 4 lumen (as in a batch's coco.json). Decodes exactly.
- `truth/`: the label maps above.

Tasks and COCO images come in the order of the batch's `label-studio/tasks.json` (the
manifest's order), not sorted.

## Label Studio's brush RLE

`value.rle` is a list of byte values (0-255), read as one bit stream, most significant bit
of each byte first (thi.ng rle-pack, which Label Studio's editor uses; the SDK's
`encode_rle` writes the same):

1. 32 bits: n, the number of values: width * height * 4 (RGBA, row-major from the top-left
   pixel). Here `[0, 0, 64, 0]` = 16384 = 64 * 64 * 4.
2. 5 bits: word size - 1 (7: 8-bit values).
3. 4 * 4 bits: the widths of the four run-length fields, each - 1 (2, 3, 7, 15: widths 3,
   4, 8, 16). Here bytes 5-6 are `57, 27`.
4. Until n values are out: 1 bit x; 2 bits k; widths[k] bits: count - 1. If x is 1, one
   word follows, repeated count times; if 0, count words follow, one value each.
5. Zero bits pad the stream to whole bytes (the SDK's encoder adds a whole zero byte when it
   was already aligned): ignore anything after the n-th value.

The region is the alpha channel (every 4th value, index 3 of each pixel): inside where it
is at least 128. The SDK's `mask2rle` writes 255 into all four channels inside and 0
outside.

## Versions

Python {py}, in the virtualenv `.venv-ls` the script makes:

{pins}
"""


if __name__ == "__main__":
    main()
