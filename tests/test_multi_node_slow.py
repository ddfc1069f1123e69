"""Two nodes on one machine: `torchrun --nnodes 2` with one CPU process per node (gloo over loopback), as it runs
over several machines, and a resume after one node dies mid-epoch."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_distributed_slow import train_flags
from test_resilience import KILLER, metrics_of

from hf_bertmap import WordMapper

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = ["--max_steps", "24", "--save_strategy", "steps", "--save_steps", "8", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--save_total_limit", "5", "--augment_copies", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAIN = str(ROOT / "train.py")


def launch(flags: list[str], cwd: Path, scripts: tuple[str, str] = (TRAIN, TRAIN)) -> list[subprocess.Popen]:
    """Start two nodes of one process each on this machine, node R running `scripts[R]` with `flags`, as
    `torchrun --nnodes 2 --node_rank R --rdzv-endpoint HOST:PORT` starts them on two machines."""
    env = dict(os.environ, HF_DATASETS_CACHE=str(cwd / "datasets-cache"))
    endpoint = f"127.0.0.1:{free_port()}"
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                              "--node_rank", str(rank), "--rdzv-endpoint", endpoint, script, *flags],
                             env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
            for rank, script in enumerate(scripts)]


def one_node(flags: list[str], cwd: Path) -> subprocess.Popen:
    """Two processes on one node, the reference."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             TRAIN, *flags], env=dict(os.environ, HF_DATASETS_CACHE=str(cwd / "datasets-cache")),
                            cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def finish(processes: list[subprocess.Popen], timeout: int = 300) -> list[tuple[int, str]]:
    results = []
    for process in processes:
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
            pytest.fail(f"a node did not finish within {timeout} s:\n{out[-3000:]}")
        results.append((process.returncode, out))
    return results


def all_results(folder: Path) -> dict:
    return json.loads((folder / "all_results.json").read_text())


def test_two_nodes_train_like_two_processes_on_one_node(tiny_backbone, pair_files, tmp_path):
    single = tmp_path / "one-node"
    for code, log in finish([one_node(train_flags(tiny_backbone, pair_files, single, batch_size=4), tmp_path)]):
        assert code == 0, log[-4000:]
    two_nodes = tmp_path / "two-nodes"
    logs = finish(launch(train_flags(tiny_backbone, pair_files, two_nodes, batch_size=4), tmp_path))
    for code, log in logs:
        assert code == 0, log[-4000:]
    assert "Process rank: 0" in logs[0][1] and "Process rank: 1" in logs[1][1]
    assert sum(log.count("very chonky ->") for _, log in logs) == 1  # one process writes for both nodes

    # The same steps and batches; the last digits may differ (ECE by 1.05e-4 in one run), hence 1e-3.
    assert metrics_of(all_results(two_nodes)) == pytest.approx(metrics_of(all_results(single)), abs=1e-3)
    assert sorted(p.name for p in two_nodes.iterdir()) == sorted(p.name for p in single.iterdir())
    phrases = ["large", "very chonky", "tiny"]
    two, one = (WordMapper.from_pretrained(folder).predict(phrases, top_k=3) for folder in (two_nodes, single))
    assert [[word for word, _ in words] for words in two] == [[word for word, _ in words] for words in one]
    assert [score for words in two for _, score in words] == pytest.approx(
        [score for words in one for _, score in words], abs=1e-3)


def test_a_node_killed_mid_epoch_resumes_with_both_nodes_to_the_same_result(tiny_backbone, pair_files, tmp_path):
    flags = train_flags(tiny_backbone, pair_files, tmp_path / "reference", batch_size=4) + SCHEDULE
    for code, log in finish(launch(flags, tmp_path)):
        assert code == 0, log[-4000:]

    output = tmp_path / "killed"
    flags = train_flags(tiny_backbone, pair_files, output, batch_size=4) + SCHEDULE
    killer = tmp_path / "kill_at_13.py"
    killer.write_text(KILLER.format(kill_at=13))
    (code0, log0), (code1, log1) = finish(launch(flags, tmp_path, scripts=(TRAIN, str(killer))), timeout=180)
    assert code1 != 0 and code0 != 0, log0[-3000:]  # node 1 died; node 0 lost its peer and stopped
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-8"]
    assert not (output / "model.safetensors").exists()

    for code, log in finish(launch(flags + ["--resume_from_checkpoint", "last"], tmp_path)):
        assert code == 0, log[-4000:]
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 24
    assert metrics_of(all_results(output)) == pytest.approx(metrics_of(all_results(tmp_path / "reference")), abs=1e-4)
