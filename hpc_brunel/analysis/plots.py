"""Figures of one run: raster with population rate, rate/CV distributions, spectrum."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hpc_brunel.constants import POPULATIONS  # noqa: E402

COLORS = {"excitatory": "#1f5fa8", "inhibitory": "#c0392b"}
RASTER_WINDOW_MS = 300.0


def raster(spikes: dict, t_start_ms: float, t_stop_ms: float, path: Path, *, n_show: dict | None = None,
           window_ms: float = RASTER_WINDOW_MS, title: str = "") -> None:
    """Raster of a readable subsample (default 80 E + 20 I neurons) over the last
    `window_ms`, with the population rate of all neurons (1 ms bins) under it,
    in the style of nest.raster_plot. `spikes` needs only the spikes of that
    window (gather.read_sonata_window); spikes outside it are ignored."""
    n_show = n_show or {"excitatory": 80, "inhibitory": 20}
    t1 = t_stop_ms
    t0 = max(t_start_ms, t1 - window_ms)
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    row = 0
    for pop in POPULATIONS:
        ids, t, attrs = spikes[pop]
        w = (t >= t0) & (t < t1) & (ids < n_show[pop])
        ax.scatter(t[w], ids[w] + row, s=2, marker="|", color=COLORS[pop], label=f"{pop} ({n_show[pop]} shown)")
        row += n_show[pop]
    ax.set_ylabel("neuron")
    ax.set_ylim(-1, row)
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    ax.set_title(title)
    bins = np.arange(t0, t1 + 1e-9, 1.0)
    total = np.zeros(len(bins) - 1)
    n_all = 0
    for pop in POPULATIONS:
        ids, t, attrs = spikes[pop]
        total += np.histogram(t, bins=bins)[0]
        n_all += int(attrs["n_neurons"])
    axr.plot(bins[:-1], total / n_all * 1000.0, color="k", lw=0.8)
    axr.set_xlabel("time [ms]")
    axr.set_ylabel("rate [Hz]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def distributions(stats: dict, path: Path) -> None:
    """Save the per-population histograms of firing rates and of CV(ISI) to `path` (PNG);
    `stats`: population -> statistics dict with _rates_hz, _duration_ms and _cv."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for pop in POPULATIONS:
        s = stats[pop]
        r = s["_rates_hz"]
        step = 1000.0 / s["_duration_ms"]  # rates are spike counts / window: multiples of this
        width = step * max(1, int(np.ceil((r.max() - r.min()) / step / 60)))
        bins = np.arange(r.min() - step / 2, r.max() + width, width)
        a1.hist(r, bins=bins, histtype="step", lw=1.5, color=COLORS[pop], density=True,
                label=f"{pop}: {s['rate_mean_hz']:.1f} ± {s['rate_sd_hz']:.1f} Hz")
        if len(s["_cv"]):
            a2.hist(s["_cv"], bins=50, histtype="step", lw=1.5, color=COLORS[pop], density=True,
                    label=f"{pop}: mean {s['cv_isi_mean']:.2f}")
    a1.set_xlabel("firing rate [Hz]")
    a1.set_ylabel("density")
    a1.set_title("rate distribution")
    a1.legend(fontsize=8)
    a2.set_xlabel("CV of ISI")
    a2.set_title("irregularity (neurons with ≥3 spikes)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectrum(stats: dict, path: Path) -> None:
    """Save the Welch spectrum of each population's rate with its peak to `path` (PNG);
    `stats`: population -> statistics dict with _spectrum."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for pop in POPULATIONS:
        sp = stats[pop]["_spectrum"]
        if len(sp.freq_hz) < 2:
            continue
        ax.semilogy(sp.freq_hz[1:], sp.power[1:], color=COLORS[pop], lw=1, label=pop)
        if np.isfinite(sp.peak_hz):
            k = np.argmin(abs(sp.freq_hz - sp.peak_hz))
            ax.plot(sp.peak_hz, sp.power[k], "o", color=COLORS[pop], ms=5)
    ax.set_xlabel("frequency [Hz]")
    ax.set_ylabel("PSD of population rate [Hz²/Hz]")
    ax.set_title("Welch spectrum (1 ms bins); dots: peak")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
