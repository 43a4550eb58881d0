"""Weights from a card's source: a file beside the card, an https URL, or a Google Drive
id or share link (downloaded with gdown). Downloads land in a cache folder, are written
atomically and are verified by sha256 before use; anything wrong is deleted and reported
as FetchError naming the model, the source and what to do.
"""

import hashlib
import os
import re
import tempfile
from pathlib import Path

import gdown
import requests
from gdown.exceptions import FileURLRetrievalError

from skin.files import file_sha256

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 20  # between bytes: a stalled server fails in seconds, a slow one finishes
DRIVE_ID = re.compile(r"^[-\w]{20,}$")
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")
WEIGHT_LOCATIONS = ("file", "url", "gdrive")  # the keys of a card's source that say where


class FetchError(Exception):
    """Weights that cannot be had; the message names the model and its source."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "skin-lesion-models"
    return Path(os.environ.get("SKIN_CACHE_DIR", default))


def describe(source: dict) -> str:
    for key in WEIGHT_LOCATIONS:
        if source.get(key):
            return f"{key} {source[key]}"
    return "no source"


def drive_url(link_or_id: str) -> str:
    """A Drive file id, or any Drive share link (/file/d/ID/view, open?id=ID, uc?id=ID)."""
    if DRIVE_ID.match(link_or_id):
        return f"https://drive.google.com/uc?id={link_or_id}"
    file_id, _ = gdown.parse_url.parse_url(link_or_id)
    if not file_id:
        raise ValueError(f"{link_or_id!r} is neither a Google Drive file id nor a share link")
    return f"https://drive.google.com/uc?id={file_id}"


def cached_path(card: dict) -> Path:
    return cache_dir() / f"{card['name']}-{card['source']['sha256'][:16]}.weights.h5"


def local_path(card: dict) -> Path | None:
    """Where this card's weights are (or would be) on disk."""
    if card["source"].get("file"):
        return Path(card["_path"]).parent / card["source"]["file"]
    if card["source"].get("sha256"):
        return cached_path(card)
    return None


def fetch(card: dict) -> Path:
    """The verified weights file of a card, downloading it first where needed."""
    source, name = card["source"], card["name"]
    expected = source.get("sha256")
    if source.get("file"):
        path = local_path(card)
        if not path.is_file():
            raise FetchError(f"model {name}: its weights file {path} is missing; restore it "
                             "(git checkout / git lfs pull) or retrain the model")
        if expected and file_sha256(path) != expected:
            raise FetchError(f"model {name}: {path} does not match the sha256 in its card "
                             "(corrupt or replaced); restore the file or retrain")
        return path
    if not expected:
        raise FetchError(f"model {name}: a downloaded source needs a sha256 in its card")
    if source.get("url"):
        url = source["url"]
        if not url.lower().startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise FetchError(f"model {name}: only https URLs are fetched, not {url}")
    elif source.get("gdrive"):
        try:
            url = drive_url(source["gdrive"])
        except ValueError as e:
            raise FetchError(f"model {name}: {e}") from None
    else:
        raise FetchError(f"model {name}: its card names no weights source")
    target = cached_path(card)
    if target.is_file():
        if file_sha256(target) == expected:
            return target
        target.unlink()  # a stale or damaged cache entry: download again
    _download(url, target, expected, f"model {name} ({describe(source)})")
    return target


def _download(url: str, target: Path, expected: str, what: str) -> None:
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    # A private folder: gdown keeps partial files of its own, and all of it goes on failure.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as scratch:
        tmp = Path(scratch) / target.name
        try:
            gdown.download(url=url, output=str(tmp), quiet=True, hasher=digest,
                           timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), use_cookies=False)
        except FileURLRetrievalError:
            raise FetchError(f"{what}: Google Drive would not serve the file (not shared "
                             "publicly, or its download quota is exceeded); try later or "
                             "host the weights elsewhere") from None
        except requests.exceptions.Timeout:
            raise FetchError(f"{what}: the server did not answer within "
                             f"{READ_TIMEOUT_S} s; try again later") from None
        except requests.exceptions.ConnectionError:
            raise FetchError(f"{what}: cannot connect (no network, or the server is "
                             "down); check the connection, or put the weights file in "
                             "place by hand") from None
        except (requests.exceptions.RequestException, gdown.exceptions.DownloadError) as e:
            raise FetchError(f"{what}: the download failed or was cut short "
                             f"({_first_line(e)}); try again") from None
        with open(tmp, "rb") as f:
            head = f.read(1024).lstrip().lower()
        if head.startswith(HTML_MARKERS):
            raise FetchError(f"{what}: the server sent an HTML page instead of the weights "
                             "(Google Drive's quota or virus-scan page?); the download was "
                             "deleted")
        if digest.hexdigest() != expected:
            size = tmp.stat().st_size
            raise FetchError(f"{what}: the downloaded file ({size} bytes) does not match "
                             "the sha256 in the card (truncated or replaced); it was deleted")
        os.replace(tmp, target)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
