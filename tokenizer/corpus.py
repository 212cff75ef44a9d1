"""A default English training corpus built at run time from Python's own documentation.

No corpus file ships with the project: every Python 3 install carries `pydoc_data.topics` (the
language reference topics behind `help()`, about 0.5 MB) and the docstrings of its standard
library modules (about 1 MB more). Documents are joined by `DOCUMENT_SEPARATOR` in a fixed order
(topics sorted by name, then a fixed module list in alphabetical order, members sorted by name), so
one Python version builds byte-identical text on every machine. Sizes are UTF-8 bytes.

The text is built in a fresh, isolated interpreter (`python -I this_file`), never in the caller's
process: the imports cannot touch the caller, and hooks the caller may have replaced (pytest swaps
`sys.excepthook`, `warnings.showwarning`, ...) cannot change the text. About 0.5 s, once per process.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import subprocess
import sys
import warnings

DOCUMENT_SEPARATOR = "<|endoftext|>"

# A fixed list of modules that import without side effects (no windows, no printing, no threads,
# no network). Never walk pkgutil: tkinter, turtle, antigravity, this, idlelib and friends act on
# import. Missing modules (platform-specific builds) are skipped.
_SAFE_MODULES: tuple[str, ...] = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "bz2", "calendar", "cmath",
    "codecs", "collections", "colorsys", "concurrent.futures", "configparser", "contextlib",
    "contextvars", "copy", "csv", "ctypes", "dataclasses", "datetime", "decimal", "difflib", "dis",
    "doctest", "email", "email.message", "email.utils", "enum", "filecmp", "fnmatch", "fractions",
    "ftplib", "functools", "gc", "getopt", "gettext", "glob", "graphlib", "gzip", "hashlib", "heapq",
    "hmac", "html", "html.parser", "http", "http.client", "http.cookies", "http.server", "imaplib",
    "importlib", "inspect", "io", "ipaddress", "itertools", "json", "keyword", "linecache", "locale",
    "logging", "logging.handlers", "lzma", "mailbox", "math", "mimetypes", "multiprocessing",
    "numbers", "operator", "optparse", "os", "os.path", "pathlib", "pickle", "pickletools",
    "platform", "plistlib", "poplib", "pprint", "pstats", "queue", "quopri", "random", "re",
    "reprlib", "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib",
    "socket", "socketserver", "sqlite3", "ssl", "stat", "statistics", "string", "stringprep",
    "struct", "subprocess", "symtable", "sys", "tarfile", "tempfile", "textwrap", "threading",
    "time", "timeit", "token", "tokenize", "trace", "traceback", "tracemalloc", "types", "typing",
    "unicodedata", "unittest", "unittest.mock", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax",
    "xmlrpc.client", "zipfile", "zipimport", "zlib", "zoneinfo",
)


def _topic_documents() -> list[str]:
    from pydoc_data.topics import topics  # plain data module: a dict of str

    return [topics[name].strip() for name in sorted(topics)]


def _member_docstrings(obj: object) -> list[str]:
    """Docstrings of the public classes/functions of a module (and one level of methods)."""
    docs: list[str] = []
    for name in sorted(vars(obj)):
        if name.startswith("_"):
            continue
        member = vars(obj)[name]
        if not (inspect.isclass(member) or inspect.isroutine(member)):
            continue
        doc = inspect.getdoc(member) if inspect.isclass(member) else member.__doc__
        if doc:
            docs.append(f"{name}\n\n{inspect.cleandoc(doc)}")
        if inspect.isclass(member):
            for meth_name in sorted(vars(member)):
                meth = vars(member)[meth_name]
                if meth_name.startswith("_") or not inspect.isroutine(meth) or not meth.__doc__:
                    continue
                docs.append(f"{name}.{meth_name}\n\n{inspect.cleandoc(meth.__doc__)}")
    return docs


def _module_document(module_name: str) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(module_name)
    except Exception:  # not built on this platform: skip it, the corpus stays deterministic per build
        return None
    parts = [inspect.cleandoc(module.__doc__)] if module.__doc__ else []
    parts += _member_docstrings(module)
    text = "\n\n".join(p for p in parts if p.strip())
    return text or None


def _build_text() -> str:
    """The corpus, built in this process (run only in the isolated child)."""
    documents = _topic_documents()
    for name in _SAFE_MODULES:
        doc = _module_document(name)
        if doc is not None:
            documents.append(doc)
    return DOCUMENT_SEPARATOR.join(documents)


@functools.lru_cache(maxsize=1)
def _full_corpus_text() -> str:
    child = subprocess.run([sys.executable, "-I", os.path.abspath(__file__)], capture_output=True, check=True,
                           stdin=subprocess.DEVNULL, timeout=120)
    return child.stdout.decode("utf-8")


def stdlib_corpus_text(max_bytes: int | None = None) -> str:
    """The corpus text (documents joined by "<|endoftext|>"), cut to at most `max_bytes` UTF-8 bytes.

    A cut falls on a character boundary (never inside a UTF-8 sequence). Cached per process.
    """
    text = _full_corpus_text()
    if max_bytes is None:
        return text
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be non-negative, got {max_bytes}")
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def write_stdlib_corpus(path: str | os.PathLike[str], max_bytes: int | None = None) -> int:
    """Write the corpus as UTF-8 to `path` (atomically); return the number of bytes written."""
    from accounting.atomic import atomic_write_text

    text = stdlib_corpus_text(max_bytes)
    atomic_write_text(path, text)
    return len(text.encode("utf-8"))


if __name__ == "__main__":  # the isolated child of _full_corpus_text
    sys.stdout.buffer.write(_build_text().encode("utf-8"))
