"""The sweep's figure: simulated labels on the (g, eta) grid, the theory's
boundaries, the agreement map and example rasters."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hpc_brunel.labels import COLORS, LABELS, SIM_FOR_THEORY, UNDETERMINED

RASTER_NEURONS = 50  # example rasters: the first 50 excitatory neurons...
RASTER_WINDOW_MS = 100.0  # ...in the last 100 ms


def phase_diagram(rows: list[dict], path: Path, *, neurons: int, rasters: dict | None = None,
                  lines: dict | None = None) -> Path:
    """Draw the sweep's phase diagram.

    Regions coloured by label on the (g, eta) grid with the theory boundaries
    (`sweep_theory.theory_lines`) and the balance line g = 4; beside it the
    agreement map (cell by cell: agrees with theory, undetermined, disagrees).

    Parameters
    ----------
    rows : list of dict
        The sweep's table (`sweep_table.collect`).
    path : pathlib.Path
        The PNG to write.
    neurons : int
        Network size, for the title.
    rasters : dict, optional
        {label: (node_ids, times_ms, g, eta)} of example points: a row of rasters
        (the last 100 ms of the first 50 excitatory neurons).
    lines : dict, optional
        The theory boundaries to overlay.

    Returns
    -------
    pathlib.Path
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    gs = sorted({r["g"] for r in rows})
    etas = sorted({r["eta"] for r in rows})
    labels = [lab.name for lab in LABELS]
    z = np.full((len(etas), len(gs)), np.nan)
    agree = np.full((len(etas), len(gs)), np.nan)
    for r in rows:
        j, i = etas.index(r["eta"]), gs.index(r["g"])
        z[j, i] = labels.index(r["label"])
        if "theory_label" in r:
            agree[j, i] = (0 if r["label"] == SIM_FOR_THEORY.get(r["theory_label"])
                           else 1 if r["label"] == UNDETERMINED else 2)
    n_ras = len(rasters or {})
    fig = plt.figure(figsize=(15, 6.5 if not n_ras else 9.5))
    bottom, height = (0.42, 0.5) if n_ras else (0.1, 0.8)
    ax = fig.add_axes([0.05, bottom, 0.42, height])
    axa = fig.add_axes([0.53, bottom, 0.3, height])

    def edges(v):
        v = np.asarray(v, float)
        if len(v) == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        mid = (v[1:] + v[:-1]) / 2
        return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])

    cmap = ListedColormap([COLORS[k] for k in labels])
    ax.pcolormesh(edges(gs), edges(etas), z, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5, alpha=0.85,
                  edgecolors="#888888", linewidth=0.3)
    acmap = ListedColormap(["#9be39b", "#eeeeee", "#f08080"])
    axa.pcolormesh(edges(gs), edges(etas), agree, cmap=acmap, vmin=-0.5, vmax=2.5, edgecolors="#888888",
                   linewidth=0.3)
    for r in rows:
        ax.text(r["g"], r["eta"], r["label"].replace("SI-", "SI\n").replace(UNDETERMINED, "?"), ha="center",
                va="center", fontsize=6)
        if "theory_label" in r:
            axa.text(r["g"], r["eta"], r["theory_label"].replace("SI-", "SI\n"), ha="center", va="center",
                     fontsize=6)
    for a in (ax, axa):
        if lines:
            for key, style in (("fast", "k-"), ("sr", "k:")):
                # the fast line is drawn along g, the SR edge (nearly vertical) along eta
                pts = sorted(lines[key], key=(lambda p: (p[1], p[0])) if key == "sr" else None)
                if pts:
                    a.plot([p[0] for p in pts], [p[1] for p in pts], style, lw=1.8)
            if lines["slow"]:  # the slow band: where the slow mode is unstable (a few hundredths of eta wide)
                a.plot([p[0] for p in lines["slow"]], [p[1] for p in lines["slow"]], "k_", ms=9, mew=2)
        a.axvline(4.0, color="#555555", ls="-.", lw=0.8)
        a.set_xlim(edges(gs)[0], edges(gs)[-1])
        a.set_ylim(edges(etas)[0], edges(etas)[-1])
        a.set_xlabel("g (relative inhibition)")
        a.set_ylabel(r"$\eta = \nu_{ext}/\nu_{thr}$")
    v_init = rows[0].get("v_init", "fixed")
    ax.set_title(f"Simulated labels ({neurons} neurons, {rows[0]['t_sim_ms']:g} ms, V_m(0) {v_init}); "
                 "lines: linear stability", fontsize=9)
    n_agree = int(np.nansum(agree == 0))
    n_cells = int(np.sum(np.isfinite(agree)))
    axa.set_title(f"Agreement with theory: {n_agree}/{n_cells} cells (text: theory's label)", fontsize=9)
    handles = [Patch(color=COLORS[k], label=k) for k in labels]
    handles += [Patch(color="#9be39b", label="agrees"), Patch(color="#eeeeee", label="undetermined"),
                Patch(color="#f08080", label="disagrees")]
    if lines:
        handles += [plt.Line2D([], [], color="k", ls=ls, label=lab) for ls, lab in
                    (("-", "theory: Hopf line, fast mode"), (":", "theory: SR edge"))]
        handles.append(plt.Line2D([], [], color="k", marker="_", ls="", ms=9, mew=2,
                                  label="theory: slow-mode band edges"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.85, 0.95 if not n_ras else 0.92), fontsize=8)
    if n_ras:
        for k, (label, (ids, t, g, eta)) in enumerate(rasters.items()):
            axr = fig.add_axes([0.05 + k * 0.21, 0.06, 0.18, 0.25])
            t_hi = t.max() if len(t) else 0
            w = (ids < RASTER_NEURONS) & (t > t_hi - RASTER_WINDOW_MS)
            axr.plot(t[w], ids[w], "|", ms=2, color=COLORS[label])
            axr.set_title(f"{label}: g={g:g}, eta={eta:g}", fontsize=8)
            axr.set_xlabel("time [ms]", fontsize=7)
            axr.tick_params(labelsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
