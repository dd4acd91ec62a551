import hashlib

import pytest

from gpt2lab import data


def test_mirror_files_verify(monkeypatch):
    for rel, spec in data.FILES.items():
        path = data.fetch(rel)
        assert path.stat().st_size == spec.size
        assert data.sha256_of(path) == spec.sha256


def test_split_is_first_90_percent_last_10_percent():
    text = data.tinyshakespeare()
    train, val = data.tinyshakespeare_split()
    assert len(text) == 1_115_394
    assert train + val == text
    assert len(train) == int(0.9 * len(text))
    assert train.startswith("First Citizen:")


def test_sonnets_parse_into_154():
    sonnets = data.sonnets()
    assert [s.number for s in sonnets] == list(range(1, 155))
    assert sonnets[0].lines[0] == "From fairest creatures we desire increase,"
    lengths = {s.numeral: len(s.lines) for s in sonnets}
    assert lengths["XCIX"] == 15 and lengths["CXXVI"] == 12
    assert sum(n == 14 for n in lengths.values()) == 152


def test_roman_numerals():
    assert [data.roman_to_int(r) for r in ["I", "IV", "IX", "XIV", "XC", "XCIX", "CXLIX", "CLIV"]] == \
        [1, 4, 9, 14, 90, 99, 149, 154]


def _file_url_spec(tmp_path, content: bytes, sha=None):
    src = tmp_path / "source.txt"
    src.write_bytes(content)
    return data.RemoteFile("test/file.txt", src.as_uri(), sha or hashlib.sha256(content).hexdigest(), len(content))


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_MIRROR, raising=False)
    spec = _file_url_spec(tmp_path, b"some text\n")
    monkeypatch.setitem(data.FILES, spec.relpath, spec)
    path = data.fetch(spec.relpath)
    assert path == tmp_path / "cache" / "test" / "file.txt" and path.read_bytes() == b"some text\n"
    (tmp_path / "source.txt").unlink()  # the cache is used from now on
    assert data.fetch(spec.relpath).read_bytes() == b"some text\n"


def test_corrupt_cache_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_MIRROR, raising=False)
    spec = _file_url_spec(tmp_path, b"good\n")
    monkeypatch.setitem(data.FILES, spec.relpath, spec)
    bad = tmp_path / "cache" / "test" / "file.txt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")
    assert data.fetch(spec.relpath).read_bytes() == b"good\n"


def test_checksum_mismatch_leaves_no_file_and_explains(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(data.ENV_MIRROR, str(tmp_path / "mirror"))
    spec = _file_url_spec(tmp_path, b"tampered", sha="0" * 64)
    monkeypatch.setitem(data.FILES, spec.relpath, spec)
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch(spec.relpath)
    message = str(info.value)
    assert "SHA-256 mismatch" in message and "GPT2LAB_DATA_MIRROR" in message and "not in the mirror" in message
    assert not list((tmp_path / "cache").rglob("*file.txt*"))


def test_bad_mirror_copy_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(data.ENV_MIRROR, str(tmp_path / "mirror"))
    (tmp_path / "mirror" / "sonnets").mkdir(parents=True)
    (tmp_path / "mirror" / "sonnets" / "sonnets.txt").write_text("not the sonnets")
    spec = data.FILES["sonnets/sonnets.txt"]
    monkeypatch.setitem(data.FILES, spec.relpath, data.RemoteFile(spec.relpath, "file:///nonexistent/x",
                                                                  spec.sha256, spec.size))
    with pytest.raises(data.DataUnavailableError, match="wrong SHA-256"):
        data.fetch("sonnets/sonnets.txt")


def test_unknown_file_name():
    with pytest.raises(KeyError, match="known"):
        data.fetch("nope.txt")


def test_real_gpt2_tokenizer_from_mirror():
    tok = data.gpt2_tokenizer()
    assert len(tok) == 50257
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert tok(" the<|endoftext|>")["input_ids"] == [262, 50256]


def test_nltk_data_from_mirror():
    import nltk

    data.ensure_nltk_data(download=False)
    assert nltk.pos_tag(["The", "cat", "sat"]) == [("The", "DT"), ("cat", "NN"), ("sat", "VBD")]


def test_missing_nltk_data_explains_the_fix(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setenv(data.ENV_MIRROR, str(tmp_path))
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    with pytest.raises(data.DataUnavailableError, match="nltk.downloader"):
        data.ensure_nltk_data(download=False)
