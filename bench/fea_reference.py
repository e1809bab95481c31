#!/usr/bin/env python3
"""Side-by-side FEA benchmark: sula against an independent scikit-fem solver.

Runs `sula bench fea --export DIR`, then solves the very same label maps with scikit-fem
(bilinear quads on the pixel grid, plane strain, shear part 2x2 Gauss + volumetric part
1-point = the same selective reduced integration, same materials and luminal pressure,
traction-free outer boundary, three pinned DOFs, SciPy sparse direct solve) and prints
both single-thread times, the speed ratio and the relative L2 difference of the stress
maps over solid pixels.

Usage: python bench/fea_reference.py --sula target/release/sula [--sizes 64,128,256]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from skfem import (  # noqa: E402
    Basis,
    BilinearForm,
    ElementQuad1,
    ElementVector,
    FacetBasis,
    LinearForm,
    MeshQuad,
    asm,
    condense,
    solve,
)
from skfem.helpers import ddot, dot, sym_grad, trace  # noqa: E402

LUMEN = 1
SOLID = (2, 3, 4)


def lame(material):
    e, nu = material["youngs_modulus_kpa"], material["poisson_ratio"]
    return e * nu / ((1 + nu) * (1 - 2 * nu)), e / (2 * (1 + nu))


def solve_reference(labels, materials, pressure):
    """Returns (max principal, von Mises) per pixel (kPa), 0 outside the solid."""
    height, width = labels.shape
    full = MeshQuad.init_tensor(np.arange(width + 1.0), np.arange(height + 1.0))
    centres = full.p[:, full.t].mean(axis=1)
    cols = np.floor(centres[0]).astype(int)
    rows = np.floor(centres[1]).astype(int)
    solid = np.isin(labels[rows, cols], SOLID)
    mesh = full.restrict(np.nonzero(solid)[0])
    centres = mesh.p[:, mesh.t].mean(axis=1)
    cols = np.floor(centres[0]).astype(int)
    rows = np.floor(centres[1]).astype(int)
    tissue = labels[rows, cols]
    lam = np.zeros(mesh.nelements)
    mu = np.zeros(mesh.nelements)
    for value, name in zip(SOLID, ("fibrous", "lipid", "calcium")):
        lam[tissue == value], mu[tissue == value] = lame(materials[name])

    element = ElementVector(ElementQuad1())
    shear_basis = Basis(mesh, element, intorder=2)
    # scikit-fem's quads never go below 2x2 Gauss points via `intorder`: give the single
    # centre point of the reference square [0, 1]^2 explicitly.
    centre_point = (np.array([[0.5], [0.5]]), np.array([1.0]))
    volume_basis = Basis(mesh, element, quadrature=centre_point)

    @BilinearForm
    def shear(u, v, w):
        return 2.0 * w["mu"] * ddot(sym_grad(u), sym_grad(v))

    @BilinearForm
    def volumetric(u, v, w):
        return w["lam"] * trace(sym_grad(u)) * trace(sym_grad(v))

    stiffness = asm(shear, shear_basis, mu=mu[:, None] * np.ones(shear_basis.X.shape[-1])) + asm(
        volumetric, volume_basis, lam=lam[:, None]
    )

    # Boundary facets whose far side is a lumen pixel carry the pressure.
    boundary = mesh.boundary_facets()
    midpoints = mesh.p[:, mesh.facets[:, boundary]].mean(axis=1)
    inside = mesh.p[:, mesh.t[:, mesh.f2t[0, boundary]]].mean(axis=1)
    beyond = 2 * midpoints - inside
    bc, br = np.floor(beyond).astype(int)
    valid = (bc >= 0) & (bc < width) & (br >= 0) & (br < height)
    loaded = np.zeros(len(boundary), dtype=bool)
    loaded[valid] = labels[br[valid], bc[valid]] == LUMEN
    facet_basis = FacetBasis(mesh, element, facets=boundary[loaded])

    @LinearForm
    def traction(v, w):
        return -pressure * dot(w.n, v)

    load = asm(traction, facet_basis)

    # Rigid-body motion: pin node 0 and, at the farthest node, the DOF across the line.
    nodal = shear_basis.nodal_dofs
    far = int(np.argmax(((mesh.p - mesh.p[:, [0]]) ** 2).sum(axis=0)))
    dx, dy = np.abs(mesh.p[:, far] - mesh.p[:, 0])
    pinned = np.array([nodal[0, 0], nodal[1, 0], nodal[1 if dx >= dy else 0, far]])
    displacement = solve(*condense(stiffness, load, D=pinned))

    strain = sym_grad(volume_basis.interpolate(displacement))  # at element centres
    exx, eyy, exy = strain[0, 0, :, 0], strain[1, 1, :, 0], strain[0, 1, :, 0]
    vol = lam * (exx + eyy)
    sxx, syy, sxy, szz = vol + 2 * mu * exx, vol + 2 * mu * eyy, 2 * mu * exy, vol
    principal = 0.5 * (sxx + syy) + np.sqrt(0.25 * (sxx - syy) ** 2 + sxy**2)
    mises = np.sqrt(0.5 * ((sxx - syy) ** 2 + (syy - szz) ** 2 + (szz - sxx) ** 2) + 3 * sxy**2)
    maps = []
    for values in (principal, mises):
        image = np.zeros(labels.shape)
        image[rows, cols] = values
        maps.append(image)
    return maps


def relative_l2(a, b, mask):
    return float(np.linalg.norm((a - b)[mask]) / np.linalg.norm(b[mask]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sula", default="target/release/sula")
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--repeats", type=int, default=5, help="reference solves per size (median kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [args.sula, "bench", "fea", "--sizes", args.sizes, "--export", out], check=True
        )
        with open(os.path.join(out, "sula.json")) as f:
            sula = json.load(f)
        print()
        print("Reference: scikit-fem, same masks, elements, materials and load; median of "
              f"{args.repeats} single-thread solves (OMP/BLAS threads = 1); sula: median of 7")
        print(f"{'size':>5} {'sula ms':>9} {'skfem ms':>9} {'sula faster':>11} "
              f"{'rel L2 max-principal':>21} {'rel L2 von Mises':>17}")
        for row in sula["rows"]:
            size = row["size"]
            labels = np.load(os.path.join(out, f"labels_{size}.npy")).astype(np.uint8)
            ours = [np.load(os.path.join(out, f"{name}_{size}.npy")) for name in ("max_principal", "von_mises")]
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                reference = solve_reference(labels, sula["materials"], sula["pressure_kpa"])
                times.append((time.perf_counter() - start) * 1e3)
            median = float(np.median(times))
            solid = np.isin(labels, SOLID)
            print(f"{size:>5} {row['total_ms']:>9.2f} {median:>9.1f} {median / row['total_ms']:>10.1f}x "
                  f"{100 * relative_l2(ours[0], reference[0], solid):>20.3f}% "
                  f"{100 * relative_l2(ours[1], reference[1], solid):>16.3f}%")


if __name__ == "__main__":
    main()
