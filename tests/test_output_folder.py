"""The output-folder policy (`hf_bertmap/output_folder.py`): which folder a run may write, one run at a time, and a
save that never moves, replaces or deletes a file the run did not write."""

import os
import stat

import pytest
from conftest import write_tiny_pairs

from hf_bertmap import WordMapper
from hf_bertmap.cli import main as cli_main
from hf_bertmap.output_folder import FolderInUseError, OutputFolder
from hf_bertmap.training import main


def train(backbone, files, *extra):
    return main(["--model_name_or_path", str(backbone), "--train_file", str(files["train"]),
                 "--validation_file", str(files["validation"]), "--test_file", str(files["test"]),
                 "--num_train_epochs", "1", "--learning_rate", "3e-3", "--disable_tqdm", "true", "--use_cpu", "true",
                 *extra])


def user_project(folder):
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "main.py").write_text("print('mine')\n")
    (folder / "README.md").write_text("my project\n")
    (folder / "config.json").write_text('{"mine": true}\n')
    (folder / "all_results.json").write_text('{"my": 1}\n')
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def files_of(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_non_empty_folder_without_a_model_is_refused_and_left_untouched(tiny_backbone, tmp_path):
    files = write_tiny_pairs(tmp_path)
    project = tmp_path / "project"
    before = user_project(project)
    with pytest.raises(FileExistsError, match=r"--output_dir .*project: the folder is not empty \(4 entries: "
                                              r"README.md, all_results.json, config.json, \.\.\.\) and holds no "
                                              r"bertmap model; .* pass --overwrite_output_dir"):
        train(tiny_backbone, files, "--output_dir", str(project))
    assert files_of(project) == before


def test_output_dir_dot_is_refused_then_written_beside_the_users_files_with_overwrite(tiny_backbone, tmp_path,
                                                                                      monkeypatch):
    files = write_tiny_pairs(tmp_path)
    project = tmp_path / "project"
    before = user_project(project)
    monkeypatch.chdir(project)
    with pytest.raises(FileExistsError, match="--output_dir .: the folder is not empty"):
        train(tiny_backbone, files, "--output_dir", ".")
    train(tiny_backbone, files, "--output_dir", ".", "--overwrite_output_dir", "true")
    after = files_of(project)
    assert after["src/main.py"] == before["src/main.py"]  # untouched
    assert after["config.json"] != before["config.json"]  # the model's own files replace same-named ones
    assert WordMapper.from_pretrained(project).predict("large")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging, lock or backup left


def test_a_symlinked_output_folder_is_written_through_every_run_and_keeps_the_users_file(tiny_backbone, tmp_path):
    files = write_tiny_pairs(tmp_path)
    target = tmp_path / "disk" / "models"
    target.mkdir(parents=True)
    link = tmp_path / "models-link"
    link.symlink_to(target)
    for run in range(3):
        train(tiny_backbone, files, "--output_dir", str(link), "--seed", str(run))
        if run == 0:
            (target / "notes.txt").write_text("kept by me")
    assert link.is_symlink() and (target / "notes.txt").read_text() == "kept by me"
    assert WordMapper.from_pretrained(link).predict("large")
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["models"]  # no staging left


def test_a_second_run_into_a_folder_in_use_stops_with_a_clear_error(tiny_backbone, tmp_path):
    files = write_tiny_pairs(tmp_path)
    output = tmp_path / "out"
    with OutputFolder.prepare(output).lock():
        with pytest.raises(FolderInUseError, match=r"out is being written by another run \(it holds .*\.out\.lock\)"):
            train(tiny_backbone, files, "--output_dir", str(output))
    assert not output.exists()
    train(tiny_backbone, files, "--output_dir", str(output))  # free again once the first run ends
    assert not (tmp_path / ".out.lock").exists()


def test_evaluate_only_writes_results_only_into_a_given_folder_never_the_models(tiny_backbone, tmp_path):
    files = write_tiny_pairs(tmp_path)
    model = tmp_path / "model"
    train(tiny_backbone, files, "--output_dir", str(model))
    before = files_of(model)
    evaluate = ["--model_name_or_path", str(model), "--do_train", "false", "--test_file", str(files["test"]),
                "--use_cpu", "true"]
    results = main(evaluate)
    assert "test_accuracy" in results and files_of(model) == before
    assert not (tmp_path / "bertmap-attributes").exists()
    with pytest.raises(ValueError, match="is the model folder being evaluated"):
        main([*evaluate, "--output_dir", str(model)])
    main([*evaluate, "--output_dir", str(tmp_path / "evaluation")])
    assert sorted(p.name for p in (tmp_path / "evaluation").iterdir()) == ["all_results.json", "test_results.json"]
    main([*evaluate, "--output_dir", str(tmp_path / "evaluation")])  # a folder of results may be written again
    assert files_of(model) == before


def test_saved_files_and_checkpoints_get_the_users_umask(tiny_backbone, tmp_path):
    files = write_tiny_pairs(tmp_path)
    output = tmp_path / "out"
    old = os.umask(0o022)
    try:
        train(tiny_backbone, files, "--output_dir", str(output))
    finally:
        os.umask(old)
    modes = {str(p.relative_to(output)): stat.S_IMODE(p.stat().st_mode) for p in output.rglob("*")}
    assert modes["model.safetensors"] == modes["memory.safetensors"] == modes["config.json"] == 0o644
    assert any(name.endswith("/model.safetensors") for name in modes)
    assert {mode for mode in modes.values()} <= {0o644, 0o755}
    assert stat.S_IMODE(output.stat().st_mode) == 0o755


def test_export_follows_the_same_policy(saved_model, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    project = tmp_path / "project"
    before = user_project(project)
    with pytest.raises(SystemExit):
        cli_main(["export", str(saved_model), str(project)])
    assert "the folder is not empty" in capsys.readouterr().err and files_of(project) == before
    cli_main(["export", str(saved_model), str(project), "--overwrite"])
    after = files_of(project)
    assert after["src/main.py"] == before["src/main.py"] and "model.onnx" in after
    cli_main(["export", str(saved_model), str(tmp_path / "onnx")])
    cli_main(["export", str(saved_model), str(tmp_path / "onnx")])  # an export folder holds a model: replaced


def test_an_interrupted_swap_is_reported_and_nothing_is_deleted(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bertmap"}')
    (folder / "notes.txt").write_text("mine")
    output = OutputFolder.prepare(folder)
    staging = output.begin()
    with open(os.path.join(staging, "config.json"), "w") as f:
        f.write('{"model_type": "bertmap", "new": true}')
    renames = []
    real_rename = os.rename

    def killed_between_the_renames(src, dst):
        renames.append((src, dst))
        if len(renames) == 2:
            raise KeyboardInterrupt  # stands in for a kill after the old folder moved aside
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_between_the_renames)
    with pytest.raises(KeyboardInterrupt):
        output.commit(staging)
    monkeypatch.undo()
    with caplog.at_level("WARNING"):
        OutputFolder.prepare(folder)
    (previous,) = tmp_path.glob(".out.previous-*")
    assert f"{previous}: left by an interrupted save" in caplog.text
    assert f"{staging}: left by an interrupted save" in caplog.text
    assert (previous / "notes.txt").read_text() == "mine" and (tmp_path / staging / "notes.txt").read_text() == "mine"


def test_a_file_as_output_folder_is_refused(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="--output_dir .*model.txt: is a file, not a folder"):
        OutputFolder.prepare(path)
