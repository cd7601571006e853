import json

import pytest

from skipswitch import demo
from skipswitch.errors import SkipswitchError


@pytest.mark.slow
def test_demo_quick_runs_every_step_writes_one_report_and_resumes(cli, tmp_path):
    code, out, err = cli("demo", "--quick", "--quiet", "--out", tmp_path)
    assert code == 0, err
    steps = demo.demo_steps()
    for step in steps:
        section = json.loads((tmp_path / step.key / "section.json").read_text())
        assert section["status"] == "ok" and section["rows"], step.key
        for image in section["images"]:
            assert (tmp_path / step.key).exists() and open(image, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    for step in steps:
        assert json.loads((tmp_path / step.key / "section.json").read_text())["title"] in md
    assert html.count("data:image/png;base64,") >= 5  # plots are embedded: the file opens on its own
    assert "skipswitch demo summary" in out
    # A rerun finds every step finished and only rewrites the report.
    code, out, err = cli("demo", "--quick", "--quiet", "--out", tmp_path)
    assert code == 0, err
    assert err.count("skipped") == len(steps)


def test_a_failed_step_names_itself_and_what_was_kept(cli, tmp_path, monkeypatch):
    def first(settings, step_dir):
        return demo.Section(title="first", header=["a"], rows=[["1"]])

    def broken(settings, step_dir):
        raise SkipswitchError("something specific went wrong")

    monkeypatch.setattr(demo, "demo_steps", lambda: [demo.Step("one", "Step one", first),
                                                     demo.Step("two", "Step two", broken)])
    code, _, err = cli("demo", "--quick", "--quiet", "--out", tmp_path)
    assert code == 2
    assert "demo step 'Step two' failed: something specific went wrong" in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # progress lines go to stderr too
    assert len(errors) == 1 and "finished and kept: Step one" in errors[0]
    assert (tmp_path / "one" / "section.json").exists() and not (tmp_path / "two" / "section.json").exists()
    # Fixed, the rerun resumes: step one is not run again.
    calls = []
    monkeypatch.setattr(demo, "demo_steps", lambda: [demo.Step("one", "Step one", lambda s, d: calls.append(1)),
                                                     demo.Step("two", "Step two", first)])
    code, _, err = cli("demo", "--quick", "--quiet", "--out", tmp_path)
    assert code == 0 and calls == [] and (tmp_path / "report.html").exists()


def test_demo_rejects_bad_flags(cli, tmp_path):
    code, _, err = cli("demo", "--epochs", "0", "--out", tmp_path)
    assert code == 2 and "invalid epochs=0" in err
    code, _, err = cli("demo", "--model", "resnet9", "--out", tmp_path)
    assert code == 2 and "unknown model 'resnet9'" in err
