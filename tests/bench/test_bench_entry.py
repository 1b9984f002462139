"""`python -m scripts.bench`: the one registry of parts, its options, where reports go."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench.__main__ import BENCH_PARTS, PARTS, build_parser, main
from scripts.bench.measure import ROOT
from scripts.bench.report import int_list


def test_every_part_is_a_subcommand_and_bench_md_keeps_its_order() -> None:
    names = [part.name for part in PARTS]
    assert len(names) == len(set(names))
    assert BENCH_PARTS == ("prepare", "layer", "pipeline", "vocab", "checkpoint")
    assert {"peer", "profile"} <= set(names)
    parser = build_parser()  # parts sharing one parser under `all`: no option clashes
    for name in names:
        assert parser.parse_args([name]).part == name


def test_options_reach_their_part() -> None:
    args = build_parser().parse_args(
        ["all", "--only", "layer", "--layer-ks", "8,1_024", "--vocab-sizes", "10,20"]
    )
    assert (args.only, args.layer_ks, args.vocab_sizes) == ("layer", [8, 1024], [10, 20])
    peer = build_parser().parse_args(["peer", "--seeds", "2", "--shapes", "16:8;48:8"])
    assert (peer.seeds, peer.shapes, peer.smoke) == (2, "16:8;48:8", False)
    assert int_list("1,2_000,") == [1, 2000]


def test_unknown_part_in_only_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--only", "layer,speed"])  # options alone mean `all`
    assert raised.value.code == 2
    assert "--only: unknown part(s) ['speed']" in capsys.readouterr().err


def test_smoke_reports_default_outside_the_committed_results(monkeypatch) -> None:
    seen = {}

    def record(parts, args, **kwargs):
        seen.update(parts=[part.name for part in parts], out=args.out, **kwargs)

    monkeypatch.setattr("scripts.bench.__main__.run_parts", record)
    main(["--smoke", "--only", "vocab"])
    assert seen["out"] == ROOT / "data" / "bench" / "smoke"
    assert (seen["parts"], seen["stem"]) == (["vocab"], "bench")
    main(["profile", "--out", "relative/out"])
    assert seen["out"] == Path("relative/out").resolve()
    assert (seen["parts"], seen["stem"]) == (["profile"], "step_profile")


def test_training_parts_build_the_shipped_model_configuration() -> None:
    from scripts.bench.training import default_model_parameters

    parameters = default_model_parameters()
    assert "name" not in parameters and "embedding_dim" not in parameters
    assert parameters["dnn_hidden_units"] == [256, 128, 64]
    assert (parameters["l2_mode"], parameters["l2_reg_embedding_field"]) == ("batch", 1e-7)
