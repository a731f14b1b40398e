"""Session caches of the UI are keyed on values, never on ``id()`` (which Python reuses
once an object is garbage-collected)."""

from streamlit.testing.v1 import AppTest

from soartlab.ui.jobs import TrainingJob


def test_pca_projection_is_cached_on_the_embeddings_not_on_the_view_object():
    def script() -> None:
        import numpy as np
        import streamlit as st

        from soartlab.ui.explore import HeldOutView, projected

        def view(embeddings):
            labels = np.zeros(len(embeddings), dtype=np.int64)
            return HeldOutView(["good"], 0, labels, labels, embeddings, None, {})

        embeddings = np.random.default_rng(0).random((30, 8)).astype(np.float32)
        first = projected(view(embeddings), 2)
        st.session_state["same_bytes_hit"] = projected(view(embeddings.copy()), 2) is first
        other = projected(view(embeddings + 1.0), 2)
        st.session_state["other_bytes_miss"] = other is not first
        st.session_state["three_components"] = projected(view(embeddings + 1.0), 3).shape

    at = AppTest.from_function(script, default_timeout=120)  # the first run imports torch
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["same_bytes_hit"]
    assert at.session_state["other_bytes_miss"]
    assert at.session_state["three_components"] == (30, 3)


def test_every_training_job_has_its_own_id():
    jobs = [TrainingJob(None, None, store=None) for _ in range(3)]
    ids = [job.job_id for job in jobs]
    assert len(set(ids)) == 3 and all(isinstance(i, str) and i for i in ids)
