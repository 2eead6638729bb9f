import json
import re

from aigckit.evaluation.report import compare_runs, likelihood_basis

BASE = {"model": "m", "n_samples": 10, "extractor": "evaluator-digits-8", "dataset": "digits", "fid": 1.0,
        "kid_mean": 0.1, "precision": 0.5, "recall": 0.5, "density": 1.0, "coverage": 0.5, "classifier_score": 2.0}


def likelihood(bits, *, fingerprint="aaaa", discretisation="8-bit", dims=64, n_images=250, nats=100.0):
    return {"bound": "some bound", "pixel_model": "some pixel model", "discretisation": discretisation,
            "nats": nats, "bits_per_dim": bits, "dims": dims, "split": "val", "n_images": n_images,
            "data_fingerprint": fingerprint}


def run(tmp_path, name, **metrics):
    folder = tmp_path / name
    (folder / "eval").mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {}\n")
    (folder / "eval" / "metrics.json").write_text(json.dumps({**BASE, "run": str(folder), **metrics}))
    return folder


def table(page):
    header = re.findall(r"<th>(.*?)</th>", page)
    rows = {cells[0]: dict(zip(header, cells)) for cells in
            (re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(<td>.*?)</tr>", page))}
    return header, rows


def test_bits_per_dim_share_a_column_only_when_comparable(tmp_path):
    runs = [run(tmp_path, "diffusion", likelihood=likelihood(1.5)),
            run(tmp_path, "vae-gaussian", likelihood=likelihood(2.25)),
            run(tmp_path, "vae-bernoulli", likelihood=likelihood(None, discretisation=None, nats=42.0)),
            run(tmp_path, "other-data", likelihood=likelihood(3.0, fingerprint="bbbb")),
            run(tmp_path, "gan", likelihood=None, classifier_score=None)]
    page = compare_runs(runs, tmp_path / "report").read_text()
    header, rows = table(page)
    assert header.count("bits/dim [1]") == 1 and header.count("bits/dim [2]") == 1 and "bits/dim" not in header
    assert (rows["diffusion"]["bits/dim [1]"], rows["vae-gaussian"]["bits/dim [1]"]) == ("1.500", "2.250")
    assert rows["diffusion"]["bits/dim [2]"] == "—" and rows["other-data"]["bits/dim [2]"] == "3.000"
    assert rows["vae-bernoulli"]["bits/dim [1]"] == rows["vae-bernoulli"]["bits/dim [2]"] == "—"
    assert rows["gan"]["classifier_score"] == "—"
    assert "vae-bernoulli: some bound, 42.00 nats per image under some pixel model; in no bits/dim column" in page
    assert "bits/dim [2]: digits val split, 250 images, 64 dimensions, 8-bit pixels (data bbbb)" in page


def test_one_basis_is_one_plain_column_and_unrecorded_bases_compare_with_nothing(tmp_path):
    same = [run(tmp_path, "a", likelihood=likelihood(1.0)), run(tmp_path, "b", likelihood=likelihood(2.0))]
    header, _ = table(compare_runs(same, tmp_path / "one").read_text())
    assert header[-1] == "bits/dim" and header.count("bits/dim") == 1
    old = {"bound": "IWAE", "bits_per_dim": 1.0, "nats": 1.0}  # a metrics.json from before bases were recorded
    assert likelihood_basis({"run": "x", "likelihood": old}) != likelihood_basis({"run": "y", "likelihood": old})
    assert likelihood_basis({"run": "x", "likelihood": likelihood(None)}) is None
    assert likelihood_basis({"run": "x", "likelihood": likelihood(1.0, n_images=100)}) != \
        likelihood_basis({"run": "y", "likelihood": likelihood(1.0)})


def test_a_metrics_file_from_before_bases_were_recorded_gets_its_own_column(tmp_path):
    old = run(tmp_path, "old", likelihood={"bound": "IWAE", "bits_per_dim": 1.25, "elbo_nats": -3.0})
    page = compare_runs([old, run(tmp_path, "new", likelihood=likelihood(2.0))], tmp_path / "report").read_text()
    header, rows = table(page)
    assert header[-2:] == ["bits/dim [1]", "bits/dim [2]"] and rows["old"]["bits/dim [1]"] == "1.250"
    assert "comparable with no other run" in page
