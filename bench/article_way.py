"""The article's own code, as it wrote it: its model classes and its per-pair SOART3.

The one copy of it in the project. The benchmarks time SOART Lab against it, and the
tests load SOART Lab checkpoints into these classes (``from bench.article_way import ...``)
to check that they fit unchanged.
"""

import math

import numpy as np
import torch.nn as nn
from scipy.spatial.distance import minkowski


class EmbeddingNet(nn.Module):
    def __init__(self):
        super(EmbeddingNet, self).__init__()  # noqa: UP008
        self.linear1 = nn.Linear(36 * 39, 512)  # 36 * 39 is the pixels for each image
        self.linear2 = nn.Linear(512, 256)
        self.linear3 = nn.Linear(256, 256)
        self.final = nn.Linear(256, 128)
        self.relu = nn.ReLU()

    def forward(self, img):  # convert + flatten
        x = img.view(-1, 36 * 39)
        x = self.relu(self.linear1(x))
        x = self.relu(self.linear2(x))
        x = self.relu(self.linear3(x))
        x = self.final(x)
        return x

    def get_embedding(self, x):
        return self.forward(x)


class SiameseNet(nn.Module):
    def __init__(self, embedding_net):
        super(SiameseNet, self).__init__()  # noqa: UP008
        self.embedding_net = embedding_net

    def forward(self, x1, x2):
        output1 = self.embedding_net(x1)
        output2 = self.embedding_net(x2)
        return output1, output2

    def get_embedding(self, x):
        return self.embedding_net(x)


def calc_soaRT3(tsr_sig_array, tsr_tani_array):  # noqa: N802 - the article's name
    """The article's per-pair SOART3 (np.dot + scipy minkowski), unchanged."""
    y = tsr_sig_array
    x = tsr_tani_array
    xx = np.dot(x, x) + 0.0001
    xy = np.dot(x, y) + 0.0001
    beta = xy / xx
    vDistance = minkowski(y, beta * x, 4)  # noqa: N806
    mDistance = minkowski(y, beta * x, 1)  # noqa: N806
    log_beta = beta
    log_yita = math.log(mDistance + 1.0)
    log_gamma = log_yita - math.log(vDistance + 1.0)
    return round(log_beta, 5), round(log_yita, 5), round(log_gamma, 5)


def article_loop(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The article's way of scoring many pairs: calc_soaRT3 in a Python loop → gamma (N,)."""
    return np.array([calc_soaRT3(y[i], x[i])[2] for i in range(len(y))])
