"""2. The article's histogram pipeline against SOART Lab's.

Seed: 2,000 random pairs from 5,000 samples of 36×39; each pair's two samples embedded
one at a time through the article's EmbeddingNet (`get_embedding(...).data.cpu().numpy()`,
no `no_grad`, as the article wrote it), scored with `calc_soaRT3`, transformed with
`max(0.5·gamma − 0.25, 0)` and split into matched / unmatched.

SOART Lab: `evaluation.embed` once in batch (all 5,000 samples), gather the pairs,
`soart3` row-wise, `GammaTransform`. Timed also with the embeddings already cached, which
is what the Tune page does when it re-draws. Both use the same weights; gamma must agree
to 1e-4.
"""

from __future__ import annotations

import numpy as np
import torch
from article_way import EmbeddingNet as ArticleEmbeddingNet
from article_way import SiameseNet as ArticleSiameseNet
from article_way import calc_soaRT3
from common import paired_ratio, timed

from soartlab.evaluation import embed
from soartlab.metric import soart3
from soartlab.models import build_model
from soartlab.transform import ARTICLE_TRANSFORM, GammaTransform

N_SAMPLES = 5_000
N_PAIRS = 2_000


def article_pipeline(model, images: torch.Tensor, labels: np.ndarray, i: np.ndarray, j: np.ndarray):
    arr_gamma, matched, unmatched = [], [], []
    for a, b in zip(i, j, strict=True):
        tsr_sig_array = torch.unsqueeze(images[a], 1)
        tsr_tani_array = torch.unsqueeze(images[b], 1)
        embedding_sig_array = model.get_embedding(tsr_sig_array).data.cpu().numpy()
        embedding_tani_array = model.get_embedding(tsr_tani_array).data.cpu().numpy()
        _, _, log_gamma = calc_soaRT3(embedding_sig_array[0], embedding_tani_array[0])
        arr_gamma.append(log_gamma)
        target = max([0.5 * log_gamma - 0.25, 0.0])
        (matched if labels[a] == labels[b] else unmatched).append(target)
    return np.array(arr_gamma), matched, unmatched


def soartlab_histogram_data(emb: np.ndarray, labels, i, j, transform: GammaTransform):
    _, _, gamma = soart3(emb[i], emb[j])
    distance = transform(gamma)
    same = labels[i] == labels[j]
    return gamma, distance[same], distance[~same]


def run(images: np.ndarray, labels: np.ndarray, model=None) -> dict:
    images, labels = images[:N_SAMPLES], labels[:N_SAMPLES]
    if model is None:
        torch.manual_seed(0)
        model = build_model()
    article_model = ArticleSiameseNet(ArticleEmbeddingNet())
    article_model.load_state_dict(model.state_dict())  # SOART Lab checkpoints load unchanged
    article_model.eval()
    model.eval()
    rng = np.random.default_rng(0)
    i = rng.integers(N_SAMPLES, size=N_PAIRS)
    j = rng.integers(N_SAMPLES, size=N_PAIRS)
    images_t = torch.from_numpy(images)
    flat = images.reshape(len(images), -1)
    transform = ARTICLE_TRANSFORM

    article_seconds = timed(
        lambda: article_pipeline(article_model, images_t, labels, i, j), repeats=3
    )
    article_gamma, _, _ = article_pipeline(article_model, images_t, labels, i, j)

    def full():
        emb = embed(model, flat)
        return soartlab_histogram_data(emb, labels, i, j, transform)

    full_seconds = timed(full, repeats=5)
    paired = paired_ratio(lambda: article_pipeline(article_model, images_t, labels, i, j), full, 5)

    def sampled_only():
        used, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
        emb = embed(model, flat[used])
        local_i, local_j = inverse[:N_PAIRS], inverse[N_PAIRS:]
        return soartlab_histogram_data(emb, labels[used], local_i, local_j, transform)

    sampled_seconds = timed(sampled_only, repeats=5)
    n_used = len(np.unique(np.concatenate([i, j])))
    emb = embed(model, flat)
    cached_seconds = timed(
        lambda: soartlab_histogram_data(emb, labels, i, j, transform), repeats=20
    )
    gamma, _, _ = full()
    embed_seconds = timed(lambda: embed(model, flat), repeats=5)
    return {
        "pairs": N_PAIRS,
        "samples": N_SAMPLES,
        "article_seconds": article_seconds,
        "soartlab_seconds": full_seconds,
        "soartlab_embed_seconds": embed_seconds,
        "soartlab_cached_seconds": cached_seconds,
        "soartlab_sampled_seconds": sampled_seconds,
        "samples_used": n_used,
        "speedup_sampled": article_seconds / sampled_seconds,
        "speedup": article_seconds / full_seconds,
        "paired_speedup": paired["ratio"],
        "speedup_cached": article_seconds / cached_seconds,
        "max_abs_gamma_diff": float(np.max(np.abs(article_gamma - gamma))),
    }


if __name__ == "__main__":
    import json

    from common import demo_arrays

    X, y = demo_arrays(N_SAMPLES)
    print(json.dumps(run(X, y), indent=2))
