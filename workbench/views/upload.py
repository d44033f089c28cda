"""An upload button that streams a file to the kernel in pieces, so big models arrive whole.

ipywidgets' ``FileUpload`` sends the whole file in one websocket message; a Jupyter server
refuses messages above tornado's ``websocket_max_message_size`` (10 MB by default) and the upload
then fails with no message at all. This widget (an ``anywidget``) sends the file in pieces of
``chunk_bytes``, each acknowledged by the kernel before the next, so any server setting works, and
it asks the kernel first, which refuses a file above ``max_bytes`` or of the wrong type with a
message instead of starting. The pieces go to a hidden ``.part`` file in the target folder that
becomes the real file only when every byte arrived; an interrupted or refused upload leaves
nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import anywidget
import traitlets

from workbench.workspace import unused_path

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 512 * MB
DEFAULT_CHUNK_BYTES = 4 * MB  # far below any websocket limit

_ESM = r"""
function render({ model, el }) {
  const label = document.createElement("label");
  label.className = "wb-upload-button jupyter-button widget-button";
  const input = document.createElement("input");
  input.type = "file";
  input.style.display = "none";
  const text = document.createElement("span");
  label.append(input, text);
  const note = document.createElement("span");
  note.className = "wb-upload-note";
  el.classList.add("wb-upload");
  el.append(label, note);
  let file = null;
  const draw = () => {
    text.textContent = "\u2191 " + model.get("description");
    input.accept = model.get("accept");
    note.textContent = model.get("note");
  };
  model.on("change:description", draw);
  model.on("change:accept", draw);
  model.on("change:note", draw);
  draw();
  const sendChunk = async (offset) => {
    const end = Math.min(offset + model.get("chunk_bytes"), file.size);
    try {
      const buffer = await file.slice(offset, end).arrayBuffer();
      model.send({ event: "chunk", offset: offset }, undefined, [buffer]);
    } catch (err) {
      model.send({ event: "abort", reason: String(err) });
    }
  };
  model.on("msg:custom", (msg) => {
    if (!file) return;
    if (msg.event === "go" || msg.event === "ack") {
      const offset = msg.event === "go" ? 0 : msg.offset;
      if (offset >= file.size) {
        model.send({ event: "end" });
        file = null;
      } else {
        sendChunk(offset);
      }
    } else if (msg.event === "refused") {
      file = null;
    }
  });
  input.addEventListener("change", () => {
    if (!input.files.length) return;
    file = input.files[0];
    input.value = "";
    model.send({ event: "start", name: file.name, size: file.size });
  });
}
export default { render };
"""

_CSS = """
.wb-upload { display: flex; align-items: center; gap: 6px; }
.wb-upload-button { cursor: pointer; display: inline-flex; align-items: center; padding: 0 8px; }
.wb-upload-note { font-size: 90%; color: var(--jp-ui-font-color2, #666); }
"""


def size_text(size: int) -> str:
    """A file size as people read it: ``512 B``, ``37.5 kB``, ``30.0 MB``."""
    if size < 1000:
        return f"{size} B"
    if size < MB:
        return f"{size / 1000:.1f} kB"
    return f"{size / MB:,.1f} MB"


class UploadRefused(Exception):
    """An upload the widget refused; the message says why (shown to the user)."""


class ChunkedUpload(anywidget.AnyWidget):
    """Upload one file into ``folder``, in pieces; report the saved path or why it was refused.

    Args:
        folder: Where the file goes (a callable returning it, so a workspace set later counts).
        accept: File endings taken (``".onnx"``, ``".npz"``; several comma-separated).
        description: The button's text.
        max_bytes: The largest file taken.

    Attributes:
        note: The line shown beside the button (progress, then what happened).
    """

    _esm = _ESM
    _css = _CSS
    description = traitlets.Unicode("Upload").tag(sync=True)
    accept = traitlets.Unicode(".onnx").tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    max_bytes = traitlets.Int(DEFAULT_MAX_BYTES).tag(sync=True)
    chunk_bytes = traitlets.Int(DEFAULT_CHUNK_BYTES).tag(sync=True)

    def __init__(self, folder: Callable[[], Path], *, accept: str = ".onnx", description: str = "Upload",
                 max_bytes: int = DEFAULT_MAX_BYTES, **kwargs):
        super().__init__(accept=accept, description=description, max_bytes=max_bytes, **kwargs)
        self._folder = folder
        self._done: list[Callable[[Path], None]] = []
        self._refused: list[Callable[[str], None]] = []
        self._part: Path | None = None
        self._name = ""
        self._size = 0
        self._written = 0
        self.on_msg(self._on_msg)

    def on_upload(self, callback: Callable[[Path], None]) -> None:
        """Call ``callback(path)`` with each file saved whole."""
        self._done.append(callback)

    def on_refuse(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(message)`` for each upload refused or broken off."""
        self._refused.append(callback)

    # -- the protocol: start -> go, chunk -> ack (repeated), end; refused / abort on the way

    def _on_msg(self, _widget, content, buffers) -> None:
        event = content.get("event")
        try:
            if event == "start":
                self._start(str(content.get("name", "")), int(content.get("size", -1)))
                self.send({"event": "go"})
            elif event == "chunk":
                self._chunk(int(content.get("offset", -1)), buffers[0] if buffers else b"")
                self.send({"event": "ack", "offset": self._written})
            elif event == "end":
                self._end()
            elif event == "abort":
                raise UploadRefused(f"{self._name}: the browser could not read the file "
                                    f"({content.get('reason', 'no reason given')}).")
        except (UploadRefused, OSError) as err:  # OSError: the disk is full, the folder is gone...
            self._discard()
            self.note = ""
            self.send({"event": "refused", "message": str(err)})
            for callback in self._refused:
                callback(str(err))

    def _start(self, name: str, size: int) -> None:
        self._discard()
        name = Path(name).name
        endings = [e.strip().lower() for e in self.accept.split(",") if e.strip()]
        if not name or (endings and not name.lower().endswith(tuple(endings))):
            raise UploadRefused(f"{name or 'the file'}: only {', '.join(endings)} files are taken here.")
        if size <= 0:
            raise UploadRefused(f"{name} is empty.")
        if size > self.max_bytes:
            raise UploadRefused(
                f"{name} is {size_text(size)}; uploads stop at {self.max_bytes / MB:,.0f} MB. Copy the file "
                "to the machine JupyterLab runs on and type its path instead.")
        folder = Path(self._folder())
        folder.mkdir(parents=True, exist_ok=True)
        self._part = unused_path(folder, f".{name}.part")
        self._part.write_bytes(b"")
        self._name, self._size, self._written = name, size, 0
        self.note = f"uploading {name}: 0 of {size_text(size)}"

    def _chunk(self, offset: int, data) -> None:
        if self._part is None:
            raise UploadRefused("a piece of a file arrived with no upload started; upload it again.")
        data = bytes(data)
        if offset != self._written or self._written + len(data) > self._size:
            raise UploadRefused(f"{self._name}: the pieces arrived out of order; upload it again.")
        with open(self._part, "ab") as out:
            out.write(data)
        self._written += len(data)
        self.note = f"uploading {self._name}: {size_text(self._written)} of {size_text(self._size)}"

    def _end(self) -> None:
        if self._part is None or self._written != self._size:
            raise UploadRefused(f"{self._name}: {self._written:,} of {self._size:,} bytes arrived; upload it again.")
        target = unused_path(self._part.parent, self._name)
        os.replace(self._part, target)
        self._part = None
        self.note = f"uploaded {target.name} ({size_text(self._size)})"
        for callback in self._done:
            callback(target)

    def _discard(self) -> None:
        if self._part is not None:
            self._part.unlink(missing_ok=True)
            self._part = None
