"""Latency of the FastSwitch dataflow (paper Sec. 3) over a sequence of subnet queries.

Loop nest of one layer (weights stationary, Sec. 3.1; buffers of Sec. 3.2)::

    for kt in K tiles (T_K kernels):
      for st in spatial tiles (o_x x o_y outputs from a T_X x T_Y iAct tile):
        for ct in C tiles (T_C channels):        # iAct tile (ct, st) -> SB, weight tile (kt, ct) -> DB
          for kg in groups of K_p kernels of kt:  # DPE rows share the SB stream: multi-kernel reuse
            DPE array: K_p kernels x Y_p sliding windows per cycle, LB feeds the windows
            outputs accumulate in OB (over channels and over the R x S / packed-channel passes)

Terms (each per layer, cycles at the accelerator clock):

* compute = kgroups * cpasses * H_out * ycols: ``kgroups`` = sum over K tiles of
  ceil(t_k / K_p) (array rows), ``ycols`` = per output row, sum over column tiles of
  ceil(o_y / Y_p) (array columns), ``cpasses`` = DPE passes per output over the channels: a
  DPE takes 9 products per cycle, i.e. one 3x3 window of one channel; a 1x1 kernel packs 9
  channels into the 9 lanes; larger kernels (the 7x7 stem) split into ceil(R/3) ceil(S/3)
  3x3 pieces accumulated in OB. So compute >= MACs / (9 K_p Y_p): no design beats its bound.
* iAct bytes = n_kt * C * rows * cols * DW/8: each iAct tile, halo rows included
  ((o_x-1) stride + R rows per tile), is streamed into the SB once per K tile (Sec. 3.2.2).
* weight bytes = (weights not in the PB) * reload * DW/8: the DB holds one (T_K, T_C)
  weight tile (Table 2). With one C tile the tile stays in the DB for all spatial tiles
  (weight reuse over iAct tiles, Fig. 2b); with several C tiles it is fetched again for every
  spatial tile (reload = n_spatial). PB weights are never fetched (Sec. 3.2.1).
* oAct bytes = K H_out W_out DW/8 (final outputs, once); partial sums: when C > T_C, every
  C tile but the last writes the OB's partial sums off chip and every one but the first reads
  them back, 2 (n_ct - 1) K H_out W_out ODW/8 (Fig. 2c).
* overlap: DB and SB are double-buffered, so transfers hide behind compute and the layer takes
  max(compute, bytes / (bytes per cycle)) plus the first weight and iAct tile, which nothing
  can hide (the pipeline fill).

A query of the sequence is one inference of its subnet; its switching cost is the weight
traffic (only the weights not on chip are fetched). Baseline = the same design with no PB
(temporal switching); spatial switching = a PB holding every weight of the sequence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .template import DPE_SIZE, KERNEL, AcceleratorDesign, ceil_div
from .workload import ConvWork, PersistentPlan, Workload, pb_plan


def layer_terms(layer: ConvWork, kp, yp, tk, tc, tx, ty, dw, odw, batch: int = 1):
    """(compute cycles, weight reload factor, activation bytes, fill bytes) of ``layer``; arrays broadcast.

    ``batch`` inputs of one query run back to back as more spatial tiles: compute and activations
    scale with it; weights are fetched once per batch when the layer has one C tile (they stay in
    the DB), else once per spatial tile of every input."""
    K, C, Ho, Wo, s = layer.out_channels, layer.in_channels, layer.out_h, layer.out_w, layer.stride
    kh, kw = layer.kernel_h, layer.kernel_w
    rs = kh * kw
    pack = DPE_SIZE // rs if rs < DPE_SIZE else 1
    pieces = ceil_div(kh, KERNEL) * ceil_div(kw, KERNEL)
    tk_e, tc_e = np.minimum(tk, K), np.minimum(tc, C)
    kgroups = (K // tk_e) * ceil_div(tk_e, kp) + ceil_div(K % tk_e, kp)
    cpasses = pieces * ((C // tc_e) * ceil_div(tc_e, pack) + ceil_div(C % tc_e, pack))
    ox = np.clip((np.asarray(tx) - kh) // s + 1, 1, Ho)
    oy = np.clip((np.asarray(ty) - kw) // s + 1, 1, Wo)
    ycols = (Wo // oy) * ceil_div(oy, yp) + ceil_div(Wo % oy, yp)
    compute = kgroups * cpasses * Ho * ycols * batch
    n_kt, n_ct = ceil_div(K, tk_e), ceil_div(C, tc_e)
    n_xt, n_yt = ceil_div(Ho, ox), ceil_div(Wo, oy)
    rows_tile, cols_tile = (ox - 1) * s + kh, (oy - 1) * s + kw
    iact = n_kt * C * (n_xt * rows_tile) * (n_yt * cols_tile) * dw / 8 * batch
    outputs = K * Ho * Wo * batch
    act = iact + outputs * dw / 8 + 2 * (n_ct - 1) * outputs * odw / 8
    reload = np.where(n_ct > 1, n_xt * n_yt * batch, 1)
    fill = (tk_e * tc_e * rs + tc_e * rows_tile * cols_tile) * dw / 8
    return compute, reload, act, fill


def unique_layers(workload: Workload) -> Counter:
    """Layer instances of all queries, merged where shape and weight region are identical."""
    return Counter(_key(layer) for subnet in workload.queries for layer in subnet.layers)


def _key(layer: ConvWork) -> ConvWork:
    # The graph node name does not change the cost; identical shape + region => identical terms.
    return ConvWork("", layer.param, layer.in_channels, layer.out_channels, layer.in_h, layer.in_w, layer.out_h,
                    layer.out_w, layer.kernel_h, layer.kernel_w, layer.stride, layer.box)


@dataclass
class Evaluation:
    """Totals over the query sequence (cycles and bytes); arrays when evaluated over a grid."""

    latency: np.ndarray
    compute: np.ndarray
    weight_exposed: np.ndarray  # cycles where the array waits for weights (switching/loading)
    act_exposed: np.ndarray  # cycles waiting for iActs / oActs / partial sums
    weight_bytes: np.ndarray  # weights fetched off chip
    act_bytes: np.ndarray
    clock_mhz: float = 300.0
    per_query: list = field(default_factory=list)

    def ms(self, cycles) -> np.ndarray:
        return np.asarray(cycles) / (self.clock_mhz * 1e3)

    def to_dict(self) -> dict:
        out = {k: float(getattr(self, k)) for k in ("latency", "compute", "weight_exposed", "act_exposed",
                                                        "weight_bytes", "act_bytes")}
        out.update({f"{k}_ms": float(self.ms(getattr(self, k))) for k in ("latency", "compute", "weight_exposed",
                                                                           "act_exposed")})
        return out


def evaluate_arrays(workload: Workload, plan: PersistentPlan | None, kp, yp, tk, tc, tx, ty, pb_elements,
                    dw: int, odw: int, bytes_per_cycle: float, dtype=np.float64, overlap: bool = True,
                    batch: int = 1) -> Evaluation:
    """The model over broadcast design arrays. ``overlap=False`` models single-buffered DB/SB: a
    tile's transfer and its compute take turns, so the layer takes compute + transfer."""
    counts = unique_layers(workload)
    shape = np.broadcast_shapes(*(np.shape(a) for a in (kp, yp, tk, tc, tx, ty, pb_elements)))
    total = np.zeros(shape, dtype)
    compute_t, wexp, aexp, wbytes, abytes = (np.zeros(shape, dtype) for _ in range(5))
    buf = np.empty(shape, dtype)
    inv_bpc = 1.0 / bytes_per_cycle
    for layer, mult in counts.items():
        compute, reload, act, fill = layer_terms(layer, kp, yp, tk, tc, tx, ty, dw, odw, batch)
        onchip = plan.onchip_elements(layer, pb_elements) if plan is not None else 0.0
        offchip_w = (layer.weight_elements - np.asarray(onchip)) * (dw / 8)
        w = (offchip_w * reload).astype(dtype, copy=False)
        a = np.asarray(act, dtype)
        c = np.asarray(compute, dtype)
        np.add(w, a, out=buf)
        buf *= inv_bpc  # transfer cycles
        lat = (np.maximum(buf, c) if overlap else buf + c) + np.asarray(fill, dtype) * inv_bpc
        exposed = lat - c
        share = np.divide(w, w + a, out=np.zeros(shape, dtype), where=(w + a) > 0)
        total += mult * lat
        compute_t += mult * c
        wexp += mult * exposed * share
        aexp += mult * exposed * (1 - share)
        wbytes += mult * w
        abytes += mult * a
    return Evaluation(total, compute_t, wexp, aexp, wbytes, abytes)


def fast_latency(workload: Workload, plan: PersistentPlan | None, kp, yp, tk, tc, tx, ty, pb_elements,
                 dw: int, odw: int, bytes_per_cycle: float, dtype=np.float32, active=None, batch: int = 1,
                 overlap: bool = True) -> np.ndarray:
    """Latency only (the DSE's inner loop); equal to ``evaluate_arrays(...).latency``.

    Per layer, max(C, A + W) + F = A + W + F + max(D - W, 0) with D = C - A: compute C, activation
    cycles A and fill F do not depend on the PB size; weight cycles W = R f are (reload R on the
    tile axes) x (off-chip weights f on the PB axis). Only max(D - W, 0) needs the full grid, and
    only in blocks (one DPE-array size each: the first two axes) where its sign is mixed; elsewhere
    it is 0 or D - W, which add up on small arrays. ``active`` (bool over the first two axes) skips
    the full pass for blocks the caller will discard (no design in them fits the part); their
    latencies are then not meaningful. ``overlap=False`` (single-buffered): every layer is C + A + W + F,
    a sum of sub-grid terms with no full-grid pass at all."""
    counts = unique_layers(workload)
    grid = [np.asarray(a) for a in (kp, yp, tk, tc, tx, ty, pb_elements)]
    if len({a.ndim for a in grid if a.ndim}) > 1 or max(a.ndim for a in grid) < 3:
        grid = [a.reshape((1,) * (3 - a.ndim) + a.shape) if a.ndim < 3 else a for a in grid]
    shape = np.broadcast_shapes(*(a.shape for a in grid))
    nd, lead = len(shape), shape[:2]
    kp, yp, tk, tc, tx, ty, pb_elements = grid

    def full_rank(x):
        x = np.asarray(x, dtype)
        return x.reshape((1,) * (nd - x.ndim) + x.shape)

    total = np.zeros(shape, dtype)
    lin = None  # sum of A + F (+ D in compute-bound blocks): no PB axis
    wacc = None  # sum of W (- W in compute-bound blocks): no T_K axis
    inv_bpc = 1.0 / bytes_per_cycle
    inner = tuple(range(2, nd))
    for layer, mult in counts.items():
        compute, reload, act, fill = layer_terms(layer, kp, yp, tk, tc, tx, ty, dw, odw, batch)
        onchip = plan.onchip_elements(layer, pb_elements) if plan is not None else 0.0
        f = (layer.weight_elements - np.asarray(onchip, np.float64)) * (mult * dw / 8 * inv_bpc)
        w = full_rank(reload * f)
        a = act * (mult * inv_bpc)
        d = full_rank(compute * mult - a)
        d = np.broadcast_to(d, lead + d.shape[2:])
        part_lin = full_rank(a + fill * (mult * inv_bpc))
        if lin is None:
            lin = np.zeros(np.broadcast_shapes(d.shape, part_lin.shape), dtype)
            wacc = np.zeros(lead + w.shape[2:], dtype)
        lin += part_lin
        wacc += w
        if not overlap:
            lin += d + full_rank(a)  # C = D + A
            continue
        w_min, w_max = float(w.min()), float(w.max())
        d_min, d_max = d.min(axis=inner), d.max(axis=inner)
        if active is not None:
            d_max = np.where(active, d_max, -np.inf)  # inactive blocks take the cheap memory-bound branch
        w_b = w[0, 0]
        # Blocks gathered with one fancy index per case (each (K_p, Y_p) block at most once, so += is safe).
        bound = np.nonzero(d_min >= w_max)  # compute-bound: A + W + (D - W) = A + D
        if bound[0].size:
            lin[bound] += d[bound]
            wacc[bound] -= w_b
        mixed = np.nonzero((d_min < w_max) & (d_max > w_min))  # mixed: one pass over those blocks
        if mixed[0].size:
            total[mixed] += np.maximum(d[mixed] - w_b, 0)
        # memory-bound blocks: A + W, already in lin and wacc
    total += lin
    total += wacc
    return total


def evaluate(design: AcceleratorDesign, workload: Workload, policy: str = "most-used",
             plan: PersistentPlan | None = None, per_query: bool = False) -> Evaluation:
    """One design on the workload's query sequence; the PB (``design.pb_bytes``) filled by ``policy``."""
    d = design
    if plan is None and d.pb_bytes > 0:
        plan = pb_plan(workload, policy)
    pb_elements = d.pb_bytes * 8 // d.dw
    args = (d.kp, d.yp, d.tk, d.tc, d.tx, d.ty, pb_elements, d.dw, d.odw, d.bytes_per_cycle)
    result = evaluate_arrays(workload, plan, *args, overlap=d.double_buffer, batch=d.batch)
    result.clock_mhz = d.clock_mhz
    if per_query:
        for i in workload.trace:
            single = evaluate_arrays(workload.with_trace([i]), plan, *args, overlap=d.double_buffer, batch=d.batch)
            result.per_query.append({"subnet": workload.subnets[i].name, **single.to_dict()})
    return result


def compute_bound(design: AcceleratorDesign, workload: Workload) -> float:
    """Cycles if every multiplier did useful work every cycle: MACs / (9 K_p Y_p)."""
    return sum(s.macs for s in workload.queries) * design.batch / (DPE_SIZE * design.kp * design.yp)


def switching_report(design: AcceleratorDesign, workload: Workload) -> dict:
    """Temporal baseline (no PB), FastSwitch with each PB policy at ``design.pb_bytes``, and spatial
    switching (a PB holding every weight of the sequence), all on the same array and tiles."""
    base = design.replace(pb_bytes=0)
    report = {"baseline": evaluate(base, workload).to_dict()}
    for policy in ("smallest", "most-used"):
        report[policy] = evaluate(design, workload, policy).to_dict()
    union_bytes = workload.union_elements() * design.dw // 8
    report["spatial"] = {**evaluate(design.replace(pb_bytes=union_bytes), workload, "most-used").to_dict(),
                         "pb_bytes": union_bytes}
    return report
