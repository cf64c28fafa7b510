"""Figures as deterministic inline SVG (for the report and the policy plot)."""

from __future__ import annotations

import io
import re


def figure_to_svg(fig) -> str:
    """A matplotlib figure as an SVG string without date or creator metadata (so reruns are
    byte-identical); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
