"""``cwl fetch`` against a loopback HTTP server serving archives made here: never a real dataset host.

The server listens on 127.0.0.1 on an ephemeral port, in a thread, and shuts itself down after a
minute even if a test forgets it.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from cwl_lib import cli
from cwl_lib.data import checksums, registry
from cwl_lib.data import fetch as fetch_mod
from cwl_lib.data.archives import BrokenArchiveError, Limits, UnsafeArchiveError, extract
from cwl_lib.data.fetch import FetchError, ManualDownloadRequired, fetch
from cwl_lib.data.ground_truth import write_gnd
from cwl_lib.paths import lock


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a stuck client connection cannot hold a server thread for long

    def do_GET(self):  # noqa: N802 (the http.server API)
        state = self.server.state
        state["hits"].append(self.path)
        body = state["files"].get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in state["cut_once"]:  # promise the whole body, send half, hang up
            state["cut_once"].discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("NO_PROXY", "no_proxy"):  # a proxy from the environment must not see loopback traffic
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = {"files": {}, "cut_once": set(), "hits": []}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    deadline = threading.Timer(60, httpd.shutdown)
    deadline.daemon = True
    deadline.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield httpd
    finally:
        deadline.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _serve(server, dataset: str, filename: str, body: bytes) -> None:
    server.state["files"][f"/{dataset}/{filename}"] = body


def make_tar(members: dict[str, bytes], links=(), gz=True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


KVASIR = {f"kvasir-dataset-v2/{c}/{i}.jpg": f"{c}{i}".encode() for c in ("polyps", "normal-z-line") for i in range(3)}


def _fetch(name, root, server, **kw):
    return fetch(name, root, mirror=server.url, progress=False, log=lambda _msg: None, **kw)


def gnd_bytes(tmp_path, imlist, qimlist) -> bytes:
    """A ground-truth pickle in the published format: each query answered by the first image."""
    path = tmp_path / "gnd.pkl"
    write_gnd(path, imlist, qimlist, [{"bbx": [0, 0, 1, 1], "easy": [0]} for _ in qimlist])
    return path.read_bytes()


@pytest.fixture
def small(paper_sizes):
    """The counts of the small archives these tests serve."""
    paper_sizes("kvasir", train=4, test=2, classes=2, per_class=3)
    paper_sizes("mit67", train=1, test=1, classes=2)
    paper_sizes("chest-xray", train=2, test=2, classes=2)
    paper_sizes("roxford5k", train=1, test=1)
    paper_sizes("rparis6k", train=2, test=1)


def _leftovers(root: Path, name: str) -> list[Path]:
    return list(root.glob(f".{name}.partial-*")) + list((root / "downloads" / name).glob("tmp*"))


def test_good_archive_installs_records_its_digest_and_is_not_fetched_twice(empty_data_root, small, server):
    body = make_zip(KVASIR)
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", body)
    folder = _fetch("kvasir", empty_data_root, server)

    assert folder == empty_data_root / "kvasir"
    assert (folder / "kvasir-dataset-v2/polyps/2.jpg").read_bytes() == b"polyps2"
    assert registry.missing(["kvasir"], empty_data_root) == []
    lock = json.loads((empty_data_root / checksums.LOCK_NAME).read_text())
    assert lock["files"]["kvasir/kvasir-dataset-v2.zip"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert not (empty_data_root / "downloads/kvasir/kvasir-dataset-v2.zip").exists()  # archives go by default
    assert _leftovers(empty_data_root, "kvasir") == []

    hits = len(server.state["hits"])
    assert _fetch("kvasir", empty_data_root, server) == folder
    assert len(server.state["hits"]) == hits


def test_every_paper_dataset_lands_in_the_layout_the_registry_checks(empty_data_root, small, server, tmp_path):
    _serve(server, "mit67", "indoorCVPR_09.tar",
           make_tar({"Images/kitchen/a.jpg": b"k", "Images/bar/b.jpg": b"b"}, gz=False))
    _serve(server, "mit67", "TrainImages.txt", b"kitchen/a.jpg\n")
    _serve(server, "mit67", "TestImages.txt", b"bar/b.jpg\n")
    _serve(server, "roxford5k", "oxbuild_images-v1.tgz", make_tar({"all_souls_000001.jpg": b"o"}))
    _serve(server, "roxford5k", "gnd_roxford5k.pkl", gnd_bytes(tmp_path, ["all_souls_000001"], ["all_souls_000001"]))
    _serve(server, "rparis6k", "paris_1-v1.tgz", make_tar({"paris/defense/paris_defense_000000.jpg": b"d"}))
    _serve(server, "rparis6k", "paris_2-v1.tgz", make_tar({"paris/eiffel/paris_eiffel_000000.jpg": b"e"}))
    _serve(server, "rparis6k", "gnd_rparis6k.pkl",
           gnd_bytes(tmp_path, ["paris_defense_000000", "paris_eiffel_000000"], ["paris_eiffel_000000"]))
    for name in ("mit67", "roxford5k", "rparis6k"):
        _fetch(name, empty_data_root, server)

    assert registry.missing(["mit67", "roxford5k", "rparis6k"], empty_data_root) == []
    assert (empty_data_root / "mit67/Images/kitchen/a.jpg").read_bytes() == b"k"
    assert (empty_data_root / "roxford5k/jpg/all_souls_000001.jpg").is_file()
    # revisitop reads jpg/<name>.jpg: the landmark folders of the Paris archives are flattened
    assert sorted(p.name for p in (empty_data_root / "rparis6k/jpg").iterdir()) == [
        "paris_defense_000000.jpg", "paris_eiffel_000000.jpg"]


def test_chest_xray_names_the_manual_file_then_installs_it(empty_data_root, small, monkeypatch):
    monkeypatch.delenv("CWL_DATA_MIRROR", raising=False)
    zip_path = empty_data_root / "downloads/chest-xray/ChestXRay2017.zip"
    with pytest.raises(ManualDownloadRequired) as err:
        fetch("chest-xray", empty_data_root, log=lambda _m: None)
    assert str(zip_path) in str(err.value) and "data.mendeley.com" in str(err.value)

    zip_path.parent.mkdir(parents=True)
    zip_path.write_bytes(make_zip({**{f"chest_xray/{part}/{c}/{c}-{part}.jpeg": b"x" for part in ("train", "test")
                                      for c in ("NORMAL", "PNEUMONIA")},
                                   "__MACOSX/chest_xray/._a.jpeg": b"junk"}))
    folder = fetch("chest-xray", empty_data_root, log=lambda _m: None)
    assert registry.missing(["chest-xray"], empty_data_root) == []
    assert not (folder / "__MACOSX").exists()
    assert zip_path.is_file()  # a file the user placed by hand stays


@pytest.mark.parametrize("member", ["../escaped.txt", "jpg/../../escaped.txt", "/escaped.txt"])
def test_archive_member_outside_its_folder_is_refused(empty_data_root, server, member):
    _serve(server, "roxford5k", "oxbuild_images-v1.tgz", make_tar({"ok.jpg": b"o", member: b"evil"}))
    _serve(server, "roxford5k", "gnd_roxford5k.pkl", b"gnd")
    with pytest.raises(FetchError, match="unsafe file .* was removed"):
        _fetch("roxford5k", empty_data_root, server)

    assert list(empty_data_root.parent.rglob("escaped.txt")) == []
    assert not (empty_data_root / "roxford5k").exists()
    assert not (empty_data_root / "downloads/roxford5k/oxbuild_images-v1.tgz").exists()
    assert checksums.recorded(empty_data_root, "roxford5k", "oxbuild_images-v1.tgz") is None
    assert _leftovers(empty_data_root, "roxford5k") == []


def test_wrong_published_digest_discards_the_download(empty_data_root, server, monkeypatch):
    from dataclasses import replace

    source = fetch_mod.SOURCES["kvasir"]
    pinned = replace(source, files=(replace(source.files[0], sha256="0" * 64),))
    monkeypatch.setitem(fetch_mod.SOURCES, "kvasir", pinned)
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", make_zip(KVASIR))
    with pytest.raises(FetchError, match="does not match the digest its publisher states"):
        _fetch("kvasir", empty_data_root, server)
    assert not (empty_data_root / "kvasir").exists()
    assert list((empty_data_root / "downloads/kvasir").iterdir()) == []


def test_changed_file_fails_the_lock_and_leaves_data_in_place(empty_data_root, small, server):
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", make_zip(KVASIR))
    _fetch("kvasir", empty_data_root, server)
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", make_zip({"kvasir-dataset-v2/polyps/0.jpg": b"other"}))

    with pytest.raises(FetchError, match=r"does not match the digest recorded in .*cwl-data\.lock\.json"):
        _fetch("kvasir", empty_data_root, server, force=True)
    assert (empty_data_root / "kvasir/kvasir-dataset-v2/polyps/0.jpg").read_bytes() == b"polyps0"
    assert registry.missing(["kvasir"], empty_data_root) == []
    assert list((empty_data_root / "downloads/kvasir").iterdir()) == []


def test_download_cut_halfway_keeps_nothing_and_the_retry_succeeds(empty_data_root, small, server):
    body = make_zip(KVASIR)
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", body)
    server.state["cut_once"].add("/kvasir/kvasir-dataset-v2.zip")
    with pytest.raises(FetchError, match="no partial file was kept"):
        _fetch("kvasir", empty_data_root, server)
    assert not (empty_data_root / "kvasir").exists()
    assert [p for p in (empty_data_root / "downloads/kvasir").iterdir()] == []
    assert checksums.recorded(empty_data_root, "kvasir", "kvasir-dataset-v2.zip") is None

    _fetch("kvasir", empty_data_root, server)
    assert registry.missing(["kvasir"], empty_data_root) == []
    assert checksums.recorded(empty_data_root, "kvasir", "kvasir-dataset-v2.zip") == hashlib.sha256(body).hexdigest()


def test_broken_archive_is_removed_and_the_installed_copy_survives_a_forced_rebuild(empty_data_root, small, server,
                                                                                   tmp_path):
    good = make_tar({"a.jpg": b"a"})
    _serve(server, "roxford5k", "oxbuild_images-v1.tgz", good)
    _serve(server, "roxford5k", "gnd_roxford5k.pkl", gnd_bytes(tmp_path, ["a"], ["a"]))
    _fetch("roxford5k", empty_data_root, server, keep_archives=True)
    lock = empty_data_root / checksums.LOCK_NAME
    lock.write_text("{}")  # forget the digests, so only the archive's own structure can catch the damage
    (empty_data_root / "downloads/roxford5k/oxbuild_images-v1.tgz").unlink()
    _serve(server, "roxford5k", "oxbuild_images-v1.tgz", good[: len(good) // 2])  # served whole, but truncated

    with pytest.raises(FetchError, match="not a complete tar archive"):
        _fetch("roxford5k", empty_data_root, server, force=True)
    assert (empty_data_root / "roxford5k/jpg/a.jpg").read_bytes() == b"a"
    assert not (empty_data_root / "downloads/roxford5k/oxbuild_images-v1.tgz").exists()
    assert (empty_data_root / "downloads/roxford5k/gnd_roxford5k.pkl").is_file()  # the good file stays
    assert _leftovers(empty_data_root, "roxford5k") == []


def test_incomplete_folder_is_left_alone_unless_forced(empty_data_root, small, server, tmp_path):
    (empty_data_root / "roxford5k/jpg").mkdir(parents=True)
    (empty_data_root / "roxford5k/jpg/mine.jpg").write_bytes(b"mine")
    _serve(server, "roxford5k", "oxbuild_images-v1.tgz", make_tar({"a.jpg": b"a"}))
    _serve(server, "roxford5k", "gnd_roxford5k.pkl", gnd_bytes(tmp_path, ["a"], ["a"]))
    with pytest.raises(FetchError, match=r"lacks gnd_roxford5k\.pkl.*--force"):
        _fetch("roxford5k", empty_data_root, server)
    assert (empty_data_root / "roxford5k/jpg/mine.jpg").is_file()
    assert server.state["hits"] == []

    _fetch("roxford5k", empty_data_root, server, force=True)
    assert sorted(p.name for p in (empty_data_root / "roxford5k/jpg").iterdir()) == ["a.jpg"]
    assert list(empty_data_root.glob(".roxford5k.old-*")) == []


@pytest.mark.parametrize("links", [
    [("up", "../../outside", tarfile.SYMTYPE)],
    [("abs", "/etc", tarfile.SYMTYPE)],
    [("hard", "../outside", tarfile.LNKTYPE)],
    # a link that stays inside, then a link under it that climbs out through it
    [("here", ".", tarfile.SYMTYPE), ("here/up", "../outside", tarfile.SYMTYPE)],
])
def test_links_pointing_outside_are_refused(tmp_path, links):
    archive = tmp_path / "a.tar"
    archive.write_bytes(make_tar({"ok.txt": b"ok"}, links=links, gz=False))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError):
        extract(archive, dest, "tar")


def test_links_inside_the_folder_and_zip_symlinks(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(make_tar({"d/f.txt": b"f"}, links=[("d/alias.txt", "f.txt", tarfile.SYMTYPE)], gz=False))
    (tmp_path / "dest").mkdir()
    assert extract(archive, tmp_path / "dest", "tar") == 2
    assert (tmp_path / "dest/d/alias.txt").read_bytes() == b"f"

    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "z.zip").write_bytes(buf.getvalue())
    (tmp_path / "zdest").mkdir()
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract(tmp_path / "z.zip", tmp_path / "zdest", "zip")


def test_zip_with_a_bad_crc_is_broken(tmp_path):
    data = bytearray(make_zip({"a.txt": b"hello world" * 10}))
    data[data.index(b"hello")] ^= 0xFF  # flip a stored byte: the CRC check fails on reading
    (tmp_path / "b.zip").write_bytes(bytes(data))
    (tmp_path / "dest").mkdir()
    with pytest.raises(BrokenArchiveError):
        extract(tmp_path / "b.zip", tmp_path / "dest", "zip")


def test_cli_fetch_all_reports_each_failure_and_exits_non_zero(empty_data_root, small, server, monkeypatch, capsys):
    monkeypatch.setattr(fetch_mod, "FETCHERS", {})  # fashion-mnist goes through torchvision's hosts
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", make_zip(KVASIR))
    code = cli.main(["fetch", "all", "--mirror", server.url])
    out, err = capsys.readouterr()
    assert code == 1
    assert "kvasir: " + str(empty_data_root / "kvasir") in out
    assert "cwl fetch mit67:" in err and "404" in err
    assert "not fetched: mit67, chest-xray, roxford5k, rparis6k" in err
    assert sorted(os.listdir(empty_data_root / "kvasir")) == [".cwl-fetched.json", "kvasir-dataset-v2"]


def test_ground_truth_pickles_load_as_data_and_code_is_refused(tmp_path):
    import pickle

    import numpy as np

    from cwl_lib.data.ground_truth import UnsafePickleError, load_data_pickle

    gnd = {"imlist": ["all_souls_000001"], "qimlist": ["all_souls_000013"],
           "gnd": [{"bbx": [1.0, 2.0, 3.0, 4.0], "easy": np.array([0, 3]), "hard": np.array([], dtype=np.int64),
                    "junk": np.array([7])}]}
    for protocol in (2, 4, 5):  # protocol 2 carries array bytes through _codecs.encode
        (tmp_path / "gnd.pkl").write_bytes(pickle.dumps(gnd, protocol=protocol))
        loaded = load_data_pickle(tmp_path / "gnd.pkl")
        assert loaded["imlist"] == gnd["imlist"] and loaded["gnd"][0]["easy"].tolist() == [0, 3]

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"gnd": Evil()}))
    with pytest.raises(UnsafePickleError, match="system"):
        load_data_pickle(tmp_path / "evil.pkl")


def _bomb_tgz(path: Path, declared: int, sent: int = 1 << 20) -> None:
    """A tar.gz whose one member says it holds ``declared`` zero bytes; only ``sent`` of them are in the file.

    Only the header matters to the cap, so the test never builds (or writes) the gigabyte it declares.
    """
    import gzip

    info = tarfile.TarInfo("zeros.bin")
    info.size = declared
    with gzip.open(path, "wb") as gz:
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        gz.write(bytes(sent))


def test_a_one_gibibyte_member_in_a_small_archive_is_refused_before_it_is_written(tmp_path):
    archive = tmp_path / "bomb.tgz"
    _bomb_tgz(archive, declared=1 << 30)
    assert archive.stat().st_size < 64 << 10  # a few kilobytes of gzip stand for a gibibyte
    (tmp_path / "dest").mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"1\.00 GiB, past the cap"):
        extract(archive, tmp_path / "dest", "tar", limits=Limits(max_bytes=8 << 30, max_ratio=3.0))
    assert not (tmp_path / "dest/zeros.bin").exists()  # refused from its header: not a byte written


def test_the_byte_cap_holds_for_honest_archives_too(tmp_path):
    archive = tmp_path / "big.tar"
    archive.write_bytes(make_tar({f"{i}.bin": os.urandom(300 << 10) for i in range(4)}, gz=False))
    (tmp_path / "dest").mkdir()
    with pytest.raises(UnsafeArchiveError, match="past the cap"):
        extract(archive, tmp_path / "dest", "tar", limits=Limits(max_bytes=1 << 20, max_ratio=10.0))
    written = sum(p.stat().st_size for p in (tmp_path / "dest").rglob("*") if p.is_file())
    assert written <= 1 << 20


def test_fetch_refuses_a_bomb_and_pins_nothing(empty_data_root, server, tmp_path):
    """Through ``cwl fetch``, with the limits the registry states for the dataset."""
    bomb = tmp_path / "oxbuild_images-v1.tgz"
    _bomb_tgz(bomb, declared=1 << 30)
    _serve(server, "roxford5k", "oxbuild_images-v1.tgz", bomb.read_bytes())
    _serve(server, "roxford5k", "gnd_roxford5k.pkl", gnd_bytes(tmp_path, ["a"], ["a"]))
    with pytest.raises(FetchError, match="past the cap"):
        _fetch("roxford5k", empty_data_root, server)
    assert not (empty_data_root / "roxford5k").exists()
    assert checksums.recorded(empty_data_root, "roxford5k", "oxbuild_images-v1.tgz") is None
    assert checksums.recorded(empty_data_root, "roxford5k", "gnd_roxford5k.pkl") is None
    assert _leftovers(empty_data_root, "roxford5k") == []


def test_a_link_chain_that_ends_outside_is_refused(tmp_path):
    """``x -> y/..`` stays inside while y does not exist; ``y -> .`` then makes x point at the parent."""
    archive = tmp_path / "chain.tar"
    archive.write_bytes(make_tar({"ok.txt": b"ok"}, gz=False,
                                 links=[("x", "y/..", tarfile.SYMTYPE), ("y", ".", tarfile.SYMTYPE)]))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"links point outside its folder: x -> y/\.\."):
        extract(archive, dest, "tar")


def test_a_bogus_archive_with_the_right_layout_is_not_installed_and_not_pinned(empty_data_root, server):
    """The paper's counts (8 x 1,000 Kvasir images) are checked before a first download is trusted."""
    bogus = make_zip({"kvasir-dataset-v2/polyps/0.jpg": b"x"})
    assert len(bogus) < 300
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", bogus)
    with pytest.raises(FetchError, match=r"not the paper's dataset: .*1,000 of each class.*no digest was pinned"):
        _fetch("kvasir", empty_data_root, server)
    assert not (empty_data_root / "kvasir").exists()
    assert checksums.recorded(empty_data_root, "kvasir", "kvasir-dataset-v2.zip") is None
    assert registry.missing(["kvasir"], empty_data_root) != []


def test_a_layout_refusal_pins_nothing_so_the_real_file_installs_later(empty_data_root, small, server):
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", make_zip({"elsewhere/polyps/0.jpg": b"x"}))
    with pytest.raises(FetchError, match="lacks kvasir-dataset-v2"):
        _fetch("kvasir", empty_data_root, server)
    assert checksums.recorded(empty_data_root, "kvasir", "kvasir-dataset-v2.zip") is None
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", make_zip(KVASIR))
    assert _fetch("kvasir", empty_data_root, server) == empty_data_root / "kvasir"


def test_fetch_says_when_it_trusts_a_first_download_and_expect_sha256_pins_one(empty_data_root, small, server):
    body = make_zip(KVASIR)
    digest = hashlib.sha256(body).hexdigest()
    _serve(server, "kvasir", "kvasir-dataset-v2.zip", body)
    said = []
    fetch("kvasir", empty_data_root, mirror=server.url, progress=False, log=said.append)
    assert any(f"this first copy is trusted as it is: sha256 {digest}" in line for line in said)

    other = empty_data_root / "other"
    with pytest.raises(FetchError, match="does not match the digest given with --expect-sha256"):
        _fetch("kvasir", other, server, expect=fetch_mod.parse_expected("kvasir", ["0" * 64]))
    assert not (other / "kvasir").exists()
    said.clear()
    fetch("kvasir", other, mirror=server.url, progress=False, log=said.append,
          expect=fetch_mod.parse_expected("kvasir", [f"kvasir-dataset-v2.zip={digest.upper()}"]))
    assert not any("trusted as it is" in line for line in said)
    assert checksums.recorded(other, "kvasir", "kvasir-dataset-v2.zip") == digest


def test_expect_sha256_values_are_checked(empty_data_root):
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        fetch_mod.parse_expected("kvasir", ["abc"])
    with pytest.raises(ValueError, match="give --expect-sha256 FILE=HEX"):
        fetch_mod.parse_expected("rparis6k", ["0" * 64])
    with pytest.raises(ValueError, match="no file 'x.tgz'"):
        fetch_mod.parse_expected("rparis6k", ["x.tgz=" + "0" * 64])
    code = cli.main(["fetch", "kvasir", "--expect-sha256", "abc"])
    assert code == 2


def test_a_data_root_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    not_a_folder = tmp_path / "root.txt"
    not_a_folder.write_text("x")
    assert cli.main(["fetch", "kvasir", "--data-root", str(not_a_folder)]) == 1
    err = capsys.readouterr().err
    assert f"the data root {not_a_folder} is a file, not a folder" in err


def test_a_ground_truth_pickle_of_shared_references_is_refused(tmp_path):
    """250 bytes that stand for 4 million indices once each shared list is counted where it is used."""
    import pickle

    from cwl_lib.data.ground_truth import UnsafePickleError, load_data_pickle

    row = list(range(2000))
    evil = {"imlist": ["a"], "qimlist": ["q"] * 2000, "gnd": [{"bbx": [0, 0, 1, 1], "easy": row}] * 2000}
    data = pickle.dumps(evil, protocol=4)
    assert len(data) < 16 << 10
    (tmp_path / "gnd.pkl").write_bytes(data)
    with pytest.raises(UnsafePickleError, match="more than 2,000,000 items"):
        load_data_pickle(tmp_path / "gnd.pkl")
    looped = []
    looped.append(looped)  # a list that contains itself
    (tmp_path / "loop.pkl").write_bytes(pickle.dumps(looped))
    with pytest.raises(UnsafePickleError, match="more than"):
        load_data_pickle(tmp_path / "loop.pkl")


def test_tar_and_zip_names_that_climb_or_start_at_the_root_are_refused_not_rewritten(tmp_path):
    """tarfile's data filter would unpack '/etc/x' as 'etc/x'; an archive naming it is refused instead."""
    for i, name in enumerate(["/etc/x", "a/../b", "../x"]):
        for kind, body in (("tar", make_tar({name: b"x"}, gz=False)), ("zip", make_zip({name: b"x"}))):
            archive, dest = tmp_path / f"{i}.{kind}", tmp_path / f"dest{i}{kind}"
            archive.write_bytes(body)
            dest.mkdir()
            with pytest.raises(UnsafeArchiveError, match="absolute path|outside its folder"):
                extract(archive, dest, kind)
            assert list(dest.iterdir()) == []


def test_a_hard_link_to_a_member_not_unpacked_is_refused(tmp_path):
    """tarfile would copy the skipped member's bytes to each link, past the byte cap."""
    archive = tmp_path / "h.tar"
    archive.write_bytes(make_tar({"big/f.bin": bytes(1 << 20)}, gz=False,
                                 links=[(f"h{i}", "big/f.bin", tarfile.LNKTYPE) for i in range(4)]))
    (tmp_path / "dest").mkdir()
    with pytest.raises(UnsafeArchiveError, match="hard link 'h0' -> 'big/f.bin' names no file unpacked"):
        extract(archive, tmp_path / "dest", "tar", skip_prefixes=("big/",))
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("kind", [tarfile.LNKTYPE, tarfile.SYMTYPE])
def test_links_are_charged_their_targets_size_where_the_file_system_refuses_links(tmp_path, monkeypatch, kind):
    """Where os.link / os.symlink fail, tarfile copies the target: 20 links to 1 MiB must not write 21 MiB."""
    archive = tmp_path / "l.tar"
    archive.write_bytes(make_tar({"f.bin": bytes(1 << 20)}, gz=False,
                                 links=[(f"l{i}", "f.bin", kind) for i in range(20)]))

    def refuse(*_a, **_k):
        raise OSError("links not supported here")

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(os, "symlink", refuse)
    (tmp_path / "dest").mkdir()
    with pytest.raises(UnsafeArchiveError, match="past the cap"):
        extract(archive, tmp_path / "dest", "tar", limits=Limits(max_bytes=10 << 20, max_ratio=100.0))
    assert sum(p.stat().st_size for p in (tmp_path / "dest").rglob("*") if p.is_file()) <= 10 << 20


def test_a_zip_member_longer_than_declared_writes_no_more_than_declared(tmp_path):
    """The cap reserves declared sizes: zipfile must stop there (it does, then fails the CRC)."""
    import struct

    data = bytearray(make_zip({"a.bin": b"x" * 100_000}))  # stored: the bytes are in the file as they are
    local, central = 0, data.index(b"PK\x01\x02")
    data[local + 22:local + 26] = data[central + 24:central + 28] = struct.pack("<I", 10)
    (tmp_path / "long.zip").write_bytes(bytes(data))
    (tmp_path / "dest").mkdir()
    with pytest.raises(BrokenArchiveError, match="CRC"):
        extract(tmp_path / "long.zip", tmp_path / "dest", "zip")
    assert (tmp_path / "dest/a.bin").stat().st_size <= 10


def test_a_mirror_on_this_machine_is_copied_and_checked_as_a_download_is(empty_data_root, small, tmp_path):
    (tmp_path / "mirror/kvasir").mkdir(parents=True)
    (tmp_path / "mirror/kvasir/kvasir-dataset-v2.zip").write_bytes(make_zip(KVASIR))
    quiet = {"progress": False, "log": lambda _msg: None}
    with pytest.raises(FetchError, match="does not match the digest given with --expect-sha256") as err:
        fetch("kvasir", empty_data_root, mirror=str(tmp_path / "mirror"), expect={"kvasir-dataset-v2.zip": "0" * 64},
              **quiet)
    assert "Check the mirror's copy" in str(err.value) and "publisher" not in str(err.value)
    assert list((empty_data_root / "downloads/kvasir").iterdir()) == []
    with pytest.raises(FetchError, match="the mirror has no file"):
        fetch("kvasir", empty_data_root, mirror=str(tmp_path / "elsewhere"), **quiet)
    folder = fetch("kvasir", empty_data_root, mirror=f"file://{tmp_path / 'mirror'}", **quiet)
    assert folder == empty_data_root / "kvasir"


def test_a_second_fetch_of_the_same_dataset_is_refused_while_the_first_runs(empty_data_root, tmp_path):
    held = lock(empty_data_root / ".kvasir.fetch-lock", wait=False)  # what a running `cwl fetch kvasir` holds
    try:
        with pytest.raises(FetchError, match="another `cwl fetch kvasir` is running"):
            fetch("kvasir", empty_data_root, mirror=str(tmp_path), progress=False, log=lambda _msg: None)
    finally:
        held.release()
    with pytest.raises(FetchError, match="the mirror has no file"):  # the lock is free again
        fetch("kvasir", empty_data_root, mirror=str(tmp_path), progress=False, log=lambda _msg: None)
