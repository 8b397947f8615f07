"""`--preview`: the terminal's graphics protocol from its environment, the kitty, iTerm2 and sixel sequences,
nothing at all without a terminal, and the escape sequence on a (pseudo-)terminal that says it is kitty."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import threading

import pytest
from PIL import Image

from qia_cli.cli import preview
from tests.conftest import run_qia, start_qia

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"KITTY_WINDOW_ID": "3", "TERM": "xterm-256color"}, "kitty"),
        ({"TERM_PROGRAM": "ghostty"}, "kitty"),
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm2"),
        ({"LC_TERMINAL": "iTerm2", "TERM": "xterm-256color"}, "iterm2"),
        ({"TERM_PROGRAM": "WezTerm"}, "iterm2"),
        ({"TERM": "foot"}, "sixel"),
        ({"KONSOLE_VERSION": "230804"}, "sixel"),
        ({"TERM": "xterm-256color"}, None),
        ({"TERM": "dumb"}, None),
        ({}, None),
        ({"KITTY_WINDOW_ID": "3", "TMUX": "/tmp/tmux-0/default,1,0"}, None),  # tmux swallows graphics
        ({"TERM": "screen-256color", "TERM_PROGRAM": "iTerm.app"}, None),
    ],
)
def test_the_protocol_comes_from_the_environment(env, expected):
    assert preview.detect(env) == expected


def png_bytes(size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def test_kitty_sends_the_png_in_chunks_with_no_reply():
    png = png_bytes((96, 96))
    data = preview.kitty_sequence(png, columns=20)
    parts = re.findall(rb"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", data)
    assert len(parts) > 1 and b"".join(b"\x1b_G" + k + b";" + p + b"\x1b\\" for k, p in parts) == data
    assert parts[0][0] == b"a=T,f=100,q=2,c=20,m=1" and parts[-1][0] == b"m=0"
    assert all(k == b"m=1" for k, _ in parts[1:-1]) and all(len(p) <= preview.KITTY_CHUNK for _, p in parts)
    assert base64.standard_b64decode(b"".join(p for _, p in parts)) == png


def test_iterm2_is_one_osc_1337_sequence():
    png = png_bytes()
    data = preview.iterm2_sequence(png, "cat.png", columns=30)
    match = re.fullmatch(rb"\x1b\]1337;File=([^:]*):([A-Za-z0-9+/=]+)\x07", data)
    assert match is not None
    args = dict(a.split(b"=", 1) for a in match.group(1).split(b";"))
    assert base64.b64decode(args[b"name"]) == b"cat.png" and args[b"size"] == str(len(png)).encode()
    assert args[b"inline"] == b"1" and args[b"width"] == b"30"
    assert base64.standard_b64decode(match.group(2)) == png


def test_sixel_is_a_dcs_stream_of_bands_no_wider_than_asked():
    image = Image.effect_noise((200, 100), 80).convert("RGB")
    data = preview.sixel_sequence(image, 50)
    assert data.startswith(b"\x1bPq") and data.endswith(b"\x1b\\") and b"#0;2;" in data
    bands = data[3:-2].split(b"-")[:-1]
    assert len(bands) == 25 // 6  # 50x25 after scaling: four whole bands of six rows
    assert all(set(b) < set(range(32, 127)) for b in bands)


class FakeTerminal(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def isatty(self) -> bool:
        return True


def test_show_draws_nothing_without_a_terminal_or_a_protocol(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes())
    pipe = io.StringIO()
    assert preview.show(path, "auto", out=pipe, env={"TERM": "xterm-kitty"}) is None and pipe.getvalue() == ""
    terminal = FakeTerminal()
    assert preview.show(path, "auto", out=terminal, env={"TERM": "xterm"}) is None
    assert terminal.buffer.getvalue() == b""
    assert preview.show(tmp_path / "missing.png", "kitty", out=terminal) is None  # unreadable: no error
    assert preview.show(path, "iterm2", out=terminal, env={}) == "iterm2"  # the setting names one
    assert terminal.buffer.getvalue().startswith(b"\x1b]1337;File=")


GENERATE = ["generate", "a red bicycle", "--no-plan", "--steps", "1", "--seed", "3", "--preview"]


def test_preview_without_a_terminal_exits_0_and_prints_nothing_extra(tiny_pipeline_dir, tmp_path):
    args = [*GENERATE, "--model", str(tiny_pipeline_dir), "--outdir", str(tmp_path)]
    result = run_qia(*args, env={"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1", "COLUMNS": "1000"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
    (line,) = result.stdout.splitlines()  # the saved image's line, as without --preview
    assert line.startswith("saved ")


def test_preview_on_a_kitty_terminal_writes_the_kitty_sequence(tiny_pipeline_dir, tmp_path):
    args = [*GENERATE, "--model", str(tiny_pipeline_dir), "--outdir", str(tmp_path)]
    env = {"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1", "COLUMNS": "80", "LINES": "40"}
    master, slave = os.openpty()
    proc = start_qia(*args, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                return
            if not data:
                return
            received.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    _out, err = proc.communicate(timeout=300)
    reader.join(10)
    os.close(master)
    assert proc.returncode == 0, err.decode()
    data = b"".join(received)
    assert b"saved " in data and b"\x1b_Ga=T,f=100,q=2," in data
    payload = b"".join(re.findall(rb"\x1b_G[^;]*;([A-Za-z0-9+/=]*)\x1b\\", data))
    assert base64.standard_b64decode(payload).startswith(PNG_SIGNATURE)
