import json

from diffgates.cli import main


def test_report_writes_html_and_non_trivial_figures(tmp_path, capsys):
    import matplotlib.image as mpimg

    run = tmp_path / "run"
    assert main(["train", "--widths", "300,300", "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    assert main(["report", str(run)]) == 0
    out = run / "report"
    page = (out / "report.html").read_text()
    for name in ("curves.png", "gates.png", "passes.png", "confusion.png"):
        img = mpimg.imread(out / name)
        assert img.shape[0] >= 300 and img.shape[1] >= 400, name
        gray = img[..., :3].mean(-1)
        assert gray.std() > 0.05, f"{name} is nearly blank"
        assert (gray < 0.5).mean() > 0.005, f"{name} has almost no ink"
    assert page.count("data:image/png;base64,") == 4
    assert "test_acc_discrete" in page and "gates (optimised)" in page
    assert mpimg.imread(out / "curves.png").shape[1] == 1800  # four panels: live gates are logged

    old = tmp_path / "old"  # a run from before live_gates was logged: three panels
    old.mkdir()
    for name in ("model.safetensors", "circuit.npz", "summary.json", "config.yaml"):
        (old / name).write_bytes((run / name).read_bytes())
    rows = [{k: v for k, v in json.loads(line).items() if k != "live_gates"} for line in (run / "metrics.jsonl").open()]
    (old / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(old)]) == 0
    assert mpimg.imread(old / "report" / "curves.png").shape[1] == 1400


def test_report_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_report_shows_the_fpga_table(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--widths", "20", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    result = run / "export" / "fpga" / "LFE5U-25F-stream"
    result.mkdir(parents=True)
    row = {"device": "LFE5U-25F", "mode": "stream", "lut4": 1234, "fmax_mhz": 87.5, "images_per_s": 2.1875e6}
    row["routing"] = {"placer_s": 12.5, "router_s": 30.25, "arcs": 4321}
    (result / "report.json").write_text(json.dumps(row))
    assert main(["report", str(run)]) == 0
    page = (run / "report" / "report.html").read_text()
    assert "<h2>FPGA implementations</h2>" in page
    assert "<td>LFE5U-25F</td><td>stream</td><td>1234</td>" in page and "<td>87.5</td>" in page
    assert "<th>router_s</th><th>arcs</th>" in page and "<td>12.5</td><td>30.25</td><td>4321</td>" in page
    assert "<th>images_per_s</th><th>pixels_per_s</th>" in page  # an image network's frames and pixels
