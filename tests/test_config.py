from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from midframe.config import (
    Config,
    EngineConfig,
    config_from_mapping,
    example_config_text,
    load_config,
    parse_fps,
    resolve_paths,
    with_overrides,
    write_example_config,
)
from midframe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_example_files_are_identical_and_equal_the_defaults():
    root_copy = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert root_copy == example_config_text()
    assert config_from_mapping(yaml.safe_load(root_copy)) == Config()


def test_example_documents_every_key():
    data = yaml.safe_load(example_config_text())
    for section, model in Config.model_fields.items():
        assert section in data, section
        annotation = model.annotation
        if hasattr(annotation, "model_fields"):
            assert set(data[section]) == set(annotation.model_fields), section


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"engine": {"factor": 1}}, "engine.factor = 1"),
        ({"engine": {"factor": 17}}, "engine.factor = 17"),
        ({"engine": {"bogus": 2}}, "unknown key 'engine.bogus'; allowed here: name, factor"),
        ({"nope": 1}, "unknown key 'nope'"),
        ({"engine": {"device": "gpu"}}, "engine.device = 'gpu': must be auto, cpu, mps, cuda or cuda:N"),
        ({"engine": {"name": "sora"}}, "engine.name = 'sora'"),
        ({"engine": {"target_fps": "fast"}}, "engine.target_fps = 'fast'"),
        ({"output": {"name": "{stem}{nope}"}}, "output.name"),
        ({"output": {"name": "a/{stem}"}}, "must be a file name"),
        ({"daemon": {"on_success": "shred"}}, "daemon.on_success = 'shred'"),
        ({"daemon": {"api_port": 70000}}, "daemon.api_port = 70000"),
    ],
)
def test_bad_values_name_the_key_and_value(mapping, expected):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(mapping, source="cfg.yaml")
    assert str(caught.value).startswith("cfg.yaml: ")
    assert expected in str(caught.value)


def test_several_errors_are_all_reported():
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"engine": {"factor": 0, "batch_size": 0}})
    assert "engine.factor" in str(caught.value) and "engine.batch_size" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [("60", Fraction(60)), ("60000/1001", Fraction(60000, 1001)), ("29.97", Fraction(30000, 1001)),
     (50, Fraction(50)), (23.976, Fraction(24000, 1001))],
)
def test_parse_fps(text, value):
    assert parse_fps(text) == value


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1/0", "5000", True])
def test_parse_fps_refuses(text):
    with pytest.raises(ValueError):
        parse_fps(text)


def test_load_config_reports_yaml_and_file_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("engine: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)


def test_load_config_reads_values_and_paths(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"inbox: {tmp_path}/in\nengine: {{factor: 3, target_fps: 60000/1001}}\n"
        "daemon: {extensions: [.MP4, mkv]}\n",
        encoding="utf-8",
    )
    config = load_config(cfg)
    assert config.engine.factor == 3 and config.engine.target_fps == Fraction(60000, 1001)
    assert config.daemon.extensions == ("mp4", "mkv")
    paths = resolve_paths(config)
    assert paths.inbox == tmp_path / "in"
    assert paths.done_dir == tmp_path / "done" and paths.failed_dir == tmp_path / "failed"


def test_overrides_are_validated():
    engine = with_overrides(EngineConfig(), factor=4, device=None)
    assert engine.factor == 4 and engine.device == "auto"
    with pytest.raises(ConfigError, match="option: factor = 99"):
        with_overrides(EngineConfig(), factor=99)


def test_write_example_never_overwrites(tmp_path):
    target = tmp_path / "sub" / "config.yaml"
    write_example_config(target)
    assert load_config(target) == Config()
    with pytest.raises(ConfigError, match="already exists"):
        write_example_config(target)


def test_dedup_off_unquoted_in_yaml_means_off(tmp_path):
    # YAML 1.1 makes an unquoted `off` the boolean false; the user means the word.
    from midframe.config import load_config

    for written, meant in (("off", "off"), ("'off'", "off"), ("no", "off"), ("on", "auto"), ("auto", "auto")):
        path = tmp_path / "c.yaml"
        path.write_text(f"engine:\n  dedup: {written}\n", encoding="utf-8")
        assert load_config(path).engine.dedup == meant, written
