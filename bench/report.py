"""BENCHMARKS.md and the growth plot, from the results `run_all.py` collects."""

from __future__ import annotations

import datetime

from common import fmt_time


def _ok(met: bool) -> str:
    return "met" if met else "**missed**"


def _err(section) -> str | None:
    if section is None:
        return "not run (an earlier step failed)"
    if isinstance(section, dict) and "error" in section:
        return "failed:\n\n```\n" + section["error"].strip() + "\n```"
    return None


def growth_plot(results: dict, path, plt) -> None:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    s3 = results.get("soart3")
    if s3 and "growth" in s3:
        n = [r["pairs"] for r in s3["growth"]]
        ax.loglog(
            n, [r["seconds"] for r in s3["growth"]], "o-", label="1. soart3 row-wise (SOART Lab)"
        )
        ax.loglog(
            n,
            [r["article_seconds_extrapolated"] for r in s3["growth"]],
            "o--",
            label="1. article's loop (calc_soaRT3, extrapolated)",
        )
    sl = results.get("slider")
    if sl and "growth" in sl:
        n = [r["pairs"] for r in sl["growth"]]
        ax.loglog(
            n,
            [r["seconds"] for r in sl["growth"]],
            "s-",
            label="3. slider move (transform + bin + figure + JSON)",
        )
        ax.loglog(
            n,
            [r["article_seconds"] for r in sl["growth"]],
            "s--",
            label="3. article's re-plot (plt.hist + PNG)",
        )
    kn = results.get("knn")
    if kn and "growth" in kn:
        n = [r["queries"] * r["references"] for r in kn["growth"]]
        ax.loglog(
            n, [r["seconds"] for r in kn["growth"]], "^-", label="4. kNN two-stage (soart3_knn)"
        )
        ax.loglog(
            n,
            [r["brute_seconds_extrapolated"] for r in kn["growth"]],
            "^--",
            label="4. kNN brute force (extrapolated)",
        )
    ax.set_xlabel("work: pairs scored (kNN: queries × references)")
    ax.set_ylabel("seconds (median)")
    ax.set_title("How each cost grows with its work (log-log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict, plot_name: str) -> str:
    m = results["machine"]
    out = [
        "# SOART Lab benchmarks",
        "",
        "Written by `make bench` (`bench/run_all.py`); every number below is from the run on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Each benchmark times SOART Lab "
        "and the article's way of doing the same work in the same process, one after "
        "the other; times are medians of repeats. Do not compare numbers across runs: the "
        "machine is shared and its load changes.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} |",
        f"| torch / numpy / python | {m['torch']} / {m['numpy']} / {m['python']} |",
        f"| torch intra-op threads | {m['torch_threads']} ({m.get('threads_note', '')}; override with BENCH_THREADS) |",
        f"| GPU | {'CUDA available' if m['cuda'] else 'none: no GPU in this task, everything ran on the CPU'} |",
        f"| load average (1/5/15 min) at start, end | {m['load_average']}; {m.get('load_average_end', '?')} |",
        f"| total run time | {results.get('total_seconds', 0):.0f} s |",
        "",
        f"![growth]({plot_name})",
        "",
        f"[Growth plot]({plot_name}): items 1, 3 and 4 at several sizes, log-log.",
        "",
    ]
    out += _summary(results)
    out += _soart3(results.get("soart3"))
    out += _histogram(results.get("histogram"))
    out += _slider(results.get("slider"))
    out += _knn(results.get("knn"))
    out += _training(results.get("training"))
    out += architectures(results.get("architectures"))
    out += _app(results.get("app"))
    out += _tune(results.get("tune"), results.get("tune_browser"))
    return "\n".join(out) + "\n"


def _summary(r: dict) -> list[str]:
    rows = [
        "## Targets",
        "",
        "Ratios against the article are medians of per-round ratios with both sides timed "
        "alternately in this run (`common.paired_ratio`), so that both see the same load; "
        "the tables further down time each side on its own. On this shared machine "
        "results move by up to 2× between runs with the load average shown above, so an "
        "item within 2× of its target can flip between runs.",
        "",
        "| item | measured | target | |",
        "|---|---|---|---|",
    ]
    s3 = r.get("soart3")
    if s3 and "main" in s3:
        x = s3["main"]["paired_speedup"]
        rows.append(
            f"| 1. soart3, 100k pairs vs the article's loop (timed alternately) | {x:.0f}× ({fmt_time(s3['main']['paired_seconds'])}) | ≥ 50× | {_ok(x >= 50)} |"
        )
    h = r.get("histogram")
    if h and "speedup" in h:
        rows.append(
            f"| 2. histogram pipeline vs the article (timed alternately) | {h['paired_speedup']:.1f}× end to end; {h['speedup_cached']:.0f}× with cached embeddings | ≥ 40× | {_ok(h['paired_speedup'] >= 40)} |"
        )
        rows.append(
            f"| 2. gamma agreement | max abs diff {h['max_abs_gamma_diff']:.1e} | ≤ 1e-4 | {_ok(h['max_abs_gamma_diff'] <= 1e-4)} |"
        )
    sl = r.get("slider")
    if sl and "main" in sl:
        t, p = sl["main"]["seconds"], sl["main"]["payload_bytes"]
        rows.append(f"| 3. slider move, 100k pairs | {fmt_time(t)} | ≤ 20 ms | {_ok(t <= 0.02)} |")
        rows.append(f"| 3. chart payload | {p / 1000:.1f} kB | ≤ 20 kB | {_ok(p <= 20_000)} |")
    k = r.get("knn")
    if k and "seconds" in k:
        mem = max(k["memory"]["after"], 0)
        agree = min(k["agreement_demo"]["top1"], k["agreement_clustered"]["top1"])
        rows.append(
            f"| 4. kNN 5k × 20k | {k['seconds']:.2f} s | ≤ 5 s | {_ok(k['seconds'] <= 5)} |"
        )
        rows.append(
            f"| 4. kNN peak memory (whole process RSS) | {mem / 2**20:.0f} MiB (search adds {k['memory']['delta'] / 2**20:.0f} MiB) | ≤ 1 GiB | {_ok(mem <= 2**30)} |"
        )
        rows.append(
            f"| 4. kNN top-1 agreement with brute force | {agree:.1%} | ≥ 99 % | {_ok(agree >= 0.99)} |"
        )
    t = r.get("training")
    if t and "ratio" in t:
        rows.append(
            f"| 5. epoch time SOART3 / Euclidean loss | {t['ratio']:.2f}× | ≤ 1.3× | {_ok(t['ratio'] <= 1.3)} |"
        )
    a = r.get("app")
    if a and "startup_seconds" in a:
        s = a["startup_seconds"]
        rows.append(
            f"| 6. app start to healthy | {'no answer' if s is None else f'{s:.1f} s'} | (measured) | |"
        )
    tn = r.get("tune")
    if tn and "move" in tn:
        t = tn["move"]["seconds"]
        rows.append(
            f"| 7. settled slider move with the loss's view, 100k pairs (server) | {fmt_time(t)} | ≤ 20 ms | {_ok(t <= 0.02)} |"
        )
        pv = tn["preview"]
        rows.append(
            f"| 7. Preview to its first histograms ({pv['steps']} steps) | {pv['seconds']:.1f} s | ≤ 5 s | {_ok(pv['seconds'] <= 5)} |"
        )
    tb = r.get("tune_browser")
    if tb and "live" in tb:
        live = tb["live"]
        rows.append(
            f"| 8. key press → changed chart in the browser, median (p90) | {live['median_ms']:.0f} ms ({live['p90_ms']:.0f} ms) | ≤ 100 ms | {_ok(live['median_ms'] <= 100)} |"
        )
    return rows + [""]


def _tune(t, b) -> list[str]:
    out = ["## 7. Tuning that trains: the loss's view and Preview", ""]
    if (e := _err(t)) is not None:
        out += [e, ""]
    else:
        m, pv = t["move"], t["preview"]
        out += [
            "With the live sliders the histograms are redrawn in the browser (item 8); when "
            "the user stops moving, the browser reports the values and the Tune page's "
            "fragment computes the loss's view (`tuning.loss_view`: pulled, pushed, loss) "
            "and sends the component's data again (fine bins, made once per sample).",
            "",
            "| pairs | loss's view per settled move | fine bins (once per sample) | component data JSON | its size |",
            "|---:|---:|---:|---:|---:|",
            f"| {m['pairs']:,} | {fmt_time(m['seconds'])} | {fmt_time(m['fine_bins_seconds'])} | "
            f"{fmt_time(m['payload_seconds'])} | {m['payload_bytes'] / 1000:.1f} kB |",
            "",
            f"Preview (`tuning.preview`, as the page's worker runs it) on the demo set's "
            f"untrained network with Suggest's transform: {pv['steps']} steps of "
            f"{pv['batch_size']} pairs in {pv['seconds']:.1f} s; loss {pv['first_loss']:.3f} → "
            f"{pv['last_loss']:.3f}, held-out ROC AUC {pv['auc_before']:.3f} → "
            f"{pv['auc_after']:.3f} ({pv['outcome']}). Its result carries the histograms the "
            "page draws, so this is the time to the first histogram.",
            "",
        ]
    out += ["## 8. A slider step as the browser sees it", ""]
    if (e := _err(b)) is not None:
        return out + [e, ""]
    out += [
        "Headless Chromium (Playwright) on a fresh `streamlit run app.py`, demo set, "
        f"{b['pairs']:,} pairs: from the key event's time stamp to just after the first "
        "frame rendered with the changed after-tune chart (`bench/bench_tune_browser.py`).",
        "",
        "| path | steps | median | p90 | min | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("live", "live sliders (component, re-binned in the browser)"),
        ("server", "server-drawn (`st.slider` → fragment rerun → Plotly)"),
    ):
        x = b[name]
        out.append(
            f"| {label} | {x['steps']} | {x['median_ms']:.0f} ms | {x['p90_ms']:.0f} ms | "
            f"{x['min_ms']:.0f} ms | {x['max_ms']:.0f} ms |"
        )
    return out + [""]


def _soart3(s) -> list[str]:
    out = ["## 1. SOART3 row-wise scoring (128-d float32 pairs)", ""]
    if (e := _err(s)) is not None:
        return out + [e, ""]
    bw = s["bandwidth"]
    out += [
        f"The article's loop (`calc_soaRT3`: `np.dot` + two `scipy.spatial.distance.minkowski` per pair, "
        f"Python loop) timed on {s['article_subsample']:,} pairs: **{s['article_per_pair_s'] * 1e6:.1f} µs per pair**. "
        f"SOART Lab's `soart3` agrees with it to {s['max_abs_gamma_diff_vs_article']:.1e} in gamma "
        "(the article rounds to 5 decimals).",
        "",
        f"Memory bandwidth measured here: copy {bw['copy_gbs']:.1f} GB/s, add {bw['add_gbs']:.1f} GB/s "
        f"(256 MiB float32 buffers, bytes moved / time); the limit used is {s['bandwidth_limit_gbs']:.1f} GB/s. "
        "soart3 must at least read both inputs once: 2 · N · 128 · 4 bytes (102.4 MB at 100k pairs).",
        "",
        "| pairs | soart3 | pairs/s | article's loop (extrap.) | speed-up | GB/s read | of bandwidth limit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g in s["growth"]:
        out.append(
            f"| {g['pairs']:,} | {fmt_time(g['seconds'])} | {g['pairs_per_s'] / 1e6:.2f} M | "
            f"{fmt_time(g['article_seconds_extrapolated'])} | {g['speedup']:.0f}× | {g['gbs']:.2f} | {g['bandwidth_fraction']:.0%} |"
        )
    return out + [""]


def _histogram(h) -> list[str]:
    out = ["## 2. The article's histogram pipeline", ""]
    if (e := _err(h)) is not None:
        return out + [e, ""]
    return out + [
        f"{h['pairs']:,} random pairs from {h['samples']:,} demo samples (36×39), same weights "
        "(a SOART Lab state_dict loaded into the article's classes).",
        "",
        "| path | time | speed-up |",
        "|---|---:|---:|",
        f"| article: per pair, embed each sample alone + `calc_soaRT3` | {fmt_time(h['article_seconds'])} | 1× |",
        f"| SOART Lab: `embed` all {h['samples']:,} in batch, gather, `soart3`, transform | {fmt_time(h['soartlab_seconds'])} | {h['speedup']:.1f}× |",
        f"| … of which the batch embedding | {fmt_time(h['soartlab_embed_seconds'])} | |",
        f"| SOART Lab embedding only the {h['samples_used']:,} samples the pairs use | {fmt_time(h['soartlab_sampled_seconds'])} | {h['speedup_sampled']:.1f}× |",
        f"| SOART Lab with cached embeddings (Tune page re-draw) | {fmt_time(h['soartlab_cached_seconds'])} | {h['speedup_cached']:.0f}× |",
        "",
        f"Gamma agreement: max |article − SOART Lab| = {h['max_abs_gamma_diff']:.1e} (target 1e-4).",
        "",
        "What limits the end-to-end figure: the batch embedding is a dense MLP "
        "(1404→512→256→256→128, 1.77 MFLOP per sample) over all 5,000 samples; the article "
        "embeds only the ≈4,000 it draws, one at a time. Per sample the article pays a "
        "matrix-vector product (memory-bound on the 3.5 MB of weights) plus Python and "
        "autograd overhead; batching turns it into a compute-bound matrix product, which "
        "on 2 cores is only several times faster per sample, not 40×. What would close the "
        "gap: embed only the sampled indices (≈2,750 unique of 5,000), keep the embeddings "
        "cached across re-draws (the Tune page does; see the cached row), or run the "
        "embedding on a GPU. At 1.77 MFLOP per sample the batch embedding here already "
        "runs near the core's matrix throughput, so on this CPU no float32 path reaches 40× "
        "end to end; bfloat16 (AMX) would, but would break the 1e-4 agreement.",
        "",
    ]


def _slider(s) -> list[str]:
    out = ["## 3. A slider move on the Tune page (server-drawn path)", ""]
    if (e := _err(s)) is not None:
        return out + [e, ""]
    out += [
        'What the Tune page\'s fragment runs with "Live in the browser" off: cached raw '
        "gammas → `GammaTransform` → "
        "`plots.before_after_histograms` (both panels re-binned, 40 bins, sized as on the page) "
        "→ the JSON `st.plotly_chart` sends (`fig.to_dict()`, serialised without "
        "re-validation). The whole fragment also computes the loss's view "
        "(`tuning.loss_view`; the raw side's separation report is kept with the sample, "
        "as scale and offset cannot change it). The article "
        "instead re-draws `plt.hist` of the raw lists with matplotlib (timed here rendered "
        "to PNG).",
        "",
        "| pairs | before/after figure + JSON | its JSON | whole fragment (+ loss's view) | single `pair_histogram` | its JSON | article `plt.hist` → PNG |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g in s["growth"]:
        out.append(
            f"| {g['pairs']:,} | {fmt_time(g['seconds'])} | {g['payload_bytes'] / 1000:.1f} kB | "
            f"{fmt_time(g.get('fragment_seconds', float('nan')))} | "
            f"{fmt_time(g['single_seconds'])} | {g['single_payload_bytes'] / 1000:.1f} kB | {fmt_time(g['article_seconds'])} |"
        )
    out += [
        "",
        "The payload stays flat (bars, not points; most of it is Plotly's default template). "
        "The figure's layout (subplots, axis titles, threshold, floor and margin lines) is "
        "built through Plotly's validated API once and cached as JSON in `soartlab.plots`; "
        "each move only bins in NumPy and fills in the four bar traces and the lines as "
        "plain dicts "
        "(a test checks the result equals the validated figure). Before this, building the "
        "validated figure (`make_subplots`, `add_vline`, `update_layout`) took 60–140 ms per "
        "move at any size. What remains per move is NumPy binning (grows with pairs), "
        "`fig.to_dict()` and JSON encoding (flat); the loss's view adds about a "
        "millisecond (item 7). What the browser adds on top — the round trip, the rerun "
        "and Plotly's redraw — is item 8.",
        "",
    ]
    return out


def _knn(k) -> list[str]:
    out = ["## 4. kNN under SOART3 gamma (5,000 queries × 20,000 references, 128-d)", ""]
    if (e := _err(k)) is not None:
        return out + [e, ""]
    d, c = k["agreement_demo"], k["agreement_clustered"]
    out += [
        "Embeddings: the demo set (25,000 samples) through the SOART3-trained model of item 5. "
        "`soartlab.search.soart3_knn(Q, R, k=1)`: prefilter by two matmul-computed scores of "
        "the residual `y − beta·x` (its L2 size, and gamma's ratio with `||r||₄` expanded "
        f"exactly and `||r||₁` estimated), {k['candidates']} candidates by each, then exact "
        "SOART3 re-ranking. Brute force: every pair through `soart3_pairwise` (chunked), timed "
        f"on {d['queries']} queries and extrapolated per pair.",
        "",
        "| | time | speed-up |",
        "|---|---:|---:|",
        f"| brute force (extrapolated) | {fmt_time(k['brute_seconds_extrapolated'])} | 1× |",
        f"| two-stage `soart3_knn` | {fmt_time(k['seconds'])} | {k['speedup']:.0f}× |",
        "",
        f"Peak memory of a fresh process running only the search: max RSS {k['memory']['after'] / 2**20:.0f} MiB "
        f"(torch and the data included); the search itself raised it by {k['memory']['delta'] / 2**20:.0f} MiB "
        f"(search alone there: {k['memory']['seconds']:.2f} s).",
        "",
        "| data | queries checked | top-1 agreement | top-5 overlap |",
        "|---|---:|---:|---:|",
        f"| demo-set embeddings | {d['queries']} | {d['top1']:.1%} | {d['top5_overlap']:.1%} |",
        f"| clustered synthetic (8 clusters, gain 0.7–1.3, noise 0.3) | {c['queries']} | {c['top1']:.1%} | {c['top5_overlap']:.1%} |",
        "",
        "Choosing the candidate count: with the L2 size score alone the true nearest neighbour "
        "ranked ≤ 6th on demo embeddings but up to ~370th of 2,000 on Gaussian and clustered "
        "data (there all residuals are alike in size and gamma ranks by their shape); the "
        "estimated-gamma score alone ranks it well there (≤ 80th) but loses precision to "
        "cancellation on the demo embeddings (residuals small next to the vectors). The union "
        "of 32 by each held the true neighbour for ≥ 99.7 % of queries on all four data sets "
        "tried (tests/test_search.py checks ≥ 99 %).",
        "",
        "| queries × references | two-stage | brute force (extrap.) |",
        "|---|---:|---:|",
    ]
    for g in k["growth"]:
        out.append(
            f"| {g['queries']:,} × {g['references']:,} | {fmt_time(g['seconds'])} | {fmt_time(g['brute_seconds_extrapolated'])} |"
        )
    out += [
        "",
        "What limits the two-stage time: the prefilter, not the re-ranking (≤ 64 pairs per "
        "query): four matrix products (`addmm`, `@`), about 20 elementwise passes over each "
        "(queries × references) score tile, and `torch.topk` over every full row of 20,000 "
        "scores (twice per query). cProfile of the search for 1,000 of the queries, by own time:",
        "",
        "| function | calls | own time | share |",
        "|---|---:|---:|---:|",
    ]
    for p in k.get("profile_1000_queries", []):
        out.append(
            f"| `{p['function']}` | {p['calls']} | {fmt_time(p['seconds'])} | {p['share']:.0%} |"
        )
    out += [
        "",
        "(`_candidates` own time is its inline `@`, `*`, `+` operators.) What would close a "
        "gap: a selection cheaper than `topk` over whole rows (keep a running per-row "
        "threshold across tiles and only select among scores below it), one fused kernel for "
        "the prefilter's elementwise passes (`torch.compile` or C++), both cores free (the "
        "run above shows the load average; with intra-op threads on a busy machine each small "
        "op waits for both threads to be scheduled), or a GPU, where the four products and the "
        "passes are a few ms.",
        "",
    ]
    return out


def _training(t) -> list[str]:
    out = ["## 5. Training: SOART3 loss vs Euclidean loss", ""]
    if (e := _err(t)) is not None:
        return out + [e, ""]
    out += [
        f"Same pairs ({t['pairs_per_epoch']:,} per epoch, batch {t['batch']}), same initial "
        "weights, Adam; the Trainer's per-step work (gather, SiameseNet forward, "
        "`ContrastiveLoss`, backward, step) without the held-out evaluation. "
        f"Device: CPU, {t['threads']} threads. **No GPU is available in this task**; "
        "GPU figures are not measured.",
        "",
        "| loss | epoch | pairs / s |",
        "|---|---:|---:|",
        f"| Euclidean (article's Siamese-128) | {fmt_time(t['euclidean']['epoch_seconds'])} | {t['euclidean']['pairs_per_s']:,.0f} |",
        f"| SOART3 gamma + transform | {fmt_time(t['soart3']['epoch_seconds'])} | {t['soart3']['pairs_per_s']:,.0f} |",
        f"| ratio | {t['ratio']:.2f}× | target ≤ 1.3× |",
        "",
        "torch.profiler, 5 SOART3 steps, top operators by self CPU time (per step):",
        "",
        "| op | self ms / step | share |",
        "|---|---:|---:|",
    ]
    for p in t["profile_soart3"]:
        out.append(f"| `{p['op']}` | {p['self_ms']:.2f} | {p['share']:.0%} |")
    out += [
        "",
        "The MLP's matrix products (`mm`, `addmm`) dominate either loss; SOART3 adds a "
        "handful of small elementwise ops on a (128, 128) residual (dot products, residual, "
        "abs, two norms, log1p) and their backward. Their FLOPs are negligible next to the "
        "MLP; their cost is per-op dispatch, which weighs most when the machine is loaded. "
        "What would close a gap: a fused SOART3 forward/backward (`torch.compile` or a custom "
        "autograd Function computing both norms in one pass), or larger batches.",
        "",
    ]
    return out


def architectures(a) -> list[str]:
    """Section 5b: the cnn's training epoch beside the mlp's (bench_architectures.py)."""
    out = ["## 5b. Training: the cnn beside the mlp", ""]
    if (e := _err(a)) is not None:
        return out + [e, ""]
    load = ", ".join(f"{v:.1f}" for v in a["load_average"])
    out += [
        f"Demo set (36×39), {a['pairs_per_epoch']:,} pairs per epoch, batch {a['batch']}, "
        "through `Trainer.train_epoch` (augmentation, forward, SOART3 loss, backward, AdamW), "
        f"rounds alternating between the networks. Device: {a['device']}, {a['threads']} "
        f"threads, load average {load} when it ended.",
        "",
        "| network | epoch | pairs / s | epoch / mlp's (median of rounds) |",
        "|---|---:|---:|---:|",
        f"| mlp (article's) | {fmt_time(a['mlp']['epoch_seconds'])} | {a['mlp']['pairs_per_s']:,.0f} | 1 |",
        f"| cnn | {fmt_time(a['cnn']['epoch_seconds'])} | {a['cnn']['pairs_per_s']:,.0f} | {a['cnn_over_mlp']:.1f}× |",
        f"| cnn + every augmentation | {fmt_time(a['cnn_augmented']['epoch_seconds'])} | {a['cnn_augmented']['pairs_per_s']:,.0f} | {a['cnn_augmented_over_mlp']:.1f}× |",
        "",
    ]
    return out


def _app(a) -> list[str]:
    out = ["## 6. The app", ""]
    if (e := _err(a)) is not None:
        return out + [e, ""]
    if "skipped" in a:
        return out + [f"Skipped: {a['skipped']}.", ""]
    s = a["startup_seconds"]
    out += [
        "`streamlit run app.py --server.headless true --server.address 127.0.0.1` to "
        f"`/_stcore/health` answering `ok`: **{'no answer in 120 s' if s is None else f'{s:.2f} s'}**.",
        "",
        "Page renders with `streamlit.testing.v1.AppTest` on the demo set (switch to the "
        "page and run; median of 3; no trained run in the fresh run store):",
        "",
        "| page | render |",
        "|---|---:|",
    ]
    for page, value in a["pages"].items():
        out.append(f"| {page} | {fmt_time(value) if isinstance(value, float) else value} |")
    return out + [""]
