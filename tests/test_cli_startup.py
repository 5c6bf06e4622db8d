"""The command line: --help without torch, one definition of the shared flags, one-line errors for bad input."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autonat.cli.args import positive_int, schedule_name
from autonat.cli.main import build_parser, main, os_error_line
from autonat.errors import AutonatError
from autonat.runtime import check_device, default_device, single_process_note

HEAVY = ("torch", "torchvision", "numpy", "accelerate", "torch_fidelity", "scipy", "PIL")

#: Builds the parser and formats the help of every (sub)command, then lists the heavy modules it loaded.
HELP_EVERYTHING = f"""
import argparse, sys
import autonat.cli as c

def helps(parser):
    yield parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from helps(sub)

texts = list(helps(c.build_parser()))
assert len(texts) >= 16, len(texts)
print(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}))
"""


def test_help_of_every_command_imports_no_heavy_library():
    out = subprocess.run([sys.executable, "-c", HELP_EVERYTHING], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


#: Runs each recipe command on the recipe file argv[1], then prints its exit status and the heavy modules loaded.
RECIPE_COMMANDS = f"""
import sys
from autonat.cli.main import main

for command in ("train", "train-tokenizer", "tokenize"):
    status = main([command, "--config", sys.argv[1]])
    print(command, status, sorted(set({HEAVY!r}).intersection(m.split(".")[0] for m in sys.modules)))
"""


def test_a_mistyped_recipe_key_is_one_line_before_torch_loads(tmp_path):
    """Every section of the demo recipe is parsed and checked (the typo is in the last) without torch."""
    root = Path(__file__).resolve().parents[1]
    recipe = (root / "configs" / "demo_mnist.yaml").read_text()
    assert recipe.count("\n  steps: 2500\n") == 1
    (tmp_path / "typo.yaml").write_text(recipe.replace("\n  steps: 2500\n", "\n  stpes: 2500\n"))
    out = subprocess.run([sys.executable, "-c", RECIPE_COMMANDS, str(tmp_path / "typo.yaml")], capture_output=True,
                         text=True, check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.splitlines() == ["train 2 []", "train-tokenizer 2 []", "tokenize 2 []"], out.stdout
    assert out.stderr.splitlines() == ["autonat: error: unknown key 'stpes' in train (did you mean 'steps'?); known: "
                                       "batch_size, checkpoint_every, ema_decay, ema_warmup, grad_accum_steps, init, "
                                       "keep_checkpoints, log_every, mixed_precision, out_dir, resume, seed, steps"] * 3
    assert not (tmp_path / "runs").exists()


def _subparsers(parser) -> dict:
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def _flags(parser) -> dict:
    return {a.option_strings[0]: (tuple(a.option_strings), None if a.choices is None else list(a.choices), a.default,
                                  a.type) for a in parser._actions if a.option_strings}


SHARED = ("--checkpoint", "--tokenizer", "--tokenizer-config", "--strategy", "--schedule", "--steps", "--cfg",
          "--order", "--precision", "--cfg-batching", "--seed", "--batch-size", "--device")


def test_sample_eval_and_search_generation_share_their_flags():
    subs = _subparsers(build_parser())
    flags = {name: _flags(subs[name]) for name in ("sample", "eval", "search generation")}
    for flag in SHARED:
        seen = {name: f.get(flag) for name, f in flags.items()}
        assert len({repr(v) for v in seen.values()}) == 1 and None not in seen.values(), (flag, seen)
    assert flags["sample"]["--order"][1] == ["confidence", "random", "halton"]
    assert flags["sample"]["--schedule"][3] is schedule_name


def test_every_scoring_command_spells_the_feature_flags_and_device_alike():
    subs = _subparsers(build_parser())
    names = ("eval", "fid-stats", "search generation", "search training", "search alternate")
    for flag in ("--feature-extractor", "--inception-weights", "--digit-weights", "--device"):
        assert len({repr(_flags(subs[n])[flag]) for n in names}) == 1, flag
    assert all(_flags(sub).get("--device", (None,) * 4)[2] is None for sub in subs.values())


def test_positive_int():
    assert positive_int("3") == 3
    for bad in ("0", "-2", "ten", "1.5"):
        with pytest.raises(Exception, match="at least 1|whole number"):
            positive_int(bad)


@pytest.mark.parametrize("argv", [
    ["sample", "--checkpoint", "x", "--per-class", "0"],
    ["sample", "--checkpoint", "x", "--batch-size", "-1"],
    ["sample", "--checkpoint", "x", "--steps", "0"],
    ["sample", "--checkpoint", "x", "--schedule", "cosin"],
    ["sample", "--checkpoint", "x", "--order", "spiral"],
    ["eval", "--images", "x", "--reference", "y", "-n", "0"],
    ["search", "generation", "--checkpoint", "x", "--out", "o", "--iterations", "0"],
    ["search", "generation", "--checkpoint", "x", "--out", "o", "--n-eval", "zero"],
    ["search", "training", "--strategy", "s", "--config", "c", "--out", "o", "--train-steps", "0"],
    ["search", "alternate", "--config", "c", "--out", "o", "--rounds", "0"],
    ["search", "training", "--strategy", "s", "--config", "c", "--out", "o", "--max-moves", "0"],
    ["sample", "--checkpoint", "x", "--trace-samples", "0"],
    ["tokenize", "--config", "c", "--batch-size", "0"],
])
def test_bad_numbers_and_choices_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ": error: argument " in err, err


@pytest.mark.parametrize("device, message", [("cdua", "unknown --device 'cdua'; choose cpu, cuda, cuda:N or mps"),
                                             ("cuda:99", "--device cuda:99 but this machine has")])
def test_bad_devices_are_one_line_errors(device, message, capsys):
    with pytest.raises(AutonatError, match="unknown --device|but this machine has"):
        check_device(device)
    assert main(["sample", "--checkpoint", "nowhere", "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("autonat: error: ") and message in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(AutonatError, match="no CUDA GPU; use --device cpu"):
        check_device("cuda")
    assert default_device(None) == "cpu" and default_device("cpu") == "cpu"


def test_os_errors_become_one_line_with_the_path(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert main(["strategy", "show", "cosine", "--plot", str(blocker / "plot.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"autonat: error: {blocker}") and "choose another path" in err, err
    with pytest.raises(OSError):
        main(["--debug", "strategy", "show", "cosine", "--plot", str(blocker / "plot.png")])
    line = os_error_line(PermissionError(errno.EACCES, "Permission denied", "/data/out"))
    assert line == "/data/out: permission denied; check its permissions or choose another path"
    assert "read-only" in os_error_line(OSError(errno.EROFS, "Read-only file system", "/ro/x"))
    assert "free some space" in os_error_line(OSError(errno.ENOSPC, "No space left on device", "/full/x"))


def test_grid_extension_is_honoured(tmp_path, capsys):
    from helpers import write_tiny_generator

    from autonat.sampling.outputs import grid_format

    assert grid_format("a.PNG") == "png" and grid_format("a.jpeg") == "jpeg" and grid_format("b.jpg") == "jpeg"
    for bad in ("grid.gif", "grid"):
        with pytest.raises(AutonatError, match=r"written as \.png, \.jpg, \.jpeg"):
            grid_format(bad)
    # checked before any work: the checkpoint does not exist, yet the extension is what is reported
    assert main(["sample", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g.webp")]) == 2
    assert main(["demo", "--out", str(tmp_path / "demo.bmp"), "--eval-samples", "0"]) == 2
    assert capsys.readouterr().err.count("change --out") == 2
    ckpt = write_tiny_generator(tmp_path)
    for name, magic in (("g.jpg", b"\xff\xd8\xff"), ("g.png", b"\x89PNG")):
        assert main(["sample", "--checkpoint", str(ckpt), "--steps", "2", "--per-class", "1", "--classes", "0",
                     "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_bytes()[:len(magic)] == magic


def test_single_process_note_when_accelerate_started_one_of_several(tmp_path, monkeypatch, capsys):
    simple = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert "started one process" in single_process_note(simple)
    assert single_process_note({**simple, "WORLD_SIZE": "2"}) is None  # --multi_gpu / torchrun started them
    assert single_process_note({"ACCELERATE_USE_CPU": "False"}) is None  # --num_processes 1
    assert single_process_note({}) is None  # not launched by accelerate
    for key, value in simple.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("autonat: note: `accelerate launch --num_processes K` started one process"), err
    assert main(["sample", "--checkpoint", str(tmp_path / "nowhere")]) == 2  # not a launched command: no note
    assert "autonat: note" not in capsys.readouterr().err


def test_search_keeps_the_old_spellings_and_strategy_flags_are_exclusive(tmp_path):
    from autonat.strategy.choice import choose_strategy

    args = build_parser().parse_args(["search", "generation", "--checkpoint", "c", "--out", "o", "--init", "s.yaml",
                                      "--weights", "w.pth"])
    assert args.strategy == "s.yaml" and args.weights == "w.pth"
    assert choose_strategy(None, None, None, None, default_schedule="autonat-init").steps == 8
    assert list(choose_strategy(None, "cosine", 4, 2.0).cfg_scale) == [2.0] * 4
    with pytest.raises(AutonatError, match="not both"):
        choose_strategy(str(tmp_path / "s.yaml"), "cosine", None, None)


def test_a_mistyped_flag_names_the_flag_meant(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "generation", "--checkpoint", "x", "--out", "o", "--stesp", "4", "--n-evl=3", "--zzz"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert ("unrecognized arguments: --stesp 4 --n-evl=3 --zzz; "
            "did you mean --stesp -> --steps, --n-evl -> --n-eval?") in err
    assert err.endswith("(see `autonat search generation --help`)"), err


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """``autonat strategy show ... | head -1``: a closed pipe ends the command with 141 (128 + SIGPIPE), as a shell
    tool, and without a misleading error line about a path."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from autonat.cli.main import main; sys.exit(main())",
                             "strategy", "show", "cosine", "--steps", "5000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("cosine: 5000 steps")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == ""


def test_a_broken_pipe_that_is_not_standard_output_is_reported(capsys):
    from autonat.cli.main import run_reporting_errors

    def work():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    assert run_reporting_errors(work) == 2
    assert capsys.readouterr().err.strip() == "autonat: error: ?: broken pipe; check the path"


def test_a_mistyped_required_flag_is_named_before_it_is_called_missing(capsys):
    """``--checkpiont x`` leaves --checkpoint missing: the error names the typo first, not only the missing flag;
    an abbreviation argparse takes (``--check``) is no typo."""
    def error(*argv):
        with pytest.raises(SystemExit) as exit_:
            main(list(argv))
        assert exit_.value.code == 2
        return capsys.readouterr().err.strip()

    assert error("sample", "--checkpiont", "x").startswith(
        "autonat sample: error: unrecognized arguments: --checkpiont; did you mean --checkpiont -> --checkpoint? "
        "(missing: --checkpoint)")
    assert error("search", "generation", "--check", "x").startswith(
        "autonat search generation: error: the following arguments are required: --out")
    err = error("search", "generation", "--stesp", "4", "--zzz=1")
    assert "unrecognized arguments: --stesp --zzz=1; did you mean --stesp -> --steps? (missing: --checkpoint, " \
           "--out)" in err, err


@pytest.mark.parametrize("argv, said", [
    (["smaple"], "invalid choice: 'smaple' (choose from 'train-tokenizer', "),
    (["search", "generaton"], "invalid choice: 'generaton' (choose from 'generation', 'training', 'alternate'); "
                              "did you mean 'generation'?"),
    (["sample", "--checkpoint", "x", "--order", "confidance"], "did you mean 'confidence'?"),
])
def test_a_mistyped_command_or_choice_names_the_one_meant(argv, said, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err.strip()
    assert said in err and "did you mean '" in err and len(err.splitlines()) == 1, err
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", "x", "--order", "zzz"])
    assert "did you mean" not in capsys.readouterr().err  # nothing close: no guess


def test_a_mistyped_schedule_name_names_the_schedule_meant(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", "x", "--schedule", "cosin"])
    assert "unknown schedule 'cosin' (did you mean 'cosine'?); choose one of" in capsys.readouterr().err
