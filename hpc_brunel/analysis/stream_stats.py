"""Every statistic of `analyze` in one pass over time-sorted chunks of spikes, in
memory bounded by the number of neurons plus one chunk, whatever the run length.

Pure numpy: no NEST, no MPI, no files. The reference implementations (they hold
all spikes at once and sort them) are the functions of `hpc_brunel.analysis.stats`; the
tests check that both give the same numbers on the same spikes.

What is carried across chunk borders (the accumulator's state):

* per neuron (N = neurons of the population): spike count, time of its last spike,
  number / sum / sum of squares of its inter-spike intervals (ISIs), and for
  each chi bin size (1 ms and 10 ms) its number of spikes in the chi bins, its
  number of same-bin spike pairs, and its count in the bin that is still open at
  the chunk border;
* the population histograms: counts per 1 ms and 5 ms bin (edges as
  `stats.population_counts`: Fano factors, Welch spectrum) and per 1 ms and
  10 ms bin (floor binning as `stats.synchrony`). These grow with the length
  of the analysis window, not with the number of spikes: 8 bytes per bin, about
  18 bytes per ms of model time and population, 37 MB for 1000 s with E and I;
  we accept that.

Chi needs, per neuron, the sum over bins of c_i(b)**2 = (spikes) + 2 (pairs of its
spikes in one bin). A chunk is put in neuron order once with a stable radix sort
(ids as uint16 when N <= 65,536), which keeps each neuron's spikes in time order:
the ISIs are then differences of neighbours, and the spikes of one neuron in one
bin are runs of neighbours (a run of L spikes holds L (L - 1) / 2 pairs). A run in
the first bin of a chunk may continue the bin left open by the previous chunk:
each of its spikes pairs with the neuron's carried count there. When every ISI is
longer than the bin (1 ms bins, 2 ms refractory period) c is 0 or 1 and there is
nothing to pair: that is checked per chunk and the pairing skipped. Bin counts
from time-sorted spikes need no per-spike work: they are differences of the
positions of the bin edges (bisection). So chunks may be cut anywhere in time,
through ISIs and through bins.

The network (E and I together) is not accumulated at all: every statistic is
either per neuron (concatenate) or a population histogram (add), so
`combine_populations` derives it from the two populations' states.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hpc_brunel.analysis.stats import (
    Spectrum,
    Synchrony,
    spectrum_from_counts,
    synchrony_fields,
    synchrony_from_counts,
)

CHI_BINS_MS = (1.0, 10.0)
FANO_BINS_MS = (1.0, 5.0)
MIN_SPIKES_CV = 3


def _n_bins(window_ms: float, bin_ms: float) -> int:
    return int(round(window_ms / bin_ms))


def _sorted_hist(h: np.ndarray, t_ms: np.ndarray, t_start_ms: float, bin_ms: float) -> None:
    """Add the time-sorted t_ms to the histogram h with edges t_start + bin_ms * k,
    k = 0..len(h) (the edges of `stats.population_counts`, computed the same way),
    bins [e_k, e_k+1) and the last one closed, like np.histogram; times outside
    the edges are dropped. Sorted times need no per-spike work: the counts are
    differences of the positions of the edges (bisection)."""
    n = len(h)
    if len(t_ms) == 0 or n == 0:
        return

    def edge(k):
        return t_start_ms + bin_ms * np.asarray(k, dtype=np.float64)

    klo = min(max(0, int(np.floor((t_ms[0] - t_start_ms) / bin_ms)) - 1), n)
    while klo > 0 and edge(klo) > t_ms[0]:
        klo -= 1
    khi = min(max(klo, int(np.floor((t_ms[-1] - t_start_ms) / bin_ms)) + 2), n)
    while khi < n and edge(khi) <= t_ms[-1]:
        khi += 1
    if khi <= klo:
        return
    pos = np.searchsorted(t_ms, edge(np.arange(klo, khi + 1)), side="left")
    h[klo:khi] += np.diff(pos)
    if khi == n:  # the last bin is closed on the right
        e_n = edge(n)
        h[n - 1] += int(np.searchsorted(t_ms, e_n, side="right") - np.searchsorted(t_ms, e_n, side="left"))


@dataclass
class _ChiState:
    """Per-neuron binned moments for one chi bin size (floor binning, as
    `stats.synchrony_chi`): sum over bins of c = sum_c, of c**2 = sum_c + 2 * pairs
    (pairs: spikes of the neuron in the same bin, counted as unordered pairs)."""

    bin_ms: float
    n_bins: int
    pop_counts: np.ndarray  # spikes per bin, all neurons
    sum_c: np.ndarray  # per neuron: number of spikes in the chi bins
    pairs: np.ndarray  # per neuron: sum over bins of c * (c - 1) / 2
    open_counts: np.ndarray  # per neuron: c so far in the open bin (the last bin seen so far)
    open_bin: int = -1

    @property
    def sum_c2(self) -> np.ndarray:
        return self.sum_c + 2 * self.pairs


@dataclass
class PopulationStats:
    """All statistics of one population (or the network) in the window
    [t_start_ms, t_stop_ms), as `stats.population_stats` computes them.

    `to_dict()` gives the dictionary `analyze` writes (keys starting with an
    underscore: the per-neuron arrays and the spectrum, for the figures)."""

    n_neurons: int
    n_spikes: int
    rate_mean_hz: float
    rate_sd_hz: float
    rate_median_hz: float
    silent_fraction: float
    cv_isi_mean: float
    cv_isi_median: float
    cv_isi_n_neurons: int
    fano_1ms: float
    fano_5ms: float
    synchrony_1ms: Synchrony  # chi on 1 ms bins, with its finite-size correction
    synchrony_10ms: Synchrony  # chi on 10 ms bins
    psd_peak_hz: float
    psd_peak_ratio: float
    rates_hz: np.ndarray = field(repr=False)
    duration_ms: float = 0.0
    cv: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    spectrum: Spectrum | None = field(default=None, repr=False)

    @property
    def synchrony_chi(self) -> float:
        """Golomb's chi on 1 ms bins (without the finite-size correction)."""
        return self.synchrony_1ms.chi

    @property
    def synchrony_chi_10ms(self) -> float:
        """Golomb's chi on 10 ms bins (without the finite-size correction)."""
        return self.synchrony_10ms.chi

    def to_dict(self) -> dict:
        """The statistics as `stats.population_stats` returns them (the keys analysis.json holds,
        plus _rates_hz, _duration_ms, _cv and _spectrum for the figures)."""
        d = {k: getattr(self, k) for k in (
            "n_neurons", "n_spikes", "rate_mean_hz", "rate_sd_hz", "rate_median_hz", "silent_fraction",
            "cv_isi_mean", "cv_isi_median", "cv_isi_n_neurons", "fano_1ms", "fano_5ms")}
        d.update(synchrony_fields(self.synchrony_1ms, self.synchrony_10ms))
        d.update(psd_peak_hz=self.psd_peak_hz, psd_peak_ratio=self.psd_peak_ratio)
        d.update(_rates_hz=self.rates_hz, _duration_ms=self.duration_ms, _cv=self.cv, _spectrum=self.spectrum)
        return d


def fano_factor_from_counts(counts: np.ndarray) -> float:
    """Variance / mean of population counts per bin (NaN without spikes)."""
    m = counts.mean() if len(counts) else 0.0
    return float(counts.var() / m) if m > 0 else float("nan")


def synchrony_from_moments(pop_counts: np.ndarray, sum_c: np.ndarray, sum_c2: np.ndarray, n_neurons: int,
                           n_bins: int) -> Synchrony:
    """Golomb's chi and its finite-size correction (`stats.Synchrony`) from the
    population counts per bin and the per-neuron sums of the binned counts c and
    c**2 (the formula of `stats.synchrony`)."""
    if n_bins < 2:
        return synchrony_from_counts(np.zeros(0), 0.0, n_neurons)  # no synchrony without two bins
    var_i = sum_c2 / n_bins - (sum_c / n_bins) ** 2
    return synchrony_from_counts(pop_counts, float(var_i.mean()), n_neurons)


def cv_from_isi_moments(n_isi: np.ndarray, sum_isi_ms: np.ndarray, sum_isi2_ms2: np.ndarray,
                        min_spikes: int = MIN_SPIKES_CV) -> np.ndarray:
    """CV of the ISIs of every neuron with >= min_spikes spikes, in neuron order,
    from per-neuron ISI count, sum and sum of squares (as `stats.isi_cv`)."""
    keep = np.nonzero(n_isi >= max(2, min_spikes - 1))[0]
    n = n_isi[keep].astype(float)
    mean = sum_isi_ms[keep] / n
    var = np.maximum(sum_isi2_ms2[keep] / n - mean**2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.sqrt(var) / mean
    return cv[np.isfinite(cv)]


def _neuron_order(ids: np.ndarray, n_neurons: int) -> np.ndarray:
    """Stable order by neuron id (time order kept within a neuron): a radix sort
    for ids that fit 16 bits."""
    if n_neurons <= 1 << 16:
        return np.argsort(ids.astype(np.uint16), kind="stable")
    return np.argsort(ids, kind="stable")


class StreamingPopulationStats:
    """One population's statistics over time-sorted chunks of spikes.

    Parameters
    ----------
    n_neurons : int
        Neurons of the population; node ids are 0 .. n_neurons - 1.
    t_start_ms, t_stop_ms : float
        The analysis window [t_start_ms, t_stop_ms); spikes outside it are ignored.

    Feed chunks with `add_chunk` in time order (each chunk sorted by time, every
    chunk starting at or after the end of the previous one), then call `result`.
    The state does not grow with the number of chunks or spikes: per-neuron
    arrays plus the population histograms of the window (`state_nbytes`).

    Raises
    ------
    ValueError
        If n_neurons < 1 or the window is empty.
    """

    def __init__(self, n_neurons: int, t_start_ms: float, t_stop_ms: float):
        n = int(n_neurons)
        if n < 1:
            raise ValueError(f"n_neurons = {n_neurons}: need at least one neuron")
        if not t_stop_ms > t_start_ms:
            raise ValueError(f"empty window [{t_start_ms}, {t_stop_ms})")
        self.n_neurons = n
        self.t_start_ms = float(t_start_ms)
        self.t_stop_ms = float(t_stop_ms)
        self.duration_ms = self.t_stop_ms - self.t_start_ms
        self.counts = np.zeros(n, dtype=np.int64)
        self.last_spike_ms = np.full(n, np.nan)
        self.n_isi = np.zeros(n, dtype=np.int64)
        self.sum_isi_ms = np.zeros(n)
        self.sum_isi2_ms2 = np.zeros(n)
        self.hist = {b: np.zeros(_n_bins(self.duration_ms, b), dtype=np.int64) for b in FANO_BINS_MS}
        self.chi = {}
        for b in CHI_BINS_MS:
            nb = _n_bins(self.duration_ms, b)
            self.chi[b] = _ChiState(b, nb, np.zeros(max(nb, 0), dtype=np.int64), np.zeros(n, dtype=np.int64),
                                    np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
        self.n_spikes = 0
        self._t_last_ms = -np.inf
        self._finished = False

    @property
    def state_nbytes(self) -> int:
        """Bytes of numpy state held between chunks (independent of the number of chunks)."""
        arrays = [self.counts, self.last_spike_ms, self.n_isi, self.sum_isi_ms, self.sum_isi2_ms2,
                  *self.hist.values()]
        for c in self.chi.values():
            arrays += [c.pop_counts, c.sum_c, c.pairs, c.open_counts]
        return int(sum(a.nbytes for a in arrays))

    def add_chunk(self, ids: np.ndarray, times_ms: np.ndarray) -> None:
        """Add the next time-sorted chunk of spikes.

        Parameters
        ----------
        ids : numpy.ndarray of int
            Node ids within the population (0 .. n_neurons - 1).
        times_ms : numpy.ndarray of float
            Spike times [ms], non-decreasing, not before the previous chunk's last spike.

        Raises
        ------
        ValueError
            If ids and times differ in length, the spikes are not sorted by time
            (within the chunk or against the previous one), or an id lies outside
            0 .. n_neurons - 1.
        RuntimeError
            If called after `result`.
        """
        if self._finished:
            raise RuntimeError("add_chunk after result()")
        times_ms = np.asarray(times_ms, dtype=np.float64)
        ids = np.asarray(ids)
        if len(ids) != len(times_ms):
            raise ValueError(f"{len(ids)} ids but {len(times_ms)} times")
        if len(times_ms) == 0:
            return
        if times_ms[0] < self._t_last_ms or np.any(times_ms[1:] < times_ms[:-1]):
            raise ValueError("spikes must come sorted by time, chunk after chunk")
        self._t_last_ms = float(times_ms[-1])
        # the analysis window, by bisection on the sorted times
        a = int(np.searchsorted(times_ms, self.t_start_ms, side="left"))
        b = int(np.searchsorted(times_ms, self.t_stop_ms, side="left"))
        if b <= a:
            return
        t = times_ms[a:b]
        i = ids[a:b].astype(np.intp, copy=False)
        n = self.n_neurons
        try:
            cnt = np.bincount(i, minlength=n)  # refuses negative ids
        except ValueError:
            cnt = np.empty(0)
        if len(cnt) != n:
            raise ValueError(f"node ids outside 0..{n - 1}")
        self.n_spikes += len(t)
        self.counts += cnt

        # population histograms with the edges of stats.population_counts
        for bin_ms, h in self.hist.items():
            _sorted_hist(h, t, self.t_start_ms, bin_ms)

        # neuron order (a stable sort: time order kept within each neuron); the
        # spikes of neuron k are ids_s[start[k]:start[k] + cnt[k]]
        order = _neuron_order(i, n)
        ids_s = i[order]
        t_s = t[order]
        start = np.cumsum(cnt) - cnt
        fired = np.flatnonzero(cnt)
        first = start[fired]
        last = first + cnt[fired] - 1
        border = first[1:] - 1  # diff positions that cross from one neuron to the next

        # ISIs inside the chunk (neighbours in neuron order), and across the border
        # from each neuron's last spike before this chunk
        d = np.diff(t_s)
        d[border] = np.inf
        min_isi_ms = float(d.min()) if len(d) else np.inf
        d[border] = 0.0
        owner = ids_s[1:]
        self.n_isi += cnt - (cnt > 0)
        self.sum_isi_ms += np.bincount(owner, weights=d, minlength=n)
        self.sum_isi2_ms2 += np.bincount(owner, weights=d * d, minlength=n)
        prev = self.last_spike_ms[fired]
        has_prev = ~np.isnan(prev)
        bd = t_s[first][has_prev] - prev[has_prev]
        bo = fired[has_prev]
        self.n_isi[bo] += 1
        self.sum_isi_ms[bo] += bd
        self.sum_isi2_ms2[bo] += bd * bd
        self.last_spike_ms[fired] = t_s[last]
        if len(bd):
            min_isi_ms = min(min_isi_ms, float(bd.min()))

        # chi: per-neuron binned counts (floor binning as stats.synchrony)
        x = t - self.t_start_ms
        for c in self.chi.values():
            xb = x if c.bin_ms == 1.0 else x / c.bin_ms
            m = int(np.searchsorted(xb, float(c.n_bins), side="left"))  # chi bins are 0 .. n_bins - 1
            # no neuron fires twice in a bin when every ISI is longer than the bin (1 ms
            # bins, 2 ms refractory period): c is 0 or 1, nothing to pair (the margin
            # covers the rounding of (t - t_start) / bin)
            no_pairs = min_isi_ms > c.bin_ms + 1e-6
            if m == len(t):
                self._add_chi(c, xb, i, cnt, order, ids_s, border, no_pairs)
            elif m > 0:  # the chunk runs past the last chi bin: those spikes leave chi
                i_m = i[:m]
                cnt_m = np.bincount(i_m, minlength=n)
                order_m = _neuron_order(i_m, n)
                start_m = np.cumsum(cnt_m) - cnt_m
                self._add_chi(c, xb[:m], i_m, cnt_m, order_m, i_m[order_m], start_m[np.flatnonzero(cnt_m)][1:] - 1,
                              no_pairs)

    @staticmethod
    def _add_chi(c: _ChiState, xb: np.ndarray, i: np.ndarray, cnt: np.ndarray, order: np.ndarray,
                 ids_s: np.ndarray, border: np.ndarray, no_pairs: bool = False) -> None:
        """xb: (t - t_start) / bin, sorted, all < n_bins; bin k holds xb in [k, k + 1).
        no_pairs: no neuron has two spikes in one bin (checked by the caller)."""
        n = len(cnt)
        b_first = int(np.floor(xb[0]))
        b_last = int(np.floor(xb[-1]))
        pos = np.searchsorted(xb, np.arange(b_first + 1, b_last + 1, dtype=np.float64), side="left")
        pos = np.concatenate(([0], pos, [len(xb)]))
        per_bin = np.diff(pos)
        c.pop_counts[b_first:b_last + 1] += per_bin
        c.sum_c += cnt
        if not no_pairs:
            # pairs across the chunk border: the open bin may go on in this chunk
            if c.open_bin == b_first:
                c.pairs += c.open_counts * np.bincount(i[:pos[1]], minlength=n)
            # pairs inside the chunk: neighbours in neuron order in the same bin
            if b_last > b_first:
                b = np.repeat(np.arange(b_first, b_last + 1, dtype=np.int32), per_bin)[order]
                same = b[1:] == b[:-1]
                same[border] = False
                if same.any():
                    j = np.flatnonzero(same)
                    # streaks of consecutive same-bin neighbours: a run of L spikes is a
                    # streak of L - 1 and holds L * (L - 1) / 2 pairs
                    brk = np.flatnonzero(np.diff(j) != 1) + 1
                    s0 = np.concatenate(([0], brk))
                    s1 = np.concatenate((brk, [len(j)]))
                    streak = (s1 - s0).astype(np.int64)
                    c.pairs += np.bincount(ids_s[j[s0]], weights=streak * (streak + 1) // 2,
                                           minlength=n).astype(np.int64)
            else:  # the whole chunk is one bin: C(cnt, 2) per neuron
                c.pairs += cnt * (cnt - 1) // 2
        # the open bin: the last bin of this chunk
        in_last = np.bincount(i[pos[-2]:], minlength=n)
        if c.open_bin == b_last:
            c.open_counts += in_last
        else:
            c.open_counts[:] = in_last
            c.open_bin = b_last

    def _close(self) -> None:
        self._finished = True

    def rates_hz(self) -> np.ndarray:
        """Per-neuron firing rate [Hz] over the window (silent neurons included)."""
        return self.counts / (self.duration_ms / 1000.0)

    def cv(self) -> np.ndarray:
        """CV of the ISIs of every neuron with >= 3 spikes in the window, in neuron order."""
        return cv_from_isi_moments(self.n_isi, self.sum_isi_ms, self.sum_isi2_ms2)

    def result(self) -> PopulationStats:
        """The statistics of everything added (closes the accumulator).

        Returns
        -------
        PopulationStats
            The numbers `stats.population_stats` gives on the same spikes.
        """
        self._close()
        return _finish(self.n_neurons, self.n_spikes, self.duration_ms, self.rates_hz(), self.cv(),
                       self.hist[1.0], self.hist[5.0],
                       {b: (c.pop_counts, c.sum_c, c.sum_c2, c.n_bins) for b, c in self.chi.items()})


def combine_populations(parts: list[StreamingPopulationStats]) -> PopulationStats:
    """The statistics of the union of populations (the network: E then I, ids
    of the second following those of the first), from their accumulators alone:
    per-neuron arrays are concatenated, population histograms added.

    Parameters
    ----------
    parts : list of StreamingPopulationStats
        The populations' accumulators, fed with all their spikes (they are closed).

    Returns
    -------
    PopulationStats
        What `stats.population_stats` gives for all neurons of `parts` together.

    Raises
    ------
    ValueError
        If `parts` is empty or the accumulators have different windows.
    """
    if not parts:
        raise ValueError("no populations")
    w = {(p.t_start_ms, p.t_stop_ms) for p in parts}
    if len(w) != 1:
        raise ValueError(f"populations analyzed over different windows: {sorted(w)}")
    for p in parts:
        p._close()
    n = sum(p.n_neurons for p in parts)
    chi = {}
    for b in CHI_BINS_MS:
        cs = [p.chi[b] for p in parts]
        chi[b] = (sum(c.pop_counts for c in cs), np.concatenate([c.sum_c for c in cs]),
                  np.concatenate([c.sum_c2 for c in cs]), cs[0].n_bins)
    return _finish(n, sum(p.n_spikes for p in parts), parts[0].duration_ms,
                   np.concatenate([p.rates_hz() for p in parts]), np.concatenate([p.cv() for p in parts]),
                   sum(p.hist[1.0] for p in parts), sum(p.hist[5.0] for p in parts), chi)


def _finish(n_neurons, n_spikes, duration_ms, rates, cv, counts_1ms, counts_5ms, chi) -> PopulationStats:
    spec = spectrum_from_counts(counts_1ms, n_neurons)
    sync = {b: synchrony_from_moments(pc, s1, s2, n_neurons, nb) for b, (pc, s1, s2, nb) in chi.items()}
    return PopulationStats(
        n_neurons=int(n_neurons),
        n_spikes=int(n_spikes),
        rate_mean_hz=float(rates.mean()),
        rate_sd_hz=float(rates.std()),
        rate_median_hz=float(np.median(rates)),
        silent_fraction=float(np.mean(rates == 0)),
        cv_isi_mean=float(cv.mean()) if len(cv) else float("nan"),
        cv_isi_median=float(np.median(cv)) if len(cv) else float("nan"),
        cv_isi_n_neurons=int(len(cv)),
        fano_1ms=fano_factor_from_counts(counts_1ms),
        fano_5ms=fano_factor_from_counts(counts_5ms),
        synchrony_1ms=sync[1.0],
        synchrony_10ms=sync[10.0],
        psd_peak_hz=spec.peak_hz,
        psd_peak_ratio=spec.peak_ratio,
        rates_hz=rates,
        duration_ms=float(duration_ms),
        cv=cv,
        spectrum=spec,
    )
