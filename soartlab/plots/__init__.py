"""Plotly figure builders: pure functions from arrays to ``go.Figure``, one module per subject.

Nothing here imports Streamlit, so every figure can be unit-tested as a plain object.

- ``histograms``: matched/unmatched pair-distance histograms, alone or before/after tuning
- ``embeddings``: PCA scatter of embeddings, confusion heatmap of their predictions
- ``samples``: samples per class, grids of sample images
- ``training``: loss and validation rates per epoch
- ``augment``: samples beside their augmented draws
- ``heatmaps``: where a part differs from its closest good reference, as PNG bytes
- ``decision``: the escape–overkill curve with the operating point
- ``style``: class colours and the "nothing to show" figure they share
"""

from soartlab.plots.augment import augmentation_grid
from soartlab.plots.decision import escape_overkill_curve
from soartlab.plots.embeddings import confusion_heatmap, pca_scatter
from soartlab.plots.heatmaps import colour_values, explanation_png
from soartlab.plots.histograms import (
    BAR_OPACITY,
    BEFORE_AFTER_TITLES,
    MATCHED_COLOR,
    UNMATCHED_COLOR,
    VERTICAL_LINES,
    before_after_histograms,
    histogram_bins,
    pair_histogram,
    shared_edges,
)
from soartlab.plots.samples import (
    MAX_GRID_IMAGES,
    MAX_THUMBNAIL_SIDE,
    class_counts_bar,
    sample_grid,
)
from soartlab.plots.style import DEFECT_PALETTE, GOOD_COLOR
from soartlab.plots.training import RATE_SERIES, training_curves

__all__ = [
    "BAR_OPACITY",
    "BEFORE_AFTER_TITLES",
    "DEFECT_PALETTE",
    "GOOD_COLOR",
    "MATCHED_COLOR",
    "MAX_GRID_IMAGES",
    "MAX_THUMBNAIL_SIDE",
    "RATE_SERIES",
    "VERTICAL_LINES",
    "UNMATCHED_COLOR",
    "augmentation_grid",
    "before_after_histograms",
    "class_counts_bar",
    "colour_values",
    "confusion_heatmap",
    "escape_overkill_curve",
    "explanation_png",
    "histogram_bins",
    "pair_histogram",
    "pca_scatter",
    "sample_grid",
    "shared_edges",
    "training_curves",
]
