"""Draw a saved image inline in the terminal (`qia generate --preview`, `/preview` in chat).

Three protocols, picked from the environment (no query is written to the terminal, nothing is read back):
- the kitty graphics protocol (kitty, Ghostty): `KITTY_WINDOW_ID`, `TERM=xterm-kitty`, `TERM_PROGRAM=ghostty`;
- iTerm2 inline images (iTerm2, WezTerm, mintty): `TERM_PROGRAM`, `LC_TERMINAL=iTerm2`;
- sixel (foot, Konsole, mlterm, contour, a TERM that names sixel), drawn by the `timg` package's encoder.

The kitty and iTerm2 sequences are a PNG in base64 inside one escape sequence each; they are written
here (no maintained package covers both and sixel with detection from the environment). Inside tmux or
screen nothing is drawn (they swallow graphics), nor when stdout is not a terminal.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

PROTOCOLS = ("kitty", "iterm2", "sixel")
KITTY_CHUNK = 4096  # base64 bytes per kitty escape sequence (the protocol's limit)
MAX_COLUMNS = 48  # the widest preview, in terminal cells
MAX_SIDE = 1024  # pixels: larger images are scaled down before they are sent


def detect(env: Mapping[str, str]) -> str | None:
    """The graphics protocol the terminal speaks, as its environment tells; None when unknown."""
    term = env.get("TERM", "").lower()
    program = env.get("TERM_PROGRAM", "").lower()
    if env.get("TMUX") or env.get("STY") or term.startswith(("screen", "tmux")):
        return None  # a multiplexer between us and the terminal passes no graphics by default
    if env.get("KITTY_WINDOW_ID") or term in {"xterm-kitty", "xterm-ghostty"} or program == "ghostty":
        return "kitty"
    if program in {"iterm.app", "wezterm", "mintty"} or env.get("LC_TERMINAL", "").lower() == "iterm2":
        return "iterm2"
    if env.get("WEZTERM_PANE"):
        return "iterm2"
    if env.get("KONSOLE_VERSION") or term in {"foot", "foot-extra", "mlterm", "contour"} or "sixel" in term:
        return "sixel"
    if program == "contour":
        return "sixel"
    return None


def kitty_sequence(png: bytes, columns: int | None = None) -> bytes:
    """Transmit and display a PNG (a=T, f=100) in chunks; q=2: the terminal sends no reply to read."""
    data = base64.standard_b64encode(png)
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [b""]
    out = []
    for index, chunk in enumerate(chunks):
        more = int(index < len(chunks) - 1)
        keys = f"a=T,f=100,q=2{f',c={columns}' if columns else ''},m={more}" if index == 0 else f"m={more}"
        out.append(b"\x1b_G" + keys.encode("ascii") + b";" + chunk + b"\x1b\\")
    return b"".join(out)


def iterm2_sequence(png: bytes, name: str = "image.png", columns: int | None = None) -> bytes:
    """iTerm2's inline image: OSC 1337 File=...:BASE64 BEL."""
    args = [
        "name=" + base64.standard_b64encode(name.encode("utf-8")).decode("ascii"),
        f"size={len(png)}",
        "inline=1",
        "preserveAspectRatio=1",
    ]
    if columns:
        args.append(f"width={columns}")
    return b"\x1b]1337;File=" + ";".join(args).encode("ascii") + b":" + base64.standard_b64encode(png) + b"\x07"


def sixel_sequence(image, width_px: int) -> bytes:
    """A DCS sixel stream of `image` at most `width_px` wide (256 colours; the height a multiple of 6)."""
    from PIL import Image
    from timg.methods.sixel import SixelMethod

    image = image.convert("RGB")
    if image.width > width_px:
        image = image.resize((width_px, max(6, round(image.height * width_px / image.width))), Image.Resampling.LANCZOS)
    height = max(6, image.height - image.height % 6)
    if height != image.height:
        image = image.crop((0, 0, image.width, height))
    return SixelMethod(image.quantize(256)).to_string().encode("ascii")


def _cells(out: IO) -> tuple[int, int, int]:
    """Terminal (columns, rows, cell width in pixels): the pixel width from the tty where it says."""
    columns, rows = shutil.get_terminal_size((80, 24))
    cell = 10
    try:
        import fcntl
        import struct
        import termios

        packed = fcntl.ioctl(out.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        r, c, xpixels, _ = struct.unpack("HHHH", packed)
        if c and xpixels:
            cell = max(4, xpixels // c)
        columns, rows = c or columns, r or rows
    except (ImportError, OSError, ValueError, AttributeError):
        pass
    return columns, rows, cell


def _columns(width: int, height: int, columns: int, rows: int) -> int:
    """How many cells wide to draw: at most MAX_COLUMNS and the terminal's width, and short enough to fit
    its height (a cell is about twice as tall as it is wide)."""
    by_height = int((rows - 3) * 2 * width / max(1, height))
    return max(8, min(MAX_COLUMNS, columns - 2, by_height))


def encode(path: Path, protocol: str, columns: int, cell_px: int) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    if protocol == "sixel":
        return sixel_sequence(image, columns * cell_px)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    png = buffer.getvalue()
    if protocol == "kitty":
        return kitty_sequence(png, columns)
    return iterm2_sequence(png, Path(path).name, columns)


def show(
    path: str | Path, setting: str = "auto", *, out: IO | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """Draw the image at `path` on `out` (stdout); the protocol used, or None when nothing was drawn (not a
    terminal, a terminal without graphics, an image that cannot be read). Never raises for those."""
    out = out if out is not None else sys.stdout
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    protocol = setting if setting in PROTOCOLS else detect(os.environ if env is None else env)
    if protocol is None:
        return None
    try:
        from PIL import Image

        with Image.open(path) as probe:
            width, height = probe.size
        columns, rows, cell = _cells(out)
        data = encode(Path(path), protocol, _columns(width, height, columns, rows), cell)
    except (OSError, ValueError, ImportError):
        return None
    out.flush()
    target = getattr(out, "buffer", None)
    if target is not None:
        target.write(data + b"\n")
        target.flush()
    else:
        out.write(data.decode("ascii") + "\n")
        out.flush()
    return protocol
