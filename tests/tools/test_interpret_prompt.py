"""tools/interpret_prompt.py on a trained CoOp context: CoOp initialised from "a photo of a" and trained briefly
still sits on those words, so its nearest tokens name them."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_tiny_demo, run_tiny
from tools import interpret_prompt

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained_coop(tmp_path_factory):
    root = tmp_path_factory.mktemp("interpret")
    assets = make_tiny_demo(root, layers=2, seed=17)
    run_tiny(assets, "CoOp", "CoOp/vit_b16_ctxv1", root / "run")
    return root / "run" / "prompt_learner" / "model.pth.tar-1"


def test_nearest_words_of_a_trained_coop_context(trained_coop, capsys):
    assert interpret_prompt.main([str(trained_coop), "2"]) == 0  # the run's backbone, from its config.yaml
    out = capsys.readouterr().out
    lines = out[out.index("Context vectors of"):].splitlines()
    assert "(4, 64)" in lines[0]
    firsts = [line.split(": ", 1)[1].split(" (")[0] for line in lines[1:]]
    assert firsts == ["a", "photo", "of", "a"]
    assert all(line.count("(") == 2 for line in lines[1:])  # top-2 words with their distances


def test_nearest_words_ranks_by_distance():
    embedding = torch.eye(5)
    words = interpret_prompt.nearest_words(torch.tensor([[0.0, 0.9, 0.1, 0.0, 0.0]]), embedding, 2)
    assert [w for w, _ in words[0]] == [_token(1), _token(2)]
    assert words[0][0][1] < words[0][1][1]


def _token(index: int) -> str:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer().decoder[index].replace("</w>", "")


def test_a_file_without_context_vectors_is_an_error(tmp_path, capsys):
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {"something": torch.zeros(1)}}, path)
    assert interpret_prompt.main([str(path), "1", "--backbone-path", str(path)]) == 2
    assert "holds no context vectors" in capsys.readouterr().err
    assert interpret_prompt.main([str(tmp_path / "missing.pth.tar"), "1"]) == 2
