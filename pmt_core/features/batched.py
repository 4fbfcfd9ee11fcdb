"""A batched forward pass of kymatio 0.3.0's 1-D scattering, on kymatio's own filters.

kymatio's ``scattering1d`` core walks the scattering tree one path at a time: for each
first-order wavelet a full-length complex product, a Fourier-domain subsampling, an
inverse FFT, a modulus, a complex FFT of the (real) modulus and a full-length
low-pass product; the same again for each second-order child. Most of that time is
per-call overhead and elementwise work on spectrum bins where the filter is exactly
zero. :class:`BatchedScattering1D` runs the same algorithm with the same filters
(the float32 arrays that ``ScatteringTorch1D`` built with kymatio's
``scattering_filter_factory``, never re-derived), differently organised:

* Paths are grouped by subsampling level: all first-order wavelets with the same
  ``k1`` share one product-and-fold, one batched inverse FFT, one modulus and one
  batched forward FFT; second-order paths are grouped by ``(k1, k2)`` as the outer
  product of their first-order parents and their second-order wavelets. On the CPU
  a group is cut into chunks of at most :data:`CPU_CHUNK_BINS` bins per tensor.
* Only the requested first-order wavelets and their second-order children are
  computed (the dropped low carriers and order 0 are skipped).
* kymatio multiplies the whole spectrum by a filter and then periodises it
  (``subsample_fourier``: a mean over ``2**k`` folds). Here each filter keeps only
  the smallest circular run of bins that holds all its non-zero float32 entries, so
  the product and the fold only touch those bins. Bins outside the run are exact
  zeros in kymatio's product too, so this changes rounding only (the fold sums
  fewer exact zeros; ``1 / 2**k`` is folded into the filter values, an exact
  power-of-two scaling).
* Real signals (the padded input, every modulus) are transformed with ``rfft``;
  kymatio builds a zero imaginary part and runs a complex FFT. The negative
  frequencies a filter needs are read as complex conjugates of the positive ones
  (Hermitian symmetry, exact for a real input). The low-pass output is, as in
  kymatio, the real part of a complex inverse FFT (of ``N / T`` points).
* A few FFT calls are arranged so that a clip's bits depend neither on the batch
  size nor on the number of CPU threads (:func:`_transform`).

What stays kymatio's: reflect padding to the same length, the subsampling factors
``k1 = max(min(j1, log2 T) - oversampling, 0)`` etc., the filters at each level, the
mean in the Fourier-domain subsampling (hence kymatio 0.3.0's double normalisation,
kymatio pull request #736: raw outputs carry the same ``2**-j1`` / ``2**-(j1+j2)``
scale), the modulus, the low-pass at each level and the unpadding indices. Nothing
of kymatio's algorithm is left out. ``tests/test_batched.py`` pins the largest
difference against stock ``ScatteringTorch1D``, relative to each path's largest
coefficient, at the paper's setting and at small ones (oversampling included):
computed in float64 on both sides, at most 5e-15 on noise and 3e-10 on an AM tone
(whose smallest paths sit 1e-10 below its largest); in float32 on noise, at most
2.9e-6 (2.2e-6 on the paper's 1,200 paths). In float32 the paths of a tone that lie
far below its energy are at float32's resolution: there kymatio itself is off its
float64 result by up to 10 %, and this pass no more than 1.5x as much.

The same torch code runs on the CPU and on CUDA; the device is that of the filters
(:meth:`BatchedScattering1D.to`).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch


def _arc(nonzero: np.ndarray) -> tuple[int, int]:
    """Return ``(start, length)`` of the smallest circular run of bins holding every non-zero.

    ``start`` may be negative (bins are circular: bin ``-1`` is bin ``size - 1``).
    """
    size = len(nonzero)
    index = np.flatnonzero(nonzero)
    if len(index) == 0:
        return 0, 0
    # The run starts after the largest circular gap between consecutive non-zero bins.
    gaps = np.diff(np.concatenate([index, index[:1] + size]))
    after = int(np.argmax(gaps))
    first, last = int(index[(after + 1) % len(index)]), int(index[after])
    if first > last:  # the run wraps through bin 0
        first -= size
    return first, last + 1 - first


@dataclass
class _Piece:
    """A run of bins of one filter that maps to a run of output bins without wrapping."""

    filter: int
    bin: int  # first full-spectrum bin, in [0, size)
    mirrored: bool  # bins above Nyquist: read as conjugates of the positive ones
    target: int  # first output bin (the bin modulo the folded length)
    accumulate: bool  # add to the output (a later fold) rather than write it
    weight: torch.Tensor  # (length, 2): filter / folds, twice; imaginary sign -1 if mirrored

    def to(self, device):
        """Return a copy with the weight on ``device``."""
        return dataclasses.replace(self, weight=self.weight.to(device))


@dataclass
class _Spectral:
    """Product of a spectrum by real filters, then Fourier-domain subsampling.

    kymatio's ``cdgmm`` then ``subsample_fourier``: the ``mean`` over the
    ``size // fold`` folds of ``spectrum * filter``. Each filter keeps only its
    smallest circular run of non-zero float32 bins (:func:`_arc`), cut into
    :class:`_Piece` runs that each read one contiguous run of a half spectrum (or of
    its mirror image) and write one contiguous run of the output: products by a
    filter's exact zeros, which kymatio computes and sums, are skipped. The weights are
    the filter values divided by the number of folds (a power of two: exact) and
    stored twice, ``(length, 2)``, to multiply a complex spectrum viewed as real pairs
    without broadcasting.
    """

    pieces: list[_Piece]
    zero: list[tuple[int, int, int]]  # (filter, start, stop): output bins no bin reaches
    filters: int
    size: int
    fold: int
    mirror: int  # how many bins below ``size`` the mirrored pieces reach

    @classmethod
    def build(cls, bank: list[np.ndarray], size: int, fold: int) -> _Spectral:
        """Cut float32 filters ``bank`` (each of length ``size``) into pieces."""
        scale = fold / size  # 1 / 2**k: exact in any float type
        nyquist = size // 2
        pieces, zero, mirror = [], [], 0
        for f, values in enumerate(bank):
            start, length = _arc(values != 0)
            length = min(length, size)
            if length == 0:  # an all-zero filter
                zero.append((f, 0, fold))
                continue
            if length < fold:  # output bins that no filter bin folds onto stay zero
                first, end = start % fold, (start + length) % fold
                gaps = [(end, first)] if end <= first else [(end, fold), (0, first)]
                zero += [(f, a, b) for a, b in gaps if b > a]
            # Cut at fold boundaries (the output wraps), at Nyquist and at bin 0 (the
            # source switches between the half spectrum and its mirror image); the
            # first fold of the run writes the output, later folds add to it.
            cuts = {start, start + length, start + min(length, fold)}
            for edge in range(start - start % fold, start + length, fold):
                cuts.add(edge)
            for edge in range(start - start % size, start + length + size, size):
                cuts.update((edge, edge + nyquist + 1))
            cuts = sorted(c for c in cuts if start <= c <= start + length)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                q = a % size
                mirrored = q > nyquist
                w = values[(np.arange(a, b)) % size] * values.dtype.type(scale)
                weight = np.stack([w, -w if mirrored else w], axis=1)
                if mirrored:
                    mirror = max(mirror, size - q)
                pieces.append(_Piece(f, q, mirrored, a % fold, a >= start + fold,
                                     torch.from_numpy(np.ascontiguousarray(weight))))
        # Writes before adds, so that every output bin is written before it is added to.
        pieces.sort(key=lambda p: p.accumulate)
        return cls(pieces, zero, len(bank), size, fold, mirror)

    def to(self, device: torch.device) -> _Spectral:
        """Return a copy with its tensors on ``device``."""
        return dataclasses.replace(self, pieces=[p.to(device) for p in self.pieces])

    def elements(self) -> int:
        """Spectrum bins multiplied per input row (all filters)."""
        return sum(len(p.weight) for p in self.pieces)

    def mirror_image(self, half: torch.Tensor, bins: int | None = None) -> torch.Tensor:
        """Return the bins ``size - bins .. size - 1`` as real pairs, not yet conjugated.

        Row ``i`` holds ``half[bins - i]`` (bin ``size - bins + i`` is its conjugate).
        """
        bins = self.mirror if bins is None else bins
        return torch.view_as_real(half[..., 1 : bins + 1]).flip(-2)

    def __call__(self, half: torch.Tensor, mirror: torch.Tensor | None = None,
                 filters: range | None = None) -> torch.Tensor:
        """Apply the filters (all, or the range ``filters``) to the half spectrum ``half``.

        ``half`` is (..., size // 2 + 1) complex. ``mirror`` may hold
        :meth:`mirror_image` of ``half`` already (shared by several sets of filters),
        reaching at least :attr:`mirror` bins.

        Returns
        -------
        torch.Tensor, complex, shape (len(filters), ..., fold)
        """
        filters = range(self.filters) if filters is None else filters
        if mirror is None and self.mirror:
            mirror = self.mirror_image(half)
        reach = 0 if mirror is None else mirror.shape[-2]
        positive = torch.view_as_real(half)
        out = torch.empty((len(filters),) + half.shape[:-1] + (self.fold, 2),
                          dtype=positive.dtype, device=positive.device)
        for f, a, b in self.zero:
            if f in filters:
                out[f - filters.start, ..., a:b, :].zero_()
        for p in self.pieces:
            if p.filter not in filters:
                continue
            n = len(p.weight)
            if p.mirrored:
                first = p.bin - (self.size - reach)
                source = mirror[..., first : first + n, :]
            else:
                source = positive[..., p.bin : p.bin + n, :]
            target = out[p.filter - filters.start, ..., p.target : p.target + n, :]
            if p.accumulate:  # a later fold: kymatio's mean over folds, as a running sum
                target.add_(source * p.weight)
            else:
                torch.mul(source, p.weight, out=target)
        return torch.view_as_complex(out)


def _chunks(count: int, per_chunk: int) -> list[range]:
    """Split ``range(count)`` into even consecutive ranges of about ``per_chunk``."""
    n = max(1, -(-count // max(1, per_chunk)))
    size = -(-count // n)
    return [range(a, min(a + size, count)) for a in range(0, count, size)]


#: Below this length a real FFT goes through a complex one (see :func:`_transform`).
SMALL_REAL_FFT = 128


def _transform(fft, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """Run ``fft`` (``torch.fft.fft``, ``ifft`` or ``rfft``) on the rows of ``x``.

    Two MKL behaviours (torch's CPU FFT), measured here (2 cores, torch 2.14.1), would
    make a clip's bits depend on the batch or on the number of threads:

    * a lone transform gets another algorithm than two or more, split across threads:
      one row gives other bits than the same row in a batch, and other bits at 1 and 2
      threads, from 8,192 points up. A lone row is transformed beside a zero row.
    * real transforms of 64 points or fewer give other bits at 2 threads than at 1,
      whatever the batch. They go through a complex FFT of the zero-padded imaginary
      part instead (kymatio's own way), whose bits did not change.

    From two rows up, a row's bits then depend on neither the batch size nor the
    thread count (1 or 2; pinned in ``tests/test_batched.py``).
    """
    n = x.shape[-1]
    if fft is torch.fft.rfft and n < SMALL_REAL_FFT:
        return _transform(torch.fft.fft, torch.complex(x, torch.zeros_like(x)))[..., : n // 2 + 1]
    rows = x[..., 0].numel()
    record = getattr(_RECORD, "calls", None)
    if record is not None:
        record.append(("r" if fft is torch.fft.rfft else "c", n, max(rows, 2)))
    if rows != 1:
        return fft(x, **kwargs)
    pair = torch.cat([x.reshape(1, -1), torch.zeros_like(x.reshape(1, -1))])
    return fft(pair, **kwargs)[0].reshape(x.shape[:-1] + (-1,))


#: While :meth:`BatchedScattering1D.fft_calls` runs in a thread, ``calls`` lists the FFTs
#: that thread makes: (kind, length, rows).
_RECORD = threading.local()


def _modulus(z: torch.Tensor) -> torch.Tensor:
    """``|z|`` computed as kymatio's ``ModulusStable`` does: ``sqrt(re * re + im * im)``.

    Same bits as kymatio; squaring the (re, im) pairs in one contiguous pass, then
    adding them, is 1.7x faster here than squaring each part, and 1.9x faster than
    ``torch.abs`` (a scalar ``hypot``).
    """
    squares = torch.view_as_real(z).square()
    return torch.add(squares[..., 0], squares[..., 1]).sqrt_()


@dataclass
class _Lowpass:
    """kymatio's low-pass at one level: product by phi, subsampling, inverse FFT, unpad."""

    spectral: _Spectral
    start: int
    end: int

    def __call__(self, half: torch.Tensor) -> torch.Tensor:
        # kymatio's irfft: the real part of a complex inverse FFT (a few dozen points).
        folded = self.spectral(half)[0]  # (..., n_out) complex
        return _transform(torch.fft.ifft, folded).real[..., self.start : self.end]

    def to(self, device: torch.device) -> _Lowpass:
        """Return a copy with its tensors on ``device``."""
        return _Lowpass(self.spectral.to(device), self.start, self.end)


@dataclass
class _Order1:
    """First-order wavelets with one subsampling ``k1``."""

    k1: int
    n1: list[int]
    wavelets: _Spectral
    lowpass: _Lowpass
    positions: torch.Tensor  # output rows of these paths

    def to(self, device):
        """Return a copy with its tensors on ``device``."""
        return _Order1(self.k1, self.n1, self.wavelets.to(device), self.lowpass.to(device),
                       self.positions.to(device))


@dataclass
class _Order2:
    """Second-order paths ``rows x n2`` whose parents have ``k1`` and whose children ``k2``."""

    k1: int
    k2: int
    rows: torch.Tensor  # rows of the parents in their _Order1 group
    all_rows: bool  # rows is every row of that group (no copy needed)
    n1: list[int]
    n2: list[int]
    wavelets: _Spectral
    lowpass: _Lowpass
    positions: torch.Tensor  # (len(n1), len(n2)) output rows

    def to(self, device):
        """Return a copy with its tensors on ``device``."""
        return _Order2(self.k1, self.k2, self.rows.to(device), self.all_rows, self.n1,
                       self.n2, self.wavelets.to(device), self.lowpass.to(device),
                       self.positions.to(device))


def _level(level) -> np.ndarray:
    """Return a kymatio filter level (torch (N, 1) or numpy (N,)) as flat float32."""
    if isinstance(level, torch.Tensor):
        level = level.detach().cpu().numpy()
    return np.asarray(level, dtype=np.float32).ravel()


#: On the CPU, most complex bins per intermediate tensor (chunks of filters or parents).
#: Larger tensors come from fresh pages at every call (glibc serves allocations above
#: 32 MiB with mmap and returns them): measured here at the paper's setting, 35,000-
#: 67,000 page faults and 0.1-0.3 s of system time per clip (a quarter of the time)
#: without chunks, none at 2**20 (8 MiB tensors, reused from the heap), 7,000-17,000
#: at 2**18 and 2**19, 27,000-37,000 at 2**21.
CPU_CHUNK_BINS = 2**20


class BatchedScattering1D:
    """kymatio 0.3.0's 1-D scattering (average, order 2), batched over paths.

    Parameters
    ----------
    module : kymatio.scattering1d.frontend.torch_frontend.ScatteringTorch1D
        The stock transform whose filters, padding and subsampling rules are used
        (its float32 filter levels, as registered by kymatio).
    n1 : sequence of int, optional
        First-order wavelets (indices into ``module.psi1_f``) to compute, with all
        their second-order children. Default: all of them.
    dtype : torch.dtype
        ``torch.float32`` (kymatio's) or ``torch.float64``: the same float32 filter
        values, computed in double precision (to compare with ``module.double()``
        without float32 rounding in the way).

    Notes
    -----
    Calling the object on a real tensor ``(examples, N)`` returns
    ``(examples, paths, frames)``: the first-order paths of ``n1`` in increasing
    ``n1``, then the second-order paths in kymatio's order (``n1``, then ``n2``),
    exactly the rows ``kymatio_index`` of stock kymatio's output, raw (kymatio's
    per-path scale kept). Order 0 is not computed.
    """

    def __init__(self, module, n1=None, dtype: torch.dtype = torch.float32):
        if not module.average or module.max_order != 2:
            raise ValueError("only average=True (T >= 1) with max_order=2 is implemented")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.device = torch.device("cpu")
        self.n_input = int(module.shape[0])
        self.pad_left, self.pad_right = int(module.pad_left), int(module.pad_right)
        phi = module.phi_f
        self.size = len(_level(phi["levels"][0]))
        self.dtype = dtype
        # kymatio's float32 filter values, in the dtype of the computation.
        numpy_dtype = np.float32 if dtype == torch.float32 else np.float64

        def _filter(level):
            return _level(level).astype(numpy_dtype)

        log2_t, over = int(phi["j"]), int(module.oversampling)
        start, end = module.ind_start, module.ind_end
        psi1, psi2 = module.psi1_f, module.psi2_f
        chosen = sorted(range(len(psi1)) if n1 is None else {int(n) for n in n1})

        lowpasses: dict[int, _Lowpass] = {}

        def lowpass(level: int) -> _Lowpass:
            if level not in lowpasses:
                f = _filter(phi["levels"][level])
                k_j = max(log2_t - level - over, 0)
                spectral = _Spectral.build([f], len(f), len(f) >> k_j)
                lowpasses[level] = _Lowpass(spectral, start[level + k_j], end[level + k_j])
            return lowpasses[level]

        # kymatio's order: order-1 paths by n1, then order-2 paths by (n1, n2).
        k1_of = {n: max(min(psi1[n]["j"], log2_t) - over, 0) for n in chosen}
        children = {n: [m for m in range(len(psi2)) if psi2[m]["j"] > psi1[n]["j"]]
                    for n in chosen}
        position1 = {n: i for i, n in enumerate(chosen)}
        position2, row = {}, len(chosen)
        for n in chosen:
            for m in children[n]:
                position2[n, m] = row
                row += 1
        self.n_paths = row
        # Rows of stock kymatio's output: order 0, all order-1 paths, all order-2 paths.
        kymatio_row, next_row = {}, 1 + len(psi1)
        for a in range(len(psi1)):
            for b in range(len(psi2)):
                if psi2[b]["j"] > psi1[a]["j"]:
                    kymatio_row[a, b] = next_row
                    next_row += 1
        self.kymatio_index = np.array(
            [1 + n for n in chosen] + [kymatio_row[n, m] for n in chosen for m in children[n]],
            dtype=int)

        self.order1: list[_Order1] = []
        self.order2: list[_Order2] = []
        for k1 in sorted(set(k1_of.values())):
            group = [n for n in chosen if k1_of[n] == k1]
            size1 = self.size >> k1
            wavelets = _Spectral.build([_filter(psi1[n]["levels"][0]) for n in group],
                                       self.size, size1)
            self.order1.append(_Order1(k1, group, wavelets, lowpass(k1),
                                       torch.tensor([position1[n] for n in group])))
            # Children grouped by k2; parents with the same children share one product.
            by_k2: dict[tuple[int, tuple[int, ...]], list[int]] = {}
            for n in group:
                k2_of: dict[int, list[int]] = {}
                for m in children[n]:
                    k2 = max(min(psi2[m]["j"], log2_t) - k1 - over, 0)
                    k2_of.setdefault(k2, []).append(m)
                for k2, ms in k2_of.items():
                    by_k2.setdefault((k2, tuple(ms)), []).append(n)
            for (k2, ms), parents in sorted(by_k2.items()):
                bank = [_filter(psi2[m]["levels"][k1]) for m in ms]
                rows = [group.index(n) for n in parents]
                self.order2.append(_Order2(
                    k1, k2, torch.tensor(rows), rows == list(range(len(group))),
                    parents, list(ms), _Spectral.build(bank, size1, size1 >> k2),
                    lowpass(k1 + k2),
                    torch.tensor([[position2[n, m] for m in ms] for n in parents])))
        frames = {g.lowpass.end - g.lowpass.start for g in self.order1 + self.order2}
        if len(frames) != 1:
            raise ValueError(f"paths with different frame counts {sorted(frames)}")
        self.n_frames = frames.pop()
        self.chunk_bins = CPU_CHUNK_BINS
        self._index_children()

    def to(self, device: str | torch.device) -> BatchedScattering1D:
        """Move the filters to ``device`` (in place) and return ``self``."""
        device = torch.device(device)
        self.order1 = [g.to(device) for g in self.order1]
        self.order2 = [g.to(device) for g in self.order2]
        self.device = device
        self.chunk_bins = CPU_CHUNK_BINS if device.type == "cpu" else None
        self._index_children()
        return self

    def _index_children(self):
        # Second-order groups by parent level, and the spectrum bins they read.
        self._children = {g.k1: [h for h in self.order2 if h.k1 == g.k1] for g in self.order1}
        self._mirrors = {k1: max(h.wavelets.mirror for h in hs)
                         for k1, hs in self._children.items() if hs}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Scatter real signals ``x`` (examples, N); see the class notes for the output."""
        if x.ndim != 2 or x.shape[-1] != self.n_input:
            raise ValueError(f"expected (examples, {self.n_input}), got {tuple(x.shape)}")
        x = x.to(self.device, self.dtype)
        out = torch.empty(x.shape[0], self.n_paths, self.n_frames, dtype=self.dtype,
                          device=self.device)
        padded = torch.nn.functional.pad(x[:, None], (self.pad_left, self.pad_right),
                                         mode="reflect")[:, 0]
        spectrum = _transform(torch.fft.rfft, padded)  # (B, size // 2 + 1)
        examples = x.shape[0]
        for g in self.order1:
            n1 = self.size >> g.k1
            u1_hat = torch.empty((g.wavelets.filters, examples, n1 // 2 + 1),
                                 dtype=spectrum.dtype, device=self.device)
            for part in self._split(g.wavelets.filters, examples * n1):
                u1 = _modulus(_transform(torch.fft.ifft, g.wavelets(spectrum, filters=part)))
                u1_hat[part.start : part.stop] = _transform(torch.fft.rfft, u1)
                del u1
            out[:, g.positions] = g.lowpass(u1_hat).transpose(0, 1)  # u1_hat: (F1, B, .)
            children = self._children[g.k1]
            if not children:
                continue
            mirror = children[0].wavelets.mirror_image(u1_hat, self._mirrors[g.k1])
            for h in children:
                if h.all_rows:
                    parents, parents_mirror = u1_hat, mirror
                else:
                    parents = u1_hat.index_select(0, h.rows)
                    parents_mirror = mirror.index_select(0, h.rows)
                n2 = n1 >> h.k2
                for part in self._split(len(h.n1), examples * len(h.n2) * n2):
                    rows = slice(part.start, part.stop)
                    product = h.wavelets(parents[rows], parents_mirror[rows])
                    u2 = _modulus(_transform(torch.fft.ifft, product))
                    del product
                    s2 = h.lowpass(_transform(torch.fft.rfft, u2))  # (F2g, rows, B, frames)
                    del u2
                    out[:, h.positions[rows].ravel()] = s2.permute(2, 1, 0, 3).reshape(
                        examples, -1, self.n_frames)
        return out

    def _split(self, rows: int, bins_per_row: int) -> list[range]:
        # On the CPU, at most chunk_bins complex bins per tensor: the working set stays
        # in the allocator's reused heap rather than fresh pages (below).
        if self.chunk_bins is None:
            return [range(rows)]
        return _chunks(rows, max(2, self.chunk_bins // bins_per_row))

    def fft_calls(self, examples: int = 1) -> list[tuple[str, int, int]]:
        """Return the FFTs that one call on ``examples`` clips makes.

        Each entry is ``(kind, length, rows)``: ``kind`` is ``"c"`` for a complex
        transform, ``"r"`` for a real-input one (``rfft``). Recorded from a call on
        silence, so it is the pass's actual FFT work (the benchmarks' FFT floor).
        """
        _RECORD.calls = []
        try:
            with torch.no_grad():
                self(torch.zeros(examples, self.n_input, device=self.device, dtype=self.dtype))
            return list(_RECORD.calls)
        finally:
            _RECORD.calls = None

    def fft_flops(self, examples: int = 1) -> float:
        """Nominal FFT work of one call: ``5 N log2 N`` per complex FFT, half per real."""
        return sum(count * 5 * n * math.log2(n) * (0.5 if kind == "r" else 1.0)
                   for kind, n, count in self.fft_calls(examples) if n > 1)

    def bytes_per_example(self) -> int:
        """Return the peak working memory of one call per example, in bytes (batch sizing).

        What is alive at the worst moment: the input's padded signal, spectrum and
        mirror image; one level's first-order spectra (complex, half length) and their
        mirror image; and the largest group's product and inverse FFT (complex, 8 bytes
        a bin each, in float32). Slightly more than measured (``tests/test_batched.py``).
        """
        size = self.size
        base = 4 * size + 8 * (size // 2 + 1) + 8 * self.order1[0].wavelets.mirror
        peak = 0
        for g in self.order1:
            n1, rows = size >> g.k1, g.wavelets.filters
            level = 16 * rows * n1  # product, then its inverse FFT
            held = 8 * rows * (n1 // 2 + 1) + 8 * rows * self._mirrors.get(g.k1, 0)
            for h in self._children[g.k1]:
                n2 = n1 >> h.k2
                level = max(level, held + 16 * len(h.n1) * len(h.n2) * n2)
            peak = max(peak, level)
        return int(base + peak + 4 * self.n_paths * self.n_frames)
