"""Config errors read as sentences: the key, the value, what is allowed, and the file's line and column;
a YAML syntax error names the line of the mistake itself. Real files through ``load_config``."""

from __future__ import annotations

import pytest

from midframe.config import EngineConfig, load_config, with_overrides
from midframe.errors import ConfigError

# The example config's shape, with room above so that the lines are not all small numbers.
PREAMBLE = "# midframe\n# settings\n\ninbox: ~/in\noutbox: ~/out\n\n"


def error_of(tmp_path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


@pytest.mark.parametrize(("body", "expected"), [
    # a union (auto or a number): one sentence, not one per branch ("literal['auto']", then "int")
    ("engine:\n  factor: 2\n  batch_size: two\n",
     "engine.batch_size = 'two' (line 9, column 15): use auto or a whole number"),
    ("engine:\n  fp16: maybe\n", "engine.fp16 = 'maybe' (line 8, column 9): use auto, true or false"),
    ("engine:\n  name: sora\n", "engine.name = 'sora' (line 8, column 9): use auto, rife, dis or blend"),
    ("engine:\n  factor: three\n", "engine.factor = 'three' (line 8, column 11): use a whole number from 2 to 16"),
    ("engine:\n  model_scale: big\n", "engine.model_scale = 'big' (line 8, column 16): use a number from 0.25 to 2"),
    ("engine:\n  scene_detect: sometimes\n", "engine.scene_detect = 'sometimes' (line 8, column 17): use true or false"),
    ("engine:\n  target_fps: fast\n", "engine.target_fps = 'fast' (line 8, column 15): 'fast' is not a frame rate"),
    ("daemon:\n  extensions: mp4\n", "daemon.extensions = 'mp4' (line 8, column 15): use a list of names"),
    ("daemon:\n  api_port: 70000\n", "daemon.api_port = 70000 (line 8, column 13): Input should be less than or equal"),
    ("engine: rife\n", "engine = 'rife' (line 7, column 9): use a mapping of its keys (name, factor"),
    ("engine:\n  device: gpu\n", "engine.device = 'gpu' (line 8, column 11): must be auto, cpu, mps, cuda or cuda:N"),
    # an unknown key points at the key itself
    ("engine:\n  factor: 2\n  bogus: 1\n", "unknown key 'engine.bogus' (line 9, column 3); allowed here: name, factor"),
    ("nope: 1\n", "unknown key 'nope' (line 7, column 1); allowed here: inbox, outbox"),
    # a profile's own key: its place in the profile, not the top level
    ("engine:\n  mode: smooth\nprofiles:\n  slow:\n    engine: {mode: fast}\n",
     "profiles.slow.engine.mode = 'fast' (line 11, column 20): use smooth or slowmo"),
    ("profiles:\n  slow:\n    output:\n      colour: red\n",
     "unknown key 'profiles.slow.output.colour' (line 10, column 7); allowed here: codec"),
    ("profiles:\n  q: 60fps\n", "profiles.q = '60fps' (line 8, column 6): use a mapping of its keys (engine, output)"),
])
def test_a_bad_value_names_key_value_what_is_allowed_and_where(tmp_path, body, expected):
    lines = error_of(tmp_path, PREAMBLE + body)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_several_mistakes_come_in_the_files_order(tmp_path):
    lines = error_of(tmp_path, PREAMBLE + "engine:\n  bogus: 1\n  factor: 40\ndaemon:\n  polling: often\n")
    assert [line[line.index("(line"):line.index(")") + 1] for line in lines] == [
        "(line 8, column 3)", "(line 9, column 11)", "(line 11, column 12)"]
    assert "unknown key 'engine.bogus'" in lines[0] and "engine.factor = 40" in lines[1]
    assert "daemon.polling = 'often' (line 11, column 12): use true or false" in lines[2]


@pytest.mark.parametrize(("text", "expected"), [
    # An unclosed quote swallows the lines down to the next quote: the parser gives up there (line 12),
    # naming the block it was in (line 7); the mistake is on line 8.
    (PREAMBLE + 'engine:\n  name: "rife\n  factor: 2\noutput:\n  crf: 18\n  name: "{stem}.x{ext}"\n  preset: fast\n',
     "not valid YAML: line 8, column 9: this quote is not closed on its line"),
    (PREAMBLE + "engine:\n  factor: 2\noutput:\n  name: '{stem}\n  crf: 18\n",
     "not valid YAML: line 10, column 9: this quote is never closed"),
    (PREAMBLE + "engine:\n  factor: 2\n\tname: rife\n", "not valid YAML: line 9, column 1: a tab: indent with spaces"),
    (PREAMBLE + "engine:\n  name: rife\n   factor: 2\n",
     "not valid YAML: line 9, column 10: a ':' where no key can start"),
    (PREAMBLE + "daemon:\n  extensions: [mp4, mkv\n  polling: true\n",
     "not valid YAML: line 8, column 15: the [ opened here is not closed"),
])
def test_a_syntax_error_names_the_line_of_the_mistake(tmp_path, text, expected):
    lines = error_of(tmp_path, text)
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert "while parsing" not in lines[0] and "<unicode string>" not in lines[0]


def test_a_cli_option_is_told_the_same_way_without_a_line():
    with pytest.raises(ConfigError) as caught:
        with_overrides(EngineConfig(), batch_size="two")
    assert str(caught.value) == "option: batch_size = 'two': use auto or a whole number"
