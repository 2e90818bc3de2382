"""The analysis de-duplicates reruns by the harness's resume key, read from
docs/resume-key.txt (which a Swift test holds to SweepConfig.keyColumns). Before,
its own key missed q_lora_rank and timed_steps, so three CSVs that differed only
there became one row."""

from __future__ import annotations

import synth

from analysis import merge, tables


def test_the_key_is_the_harness_resume_key_per_group_and_host():
    key = merge.read_resume_key()
    assert "repeat" in key   # the harness resumes at the right repeat
    # Repeats of one configuration are one configuration here (UNIT_KEY tells them apart).
    assert merge.CONFIG_KEY == [k for k in key if k != "repeat"] + ["tp_group", "host"]
    assert "repeat" in merge.UNIT_KEY
    for column in ("q_lora_rank", "timed_steps", "warmup_steps", "seed", "calib_source", "world_size", "dp", "timing_mode"):
        assert column in key, column


def test_rows_that_differ_only_in_a_key_column_are_all_kept(tmp_path):
    files = []
    for i, over in enumerate([dict(q_lora_rank=16, timed_steps=20), dict(q_lora_rank=32, timed_steps=20),
                              dict(q_lora_rank=16, timed_steps=40)]):
        cols = synth.COLUMNS + ["q_lora_rank"]
        files.append(synth.write_csv(tmp_path / f"r{i}.csv", [synth.row("mla", date=f"2026-01-0{i + 1}T00:00:00Z", **over)],
                                     columns=cols))
    got = merge.load_sweeps(files)
    assert len(got.rows) == 3, got.notes


def test_a_rerun_of_one_configuration_is_still_one_configuration(tmp_path):
    a = synth.write_csv(tmp_path / "a.csv", [synth.row("mla", date="2026-01-01T00:00:00Z", kernel_us=100.0,
                                                       run_id="a")])
    b = synth.write_csv(tmp_path / "b.csv", [synth.row("mla", date="2026-01-02T00:00:00Z", kernel_us=90.0,
                                                       run_id="b")])
    got = merge.load_sweeps([a, b])
    assert len(got.rows) == 2 and got.rows["_config"].nunique() == 1
    assert len(tables.collapse_groups(got.rows)) == 1
