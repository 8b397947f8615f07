"""`qia config path|show|get|set|unset|edit`, run through the real entry point (exit codes, streams)."""

from __future__ import annotations

import json
import shlex
import sys

import pytest
import tomllib


def config_file(home):
    return home / "config" / "config.toml"


def test_path(qia, isolated_home):
    rc, out, _ = qia("config", "path")
    assert rc == 0 and out.strip() == str(config_file(isolated_home))


def test_set_get_show_with_sources(qia, isolated_home, monkeypatch, tmp_path):
    pipeline = tmp_path / "my-pipeline"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    monkeypatch.chdir(tmp_path)
    assert qia("config", "set", "steps", "20")[0] == 0
    assert qia("config", "set", "ask", "no")[0] == 0
    assert qia("config", "set", "image_model", "./my-pipeline")[0] == 0  # stored absolute: works from any folder
    assert tomllib.loads(config_file(isolated_home).read_text()) == {
        "steps": 20,
        "ask": False,
        "image_model": str(pipeline),
    }
    assert (config_file(isolated_home).stat().st_mode & 0o777) == 0o600

    assert qia("config", "get", "steps")[1] == "20\n"
    assert qia("config", "get", "ask")[1] == "false\n"
    assert qia("config", "get", "guidance")[1] == "\n"  # unset optional: empty

    monkeypatch.setenv("QIA_DEVICE", "cpu")
    rc, out, _ = qia("config", "show", "--json")
    shown = json.loads(out)
    assert rc == 0 and shown["config_file"] == str(config_file(isolated_home)) and shown["exists"] is True
    settings = shown["settings"]
    assert settings["steps"] == {"value": 20, "source": "file"}
    assert settings["device"] == {"value": "cpu", "source": "env"}
    assert settings["search"] == {"value": "off", "source": "env"}  # the test harness sets QIA_SEARCH=off
    assert settings["llm_ctx"] == {"value": None, "source": "default"}

    rc, out, _ = qia("config", "show")
    line = next(li for li in out.splitlines() if li.startswith("steps "))
    assert line.split() == ["steps", "20", "file"]


def test_secrets_are_masked(qia, isolated_home):
    assert qia("config", "set", "llm_api_key", "sk-secret-123")[0] == 0
    assert tomllib.loads(config_file(isolated_home).read_text())["llm_api_key"] == "sk-secret-123"
    for args in (("config", "show"), ("config", "show", "--json"), ("config", "get", "llm_api_key")):
        rc, out, err = qia(*args)
        assert rc == 0 and "sk-secret" not in out + err and "***" in out


def test_bad_key_or_value_is_usage_error_and_file_untouched(qia, isolated_home):
    qia("config", "set", "steps", "20")
    before = config_file(isolated_home).read_bytes()
    rc, out, err = qia("config", "set", "stepz", "20")
    assert rc == 2 and out == "" and "unknown setting 'stepz'" in err and "Traceback" not in err
    rc, _, err = qia("config", "set", "steps", "lots")
    assert rc == 2 and "invalid value for 'steps'" in err
    rc, _, err = qia("config", "set", "device", "tpu")
    assert rc == 2 and "device" in err
    assert qia("config", "get", "nope")[0] == 2
    assert config_file(isolated_home).read_bytes() == before


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("llm", "/etc/passwd", "not a GGUF"),
        ("llm", "./missing.gguf", "missing.gguf"),
        ("width", "63", "multiple of 8"),
        ("height", "100", "multiple of 8"),
        ("outdir", "/proc", "not writable"),
        ("image_model", "./missing", "no such folder"),
        ("scorer", "./missing", "does not exist"),
        ("search", "fixture:/nonexistent/search.json", "cannot be read"),
        ("search", "google", "unknown search backend"),
        ("llm_url", "ftp://example.org", "http(s)"),
    ],
)
def test_set_checks_what_a_value_means_not_only_its_type(qia, isolated_home, key, value, message):
    rc, out, err = qia("config", "set", key, value)
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not config_file(isolated_home).exists()


def test_set_stores_local_paths_absolute(qia, isolated_home, tmp_path, monkeypatch):
    fixture = tmp_path / "search.json"
    fixture.write_text("[]")
    monkeypatch.chdir(tmp_path)
    assert qia("config", "set", "outdir", "./images")[0] == 0
    assert qia("config", "set", "search", "fixture:search.json")[0] == 0
    assert not (tmp_path / "images").exists()  # checked, not created
    assert tomllib.loads(config_file(isolated_home).read_text()) == {
        "outdir": str(tmp_path / "images"),
        "search": f"fixture:{fixture}",
    }


def test_set_takes_a_negative_number_as_a_value(qia, isolated_home):
    rc, _, err = qia("config", "set", "search_timeout", "-1")
    assert rc == 2 and "greater than 0" in err and "No such option" not in err
    assert qia("config", "set", "llm_gpu_layers", "-1")[0] == 0
    assert qia("config", "get", "llm_gpu_layers")[1] == "-1\n"


def test_config_folder_is_private_like_the_file(qia, isolated_home):
    assert qia("config", "set", "steps", "4")[0] == 0
    assert (config_file(isolated_home).parent.stat().st_mode & 0o777) == 0o700


def test_unset(qia, isolated_home):
    qia("config", "set", "steps", "20")
    qia("config", "set", "width", "768")
    assert qia("config", "unset", "steps")[0] == 0
    assert tomllib.loads(config_file(isolated_home).read_text()) == {"width": 768}
    assert qia("config", "get", "steps")[1] == "\n"
    assert qia("config", "unset", "steps")[0] == 0  # not set: still fine
    assert qia("config", "unset", "bogus")[0] == 2


def test_unset_removes_a_typo_that_blocks_startup(qia, isolated_home):
    file = config_file(isolated_home)
    file.parent.mkdir(parents=True)
    file.write_text("stepz = 4\nwidth = 640\n")
    rc, _, err = qia("config", "show")
    assert rc == 2 and "unknown setting 'stepz'" in err
    assert qia("config", "unset", "stepz")[0] == 0
    assert qia("config", "get", "width")[1] == "640\n"


def test_env_override_is_warned_and_quiet_silences_notes(qia, monkeypatch):
    monkeypatch.setenv("QIA_STEPS", "30")
    rc, out, err = qia("config", "set", "steps", "10")
    assert rc == 0 and "QIA_STEPS" in err and "overrides" in err
    assert qia("config", "get", "steps")[1] == "30\n"  # env wins over the file
    rc, out, err = qia("--quiet", "config", "set", "steps", "12")
    assert rc == 0 and out == "" and err == ""


def _editor(tmp_path, monkeypatch, text: str):
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\nopen(sys.argv[1], 'a').write({text!r})\n")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")


def test_edit_creates_a_commented_template_then_validates(qia, isolated_home, tmp_path, monkeypatch):
    _editor(tmp_path, monkeypatch, "steps = 30\n")
    rc, _, err = qia("config", "edit")
    assert rc == 0 and "valid" in err
    text = config_file(isolated_home).read_text()
    assert "# image_model = " in text and text.rstrip().endswith("steps = 30")
    assert tomllib.loads(text) == {"steps": 30}
    assert qia("config", "get", "steps")[1] == "30\n"


def test_edit_reports_every_problem(qia, isolated_home, tmp_path, monkeypatch):
    _editor(tmp_path, monkeypatch, 'stepz = 3\nwidth = "wide"\n')
    rc, _, err = qia("config", "edit")
    assert rc == 2
    assert "unknown setting 'stepz'" in err and "invalid value for 'width'" in err and "2 problem(s)" in err


def test_edit_without_editor_is_usage_error(qia, monkeypatch):
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    rc, _, err = qia("config", "edit")
    assert rc == 2 and "no editor" in err
