"""`memrl serve`'s embedding options: query batching, ONNX threads and spinning, from
flags and the environment."""

from __future__ import annotations

import argparse

import pytest
from memrl_server.settings import embedding_options

from memrl import InvalidInputError


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def test_defaults_batch_and_leave_threads_and_spinning_to_the_core() -> None:
    assert embedding_options(_args(), {}) == (True, None, None)


def test_flags_win_over_the_environment() -> None:
    env = {"MEMRL_EMBED_THREADS": "2", "MEMRL_EMBED_SPINNING": "on"}
    args = _args(no_query_batching=True, embed_threads=1, embed_spinning="off")
    assert embedding_options(args, env) == (False, 1, False)
    assert embedding_options(_args(), env) == (True, 2, True)
    assert embedding_options(_args(), {"MEMRL_QUERY_BATCHING": "0"})[0] is False
    assert embedding_options(_args(), {"MEMRL_QUERY_BATCHING": "off"})[0] is False


@pytest.mark.parametrize(
    "env",
    [{"MEMRL_EMBED_THREADS": "zero"}, {"MEMRL_EMBED_THREADS": "0"}, {"MEMRL_EMBED_SPINNING": "maybe"}],
)
def test_bad_values_are_refused_with_a_message(env: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError, match="MEMRL_EMBED"):
        embedding_options(_args(), env)
