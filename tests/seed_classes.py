"""The seed article's model classes, copied as the article wrote them, so tests can check
that SOART Lab checkpoints load into them unchanged."""

import torch.nn as nn


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
