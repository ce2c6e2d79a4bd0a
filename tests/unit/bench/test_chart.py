"""The chart is a PNG that decodes, with one point per level that produced tokens."""
from __future__ import annotations

from matplotlib import image

from infra.bench.chart import write


def _row(c, tps, e2e, usd, best=False):
    return {"concurrency": c, "output_tokens_per_s": tps, "e2e_s": {"p50": e2e}, "usd_per_million_output_tokens": usd,
            "best": best}


def test_chart_writes_a_png_that_decodes(tmp_path):
    run = {"id": "r2", "stack": "dev", "model": "glm-5.2-fp8", "planner_max_concurrency": 4.4, "knee_concurrency": 4,
           "levels": [_row(1, 100.0, 0.5, 100.0), _row(4, 390.0, 0.55, 25.6, best=True), _row(16, 400.0, 2.0, None),
                      {"concurrency": 64, "output_tokens_per_s": 0.0, "e2e_s": {"p50": None}}]}
    earlier = {**run, "id": "r1"}
    path = write(run, tmp_path / "sub" / "chart.png", earlier)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 500
